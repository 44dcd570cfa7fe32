package testnet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/groupstate"
)

// Strategy is how a group's history is hosted.
type Strategy string

const (
	// StrategyServer: every group names the always-on community hosts
	// ("hosts" of them, shared by all groups).
	StrategyServer Strategy = "server"
	// StrategyBot: every group names one always-on bot; groups are spread
	// over the "bots" bots round-robin.
	StrategyBot Strategy = "bot"
	// StrategyPeers: no infrastructure; every group names "peer_hosts" of
	// its own members, whose nodes churn like any member's.
	StrategyPeers Strategy = "peers"
	// StrategyHybrid: the community hosts plus "peer_hosts" members.
	StrategyHybrid Strategy = "hybrid"
)

// Strategies lists every strategy in report order.
var Strategies = []Strategy{StrategyServer, StrategyBot, StrategyPeers, StrategyHybrid}

// ParseStrategy parses server|bot|peers|hybrid.
func ParseStrategy(s string) (Strategy, error) {
	st := Strategy(strings.TrimSpace(s))
	if slices.Contains(Strategies, st) {
		return st, nil
	}
	return "", fmt.Errorf("%w: strategy %q (want server, bot, peers or hybrid)", ErrScenario, s)
}

// Duration is a time.Duration written as a Go duration string ("1.5s").
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string such as \"1.5s\" or \"200ms\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Scenario is one simulation: a population, its groups, traffic, churn,
// network and schedule of faults. Every strategy listed runs on the same
// schedule, generated from Seed. The JSON keys are the file format.
type Scenario struct {
	Name string `json:"name" yaml:"name"`
	Seed uint64 `json:"seed" yaml:"seed"`
	// Duration of the traffic phase (churn and partitions happen in it).
	Duration Duration `json:"duration" yaml:"duration"`
	// Warmup after the groups are formed and before traffic starts.
	Warmup Duration `json:"warmup" yaml:"warmup"`
	// CatchUp bounds the final phase: everyone back online, partitions
	// healed, every member catches up; eventual delivery is measured at
	// its end (or as soon as everything is delivered).
	CatchUp Duration `json:"catchup" yaml:"catchup"`
	// Deadline: a message counts as delivered to an online member if shown
	// within it.
	Deadline Duration `json:"deadline" yaml:"deadline"`
	// CatchUpInterval is the members' background catch-up period
	// (node.Params.CatchUpInterval).
	CatchUpInterval Duration `json:"catchup_interval" yaml:"catchup_interval"`

	Strategies []Strategy `json:"strategies" yaml:"strategies"`
	// Peers is the number of member nodes.
	Peers int `json:"peers" yaml:"peers"`
	// Hosts is the number of community hosts (server and hybrid).
	Hosts int `json:"hosts" yaml:"hosts"`
	// Bots is the number of bots (bot strategy).
	Bots int `json:"bots" yaml:"bots"`
	// PeerHosts is how many members of each group host it (peers, hybrid).
	PeerHosts int `json:"peer_hosts" yaml:"peer_hosts"`

	Groups  []GroupSpec `json:"groups" yaml:"groups"`
	Traffic Traffic     `json:"traffic" yaml:"traffic"`
	Churn   Churn       `json:"churn" yaml:"churn"`
	Link    Link        `json:"link" yaml:"link"`
	// Partitions split the network for a while, then heal.
	Partitions []Partition `json:"partitions" yaml:"partitions"`
	// Baseline runs plain gossipsub over the same network and traffic.
	Baseline *bool `json:"baseline,omitempty" yaml:"baseline,omitempty"`

	// Managed runs every group as a managed group (node.Managed with
	// groupstate.DefaultPolicy): the group's creator, or its bot under the
	// bot strategy, is the manager and adds every other member by key
	// package. Removals or rotations imply it.
	Managed bool `json:"managed,omitempty" yaml:"managed,omitempty"`
	// Removals: at each, the manager of the group (of every group when
	// "group" is absent) removes one member, drawn from the seed, which
	// rotates the keys.
	Removals []ManageOp `json:"removals,omitempty" yaml:"removals,omitempty"`
	// Rotations: at each, the manager of the group (of every group when
	// "group" is absent) starts a new epoch.
	Rotations []ManageOp `json:"rotations,omitempty" yaml:"rotations,omitempty"`
}

// ManageOp is a manager operation at At after the traffic phase starts,
// in group Group (an index into the schedule's groups, in the order of
// "groups") or, when Group is absent, in every group. An operation due
// while the group's creator is offline waits until it is back (every
// strategy runs the same schedule, and the creator manages the group in
// all but the bot strategy); one that would wait past the end is dropped.
type ManageOp struct {
	At    Duration `json:"at" yaml:"at"`
	Group *int     `json:"group,omitempty" yaml:"group,omitempty"`
}

// ManagedGroups reports whether the groups are managed groups.
func (s *Scenario) ManagedGroups() bool {
	return s.Managed || len(s.Removals) > 0 || len(s.Rotations) > 0
}

// removable is the number of members of a group of size n that a removal
// may pick: neither the creator nor a member host (the first
// max(1, peer_hosts) members), which the group keeps under every strategy.
func (s *Scenario) removable(n int) int { return n - max(1, s.PeerHosts) }

// groupSizes lists every group's size, in schedule order.
func (s *Scenario) groupSizes() []int {
	var out []int
	for _, g := range s.Groups {
		for range min(g.Count, maxPeers) {
			out = append(out, g.Size)
		}
	}
	return out
}

// GroupSpec is Count groups of Size members each, drawn from the peers.
type GroupSpec struct {
	Count int `json:"count" yaml:"count"`
	Size  int `json:"size" yaml:"size"`
}

// Traffic is each group's message stream: a Poisson process of Rate
// messages per second, each Size bytes of text, sent by a member online
// at that moment (drawn uniformly).
type Traffic struct {
	Rate float64 `json:"rate" yaml:"rate"`
	Size int     `json:"size" yaml:"size"`
}

// Churn makes a Fraction of the members alternate between online and
// offline periods with these means.
type Churn struct {
	Fraction float64  `json:"fraction" yaml:"fraction"`
	Online   Duration `json:"online" yaml:"online"`
	Offline  Duration `json:"offline" yaml:"offline"`
	// Distribution of period lengths: "exponential" (default) or "fixed".
	Distribution string `json:"distribution,omitempty" yaml:"distribution,omitempty"`
}

// Link is the model of every link between two nodes.
type Link struct {
	Latency Duration `json:"latency" yaml:"latency"`
	Jitter  Duration `json:"jitter" yaml:"jitter"`
	// Bandwidth in bytes per second per link (0: unlimited).
	Bandwidth int64 `json:"bandwidth" yaml:"bandwidth"`
	// Loss is the probability that one 1,400-byte segment is lost.
	Loss float64 `json:"loss" yaml:"loss"`
}

// Partition splits the nodes in two at At for Duration: a Split fraction
// of the members (drawn from the seed) and every infrastructure node on
// side 0, the other members on side 1.
type Partition struct {
	At       Duration `json:"at" yaml:"at"`
	Duration Duration `json:"duration" yaml:"duration"`
	Split    float64  `json:"split" yaml:"split"`
}

// DefaultScenario is a small scenario: 20 members in one group, every
// strategy, 20 s of traffic.
func DefaultScenario() Scenario {
	return Scenario{
		Name:            "default",
		Seed:            1,
		Duration:        Duration(20 * time.Second),
		Warmup:          Duration(2 * time.Second),
		CatchUp:         Duration(20 * time.Second),
		Deadline:        Duration(5 * time.Second),
		CatchUpInterval: Duration(10 * time.Second),
		Strategies:      slices.Clone(Strategies),
		Peers:           20,
		Hosts:           1,
		Bots:            1,
		PeerHosts:       3,
		Groups:          []GroupSpec{{Count: 1, Size: 20}},
		Traffic:         Traffic{Rate: 2, Size: 200},
		Link:            Link{Latency: Duration(20 * time.Millisecond)},
	}
}

// Load reads a scenario file over the defaults: YAML (ParseYAML) when
// its name ends in .yaml or .yml, JSON (Parse) otherwise.
func Load(path string) (Scenario, error) {
	f, err := os.Open(path)
	if err != nil {
		return Scenario{}, fmt.Errorf("%w: %v", ErrScenario, err)
	}
	defer f.Close()
	parse := Parse
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		parse = ParseYAML
	}
	s, err := parse(f)
	if err != nil {
		return Scenario{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// maxScenarioFile bounds a scenario file.
const maxScenarioFile = 1 << 20

// Parse decodes a scenario strictly: unknown keys, trailing data and wrong
// types are errors. Keys not given keep DefaultScenario's values. Call
// Validate (after applying overrides) before running it.
func Parse(r io.Reader) (Scenario, error) {
	b, err := readScenario(r)
	if err != nil {
		return Scenario{}, err
	}
	s := DefaultScenario()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Scenario{}, fmt.Errorf("%w: %v", ErrScenario, describeJSONError(b, err))
	}
	if dec.More() {
		return Scenario{}, fmt.Errorf("%w: data after the scenario object", ErrScenario)
	}
	return s, nil
}

// readScenario reads a whole scenario file, at most maxScenarioFile bytes.
func readScenario(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxScenarioFile+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrScenario, err)
	}
	if len(b) > maxScenarioFile {
		return nil, fmt.Errorf("%w: file larger than %d bytes", ErrScenario, maxScenarioFile)
	}
	return b, nil
}

// describeJSONError names the line and the key of a decoding error.
func describeJSONError(b []byte, err error) error {
	lineAt := func(off int64) int { return 1 + bytes.Count(b[:min(max(int(off), 0), len(b))], []byte("\n")) }
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("line %d: %v", lineAt(se.Offset), err)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("line %d: key %q: want a %s, got a JSON %s", lineAt(te.Offset), te.Field, te.Type, te.Value)
	}
	// encoding/json reports an unknown key without its place: the line is
	// that of the key's first occurrence as a key (best effort: a key
	// written with escapes is not found).
	if q, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		key, uerr := strconv.Unquote(q)
		if uerr != nil {
			return err
		}
		re := regexp.MustCompile(`"` + regexp.QuoteMeta(key) + `"\s*:`)
		if loc := re.FindIndex(b); loc != nil {
			return fmt.Errorf("line %d: unknown key %q", lineAt(int64(loc[0])), key)
		}
		return fmt.Errorf("unknown key %q", key)
	}
	return err
}

// Limits of a scenario.
const (
	maxPeers     = 5000
	maxDuration  = time.Hour
	maxRate      = 1000.0 // messages per second per group
	maxLatency   = 10 * time.Second
	minBandwidth = 1000 // bytes per second
	maxLoss      = 0.5
	// textNick is the nickname length the simulator uses ("m0042").
	textNick = 5
)

// MaxTextSize is the largest message size a scenario may ask for.
func MaxTextSize() int { return groupstate.MaxBodyLen(textNick+3, groupstate.MaxParents) }

// BaselineOn reports whether the gossipsub baseline runs.
func (s *Scenario) BaselineOn() bool { return s.Baseline == nil || *s.Baseline }

// Validate checks every rule, reports all violations at once, and checks
// that the scenario fits this machine's memory.
func (s *Scenario) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if s.Duration <= 0 || s.Duration.D() > maxDuration {
		bad("duration %v: want more than 0 and at most %v", s.Duration.D(), maxDuration)
	}
	if s.Warmup < 0 || s.Warmup.D() > time.Minute {
		bad("warmup %v: want 0 to 1m", s.Warmup.D())
	}
	if s.CatchUp <= 0 || s.CatchUp.D() > 10*time.Minute {
		bad("catchup %v: want more than 0 and at most 10m", s.CatchUp.D())
	}
	if s.Deadline <= 0 || s.Deadline.D() > time.Minute {
		bad("deadline %v: want more than 0 and at most 1m", s.Deadline.D())
	}
	if s.CatchUpInterval.D() < 100*time.Millisecond || s.CatchUpInterval.D() > time.Hour {
		bad("catchup_interval %v: want 100ms to 1h", s.CatchUpInterval.D())
	}
	if len(s.Strategies) == 0 {
		bad("strategies: name at least one of server, bot, peers, hybrid")
	}
	seen := map[Strategy]bool{}
	for _, st := range s.Strategies {
		if !slices.Contains(Strategies, st) { // exactly: ParseStrategy trims spaces
			bad("strategies: %q is not one of server, bot, peers, hybrid", st)
		}
		if seen[st] {
			bad("strategies: %q listed twice", st)
		}
		seen[st] = true
	}
	if s.Peers < 2 || s.Peers > maxPeers {
		bad("peers %d: want 2 to %d", s.Peers, maxPeers)
	}
	if s.Hosts < 0 || s.Bots < 0 || s.PeerHosts < 0 {
		bad("hosts, bots and peer_hosts must not be negative")
	}
	if (seen[StrategyServer] || seen[StrategyHybrid]) && s.Hosts < 1 {
		bad("hosts %d: the server and hybrid strategies need at least one host", s.Hosts)
	}
	if seen[StrategyBot] && s.Bots < 1 {
		bad("bots %d: the bot strategy needs at least one bot", s.Bots)
	}
	if (seen[StrategyPeers] || seen[StrategyHybrid]) && s.PeerHosts < 1 {
		bad("peer_hosts %d: the peers and hybrid strategies need at least one member host per group", s.PeerHosts)
	}
	if len(s.Groups) == 0 {
		bad("groups: give at least one {\"count\": C, \"size\": S}")
	}
	for i, g := range s.Groups {
		if g.Count < 1 || g.Count > maxPeers {
			bad("groups[%d].count %d: want 1 to %d", i, g.Count, maxPeers)
		}
		if g.Size < 2 || g.Size > s.Peers {
			bad("groups[%d].size %d: want 2 to peers (%d)", i, g.Size, s.Peers)
		}
		if (seen[StrategyPeers] || seen[StrategyHybrid]) && s.PeerHosts > g.Size {
			bad("peer_hosts %d exceeds groups[%d].size %d", s.PeerHosts, i, g.Size)
		}
	}
	if !(s.Traffic.Rate > 0 && s.Traffic.Rate <= maxRate) { // NaN too (YAML has .nan)
		bad("traffic.rate %g: want more than 0 and at most %g messages per second per group", s.Traffic.Rate, maxRate)
	}
	if s.Traffic.Size < minTextSize || s.Traffic.Size > MaxTextSize() {
		bad("traffic.size %d: want %d to %d bytes", s.Traffic.Size, minTextSize, MaxTextSize())
	}
	c := s.Churn
	if !(c.Fraction >= 0 && c.Fraction <= 1) {
		bad("churn.fraction %g: want 0 to 1", c.Fraction)
	}
	if c.Fraction > 0 && (c.Online.D() < 100*time.Millisecond || c.Offline.D() < 100*time.Millisecond) {
		bad("churn.online %v and churn.offline %v: want at least 100ms each when churn.fraction > 0", c.Online.D(), c.Offline.D())
	}
	switch c.Distribution {
	case "", "exponential", "fixed":
	default:
		bad("churn.distribution %q: want exponential or fixed", c.Distribution)
	}
	l := s.Link
	if l.Latency < 0 || l.Latency.D() > maxLatency {
		bad("link.latency %v: want 0 to %v", l.Latency.D(), maxLatency)
	}
	if l.Jitter < 0 || l.Jitter.D() > maxLatency {
		bad("link.jitter %v: want 0 to %v", l.Jitter.D(), maxLatency)
	}
	if l.Bandwidth != 0 && l.Bandwidth < minBandwidth {
		bad("link.bandwidth %d: want 0 (unlimited) or at least %d bytes per second", l.Bandwidth, minBandwidth)
	}
	if !(l.Loss >= 0 && l.Loss <= maxLoss) {
		bad("link.loss %g: want 0 to %g", l.Loss, maxLoss)
	}
	for i, p := range s.Partitions {
		if p.At < 0 || p.Duration <= 0 || p.At+p.Duration > s.Duration {
			bad("partitions[%d]: at %v for %v must lie within the duration %v", i, p.At.D(), p.Duration.D(), s.Duration.D())
		}
		if !(p.Split > 0 && p.Split < 1) {
			bad("partitions[%d].split %g: want strictly between 0 and 1", i, p.Split)
		}
		if i > 0 && p.At < s.Partitions[i-1].At+s.Partitions[i-1].Duration {
			bad("partitions[%d] starts before partitions[%d] heals (list them in order, without overlap)", i, i-1)
		}
	}
	errs = append(errs, s.validateManaged()...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrScenario, err)
	}
	return s.checkMemory()
}

// validateManaged checks removals and rotations.
func (s *Scenario) validateManaged() []error {
	var errs []error
	sizes := s.groupSizes()
	removals := make([]int, len(sizes))
	check := func(key string, i int, op ManageOp) {
		if op.At < 0 || op.At >= s.Duration {
			errs = append(errs, fmt.Errorf("%s[%d]: at %v must lie within the duration %v", key, i, op.At.D(), s.Duration.D()))
		}
		if op.Group != nil && (*op.Group < 0 || *op.Group >= len(sizes)) {
			errs = append(errs, fmt.Errorf("%s[%d].group %d: want 0 to %d (groups are numbered in the order of \"groups\")", key, i, *op.Group, len(sizes)-1))
		}
	}
	for i, op := range s.Removals {
		check("removals", i, op)
		for gi := range sizes {
			if op.Group == nil || *op.Group == gi {
				removals[gi]++
			}
		}
	}
	for i, op := range s.Rotations {
		check("rotations", i, op)
	}
	for gi, n := range removals {
		if n > s.removable(sizes[gi]) {
			errs = append(errs, fmt.Errorf("removals: %d in group %d of %d members, which has only %d removable (neither its creator nor one of the first peer_hosts members)", n, gi, sizes[gi], max(0, s.removable(sizes[gi]))))
			break
		}
	}
	return errs
}

// groupCount is the number of groups.
func (s *Scenario) groupCount() int {
	n := 0
	for _, g := range s.Groups {
		n += g.Count
	}
	return n
}

// maxNodes is the largest node count of any strategy.
func (s *Scenario) maxNodes() int {
	n := s.Peers
	extra := 0
	for _, st := range s.Strategies {
		switch st {
		case StrategyServer, StrategyHybrid:
			extra = max(extra, s.Hosts)
		case StrategyBot:
			extra = max(extra, s.Bots)
		}
	}
	return n + extra
}
