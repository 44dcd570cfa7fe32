package testnet

import (
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type interval struct{ from, to time.Time } // offline; zero to: still offline

// runEnv is what the collector knows of a run besides its events: the
// scenario, the schedule, the strategy, the nodes, and what each node
// reported at the end (set by the mode before result).
type runEnv struct {
	s     *Scenario
	sch   *Schedule
	st    Strategy
	n     int   // nodes
	infra []int // infrastructure node indexes

	memPerNode  int64
	finals      []nodeFinal
	notMeasured []string // figures this mode cannot measure (StrategyResult.NotMeasured)
}

// measured reports whether a figure (a JSON path prefix) is measured.
func (e *runEnv) measured(path string) bool {
	for _, p := range e.notMeasured {
		if path == p || strings.HasPrefix(path, p+".") {
			return false
		}
	}
	return true
}

// nodeFinal is what one node reports at the end of a run.
type nodeFinal struct {
	member           bool
	bytes, baseBytes int64   // from the start of traffic
	dups             float64 // envelopes received again, from the start of traffic
	hosting          bool    // some group names it as host
	usage            HostStorage
}

// collector records what happens during a run; every method is safe for
// concurrent use (one mutex, never held while calling out).
type collector struct {
	m *runEnv

	mu                         sync.Mutex
	t0, trafficEnd, catchUpEnd time.Time
	sends                      map[int]time.Time // message → send time
	msgEv                      map[int]Event
	first                      map[[2]int]time.Time // (message, node) → first shown
	dupShown                   int
	held                       map[[2]int]bool // from the members' databases at the end
	baseFirst                  map[[2]int]time.Time
	offline                    [][]interval
	gapNotices, sendFails      int
	left, baseLeft             int
	missing                    map[[2]int]int // (node, group) → messages not shown yet

	// Managed groups (managed.go).
	inGroup     map[[2]int]bool          // (group, member) of the plan
	removedAt   map[[2]int]time.Duration // (group, member) → removal offset
	gidx        map[string]int           // group ID → index
	ops         []opRecord               // removals and rotations done
	opsQueued   int                      // removals and rotations handed to managers
	epochs      map[[2]int][]epochMark   // (node, group) → epochs seen
	removedSeen map[[2]int]uint64        // (message, removed member) → highest epoch shown or held
}

func newCollector(m *runEnv) *collector {
	inGroup := map[[2]int]bool{}
	for gi, g := range m.sch.Groups {
		for _, rc := range g.Members {
			inGroup[[2]int{gi, rc}] = true
		}
	}
	return &collector{
		m:         m,
		sends:     map[int]time.Time{},
		msgEv:     map[int]Event{},
		first:     map[[2]int]time.Time{},
		held:      map[[2]int]bool{},
		baseFirst: map[[2]int]time.Time{},
		offline:   make([][]interval, m.n),
		missing:   map[[2]int]int{},

		inGroup:     inGroup,
		removedAt:   m.sch.removedAt(),
		gidx:        map[string]int{},
		epochs:      map[[2]int][]epochMark{},
		removedSeen: map[[2]int]uint64{},
	}
}

func (c *collector) start(t time.Time) {
	c.mu.Lock()
	c.t0 = t
	c.mu.Unlock()
}

func (c *collector) endTraffic(t time.Time) {
	c.mu.Lock()
	c.trafficEnd = t
	c.mu.Unlock()
}

func (c *collector) endCatchUp(t time.Time) {
	c.mu.Lock()
	c.catchUpEnd = t
	c.mu.Unlock()
}

func (c *collector) sent(ev Event, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sends[ev.Msg] = at
	c.msgEv[ev.Msg] = ev
	for _, r := range c.m.sch.Groups[ev.Group].Members {
		if !c.isRecipient(ev, r) {
			continue
		}
		if _, ok := c.first[[2]int{ev.Msg, r}]; !ok {
			c.left++
			c.missing[[2]int{r, ev.Group}]++
		}
		if _, ok := c.baseFirst[[2]int{ev.Msg, r}]; !ok && c.m.s.BaselineOn() {
			c.baseLeft++
		}
	}
}

// shown records a message shown to a member, in the epoch it was sent in.
func (c *collector) shown(msg, node int, at time.Time, epoch uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removedShown(msg, node, epoch)
	k := [2]int{msg, node}
	if _, ok := c.first[k]; ok {
		c.dupShown++
		return
	}
	c.first[k] = at
	if ev, ok := c.msgEv[msg]; ok && c.isRecipient(ev, node) {
		c.left--
		c.missing[[2]int{node, ev.Group}]--
	}
}

// stored records a message held in a member's database at the end.
func (c *collector) stored(msg, node int, epoch uint64) {
	c.mu.Lock()
	c.held[[2]int{msg, node}] = true
	c.removedShown(msg, node, epoch)
	c.mu.Unlock()
}

func (c *collector) baseShown(msg, node int, at time.Time) {
	c.mu.Lock()
	k := [2]int{msg, node}
	if _, ok := c.baseFirst[k]; !ok {
		c.baseFirst[k] = at
		if ev, sent := c.msgEv[msg]; sent && c.isRecipient(ev, node) {
			c.baseLeft--
		}
	}
	c.mu.Unlock()
}

func (c *collector) setOnline(node int, online bool, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ivs := c.offline[node]
	if online {
		if n := len(ivs); n > 0 && ivs[n-1].to.IsZero() {
			ivs[n-1].to = at
		}
		return
	}
	c.offline[node] = append(ivs, interval{from: at})
}

func (c *collector) gapNotice() {
	c.mu.Lock()
	c.gapNotices++
	c.mu.Unlock()
}

func (c *collector) sendFailed() {
	c.mu.Lock()
	c.sendFails++
	c.mu.Unlock()
}

func (c *collector) complete(node, group int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.missing[[2]int{node, group}] <= 0
}

func (c *collector) allDelivered() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.left <= 0
}

// settled reports whether every pair, the baseline's too, is delivered.
func (c *collector) settled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.left <= 0 && c.baseLeft <= 0
}

// counts returns sent messages and shown pairs (for the progress bar).
func (c *collector) counts() (sent, shown, left int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sends), len(c.first), c.left
}

// onlineFrom returns t if node was online at t, else when it came back
// online after t (t itself if it never did: the caller sees no reach).
// Call with c.mu held.
func (c *collector) onlineFrom(node int, t time.Time) time.Time {
	for _, iv := range c.offline[node] {
		if !iv.from.After(t) && (iv.to.IsZero() || iv.to.After(t)) {
			if iv.to.IsZero() {
				return t
			}
			return iv.to
		}
	}
	return t
}

// onlineThroughout reports whether node was online during [from, to).
// Call with c.mu held.
func (c *collector) onlineThroughout(node int, from, to time.Time) bool {
	for _, iv := range c.offline[node] {
		if iv.from.Before(to) && (iv.to.IsZero() || iv.to.After(from)) {
			return false
		}
	}
	return true
}

func percentiles(v []float64) Percentiles {
	if len(v) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return round2(s[max(0, min(i, len(s)-1))])
	}
	return Percentiles{N: len(s), P50: at(0.5), P90: at(0.9), P99: at(0.99), Max: round2(s[len(s)-1])}
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

func round4(f float64) float64 { return math.Round(f*1e4) / 1e4 }

// cdf samples at most 200 points of the distribution of v.
func cdf(v []float64) [][2]float64 {
	if len(v) == 0 {
		return nil
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	const k = 200
	var out [][2]float64
	for i := 0; i <= k; i++ {
		idx := i * (len(s) - 1) / k
		p := [2]float64{round2(s[idx]), round2(float64(idx+1) / float64(len(s)))}
		if len(out) == 0 || out[len(out)-1] != p {
			out = append(out, p)
		}
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// counterValue sums a counter family of a node's registry.
func counterValue(reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			v += mt.GetCounter().GetValue()
		}
	}
	return v
}
