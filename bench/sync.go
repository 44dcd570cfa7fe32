package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/hostsync"
	"github.com/meshnode/meshnode/store"
)

// Store kinds of SyncParams.Stores.
const (
	StoreMemory = "memory"
	StoreDisk   = "disk"
)

// SyncParams describe the sync benchmark: for each store kind, n and d,
// two hosts whose stores hold n envelopes between them, d of which only
// one side holds (half on each side), run one session.
type SyncParams struct {
	N      []int
	D      []int
	Size   int      // bytes of each envelope encoding
	Stores []string // StoreMemory, StoreDisk
	// Dir holds the on-disk stores (fresh subdirectories); empty means a
	// temporary directory removed at the end.
	Dir    string
	Params hostsync.Params
	// Reuse fills the two stores of each n and store kind once and runs
	// the cases in the order of D on them, each adding its own d
	// differences: the stores start with n - ΣD common envelopes, so the
	// last case's union is exactly n and each earlier one's is smaller by
	// the differences of the cases after it (SyncCase.N is the actual
	// union). It saves refilling large stores for every case.
	Reuse bool
	// Progress, if set, is called with each case as it completes.
	Progress func(SyncCase)
}

// DefaultSyncParams: n = 100,000 envelopes of 1 KiB, d = 0, 1, 10, 1,000
// and 10,000, stores in memory. The session and idle timeouts are raised
// (30 and 10 minutes): the benchmark measures what a session costs, and on
// a loaded machine a 10,000-envelope transfer into a durable store can
// outlast the defaults.
func DefaultSyncParams() SyncParams {
	hp := hostsync.DefaultParams()
	hp.SessionTimeout, hp.IdleTimeout = 30*time.Minute, 10*time.Minute
	return SyncParams{
		N: []int{100_000}, D: []int{0, 1, 10, 1000, 10_000}, Size: 1024,
		Stores: []string{StoreMemory}, Params: hp,
	}
}

func (p SyncParams) validate() error {
	if len(p.N) == 0 || len(p.D) == 0 || len(p.Stores) == 0 {
		return fmt.Errorf("%w: sync needs at least one n, d and store kind", ErrInvalidParams)
	}
	for _, n := range p.N {
		if n < 1 || n > MaxN {
			return fmt.Errorf("%w: n %d outside [1, %d]", ErrInvalidParams, n, MaxN)
		}
		for _, d := range p.D {
			if d < 0 || d > n {
				return fmt.Errorf("%w: d = %d not in [0, n = %d]", ErrInvalidParams, d, n)
			}
		}
	}
	for _, s := range p.Stores {
		if s != StoreMemory && s != StoreDisk {
			return fmt.Errorf("%w: store kind %q (memory or disk)", ErrInvalidParams, s)
		}
	}
	if p.Size < MinSize || p.Size > p.Params.MaxEnvelopeSize {
		return fmt.Errorf("%w: size %d outside [%d, %d]", ErrInvalidParams, p.Size, MinSize, p.Params.MaxEnvelopeSize)
	}
	return nil
}

// SyncResult is the outcome of Sync, one case per store kind, n and d.
type SyncResult struct {
	Workload     string     `json:"workload"` // "sync"
	Cases        []SyncCase `json:"results"`
	EnvelopeSize int        `json:"envelope_size"`
	// SetupSeconds is the time spent making envelopes and filling stores
	// (not part of any case's figures).
	SetupSeconds float64 `json:"setup_seconds"`
	// Goals checks the targets (see SyncGoals).
	Goals   SyncGoals `json:"goals"`
	Machine Machine   `json:"machine"`
}

// SyncGoals are the targets on reconciliation: at most 100 bytes per
// difference at n = 100,000, d = 1,000, and at most 3 KB in at most 4
// rounds at n = 1,000,000, d = 1, besides every case's own targets
// (SyncCase.MeetsTargets). A goal whose case was not run is omitted.
type SyncGoals struct {
	BytesPerDifferenceAt100k1000 *float64 `json:"reconcile_bytes_per_difference_n100000_d1000,omitempty"`
	BytesAt1M1                   *int64   `json:"reconcile_bytes_n1000000_d1,omitempty"`
	RoundsAt1M1                  *int     `json:"rounds_n1000000_d1,omitempty"`
	Met                          bool     `json:"met"`
}

// SyncCase is one session. Bytes count every frame both ways, length
// prefixes included.
type SyncCase struct {
	Store string `json:"store"` // memory or disk
	N     int    `json:"n"`     // envelopes in the union of both stores
	D     int    `json:"d"`     // envelopes only one side held
	// ReconcileBytes: hello, status and reconcile messages; Rounds: their
	// round trips.
	ReconcileBytes     int64   `json:"reconcile_bytes"`
	BytesPerDifference float64 `json:"reconcile_bytes_per_difference"`
	Rounds             int     `json:"rounds"`
	// Seconds is the whole session as the initiator saw it (reconciliation,
	// transfer, final acknowledgement); ReconcileSeconds its first part.
	Seconds          float64 `json:"seconds"`
	ReconcileSeconds float64 `json:"reconcile_seconds"`
	// CPUSeconds is the CPU the process used during the session: both
	// hosts' work (they share the process), whatever else the machine is
	// doing. On a loaded machine it says what a session costs better than
	// Seconds, which includes waiting for a core.
	CPUSeconds float64 `json:"cpu_seconds"`
	// TransferBytes: the pushed envelopes, done and the final status.
	TransferBytes  int64 `json:"transfer_bytes"`
	TransferRounds int   `json:"transfer_rounds"`
	TotalBytes     int64 `json:"total_bytes"`
	// PeakHeapBytes is the most Go heap in use during the session (both
	// hosts and stores live in this process), sampled every 2 ms;
	// PeakHeapGrowthBytes that peak minus the heap in use just before the
	// session, after a collection: what the session itself held.
	PeakHeapBytes       uint64 `json:"peak_heap_bytes"`
	PeakHeapGrowthBytes uint64 `json:"peak_heap_growth_bytes"`
	// MissingBytes is the size of the d envelopes that had to move.
	MissingBytes int64 `json:"missing_bytes"`
	// NaiveBytes is the exchange of all IDs: n × 32.
	NaiveBytes int64 `json:"naive_bytes"`
	// Targets: TotalBytes ≤ 2·MissingBytes + 16 KiB and Rounds ≤
	// 2·log16(n/d) + 2 (1 for d = 0).
	TargetBytes  int64   `json:"target_bytes"`
	TargetRounds float64 `json:"target_rounds"`
	MeetsTargets bool    `json:"meets_targets"`
	Received     int     `json:"received"`
	Sent         int     `json:"sent"`
}

// syncTargets returns the targets of a case.
func syncTargets(n, d int, missingBytes int64) (int64, float64) {
	rounds := 1.0
	if d > 0 {
		rounds = 2*math.Log(float64(n)/float64(d))/math.Log(16) + 2
	}
	return 2*missingBytes + 16<<10, rounds
}

// Sync runs the sync benchmark over real libp2p hosts on loopback TCP.
// Each case fills two fresh stores (the host's parameters: durable on
// disk), starts a sync service on each and runs one session; both stores
// must hold the union afterwards.
func Sync(ctx context.Context, p SyncParams) (*SyncResult, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	dir, cleanup, err := workdir(p.Dir, "sync-")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	hosts := make([]host.Host, 2)
	for i := range hosts {
		if hosts[i], err = libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0")); err != nil {
			return nil, fmt.Errorf("bench: sync host: %w", err)
		}
		defer hosts[i].Close()
	}
	if err := hosts[0].Connect(ctx, peer.AddrInfo{ID: hosts[1].ID(), Addrs: hosts[1].Addrs()}); err != nil {
		return nil, fmt.Errorf("bench: sync connect: %w", err)
	}
	res := &SyncResult{Workload: "sync", EnvelopeSize: p.Size, Machine: machine()}
	var setup time.Duration
	for _, n := range p.N {
		start := time.Now()
		k, err := writeKey()
		if err != nil {
			return nil, err
		}
		pool, err := makeEnvelopes(k, n, p.Size)
		if err != nil {
			return nil, err
		}
		setup += time.Since(start)
		for _, kind := range p.Stores {
			if p.Reuse {
				cs, took, err := syncReused(ctx, p, hosts, pool, kind, fmt.Sprintf("%s/%s-%d", dir, kind, n))
				if err != nil {
					return nil, fmt.Errorf("bench: sync %s n = %d: %w", kind, n, err)
				}
				setup += took
				res.Cases = append(res.Cases, cs...)
				continue
			}
			for i, d := range p.D {
				c, took, err := syncCase(ctx, p, hosts, pool, kind, d, fmt.Sprintf("%s/%s-%d-%d", dir, kind, n, i))
				if err != nil {
					return nil, fmt.Errorf("bench: sync %s n = %d d = %d: %w", kind, n, d, err)
				}
				setup += took
				if p.Progress != nil {
					p.Progress(*c)
				}
				res.Cases = append(res.Cases, *c)
			}
		}
		pool = nil
		runtime.GC()
	}
	res.SetupSeconds = setup.Seconds()
	res.Goals = syncGoals(res.Cases)
	return res, nil
}

func syncGoals(cases []SyncCase) SyncGoals {
	g := SyncGoals{Met: true}
	for _, c := range cases {
		g.Met = g.Met && c.MeetsTargets
		switch {
		case c.N == 100_000 && c.D == 1000:
			v := c.BytesPerDifference
			g.BytesPerDifferenceAt100k1000 = &v
			g.Met = g.Met && v <= 100
		case c.N == 1_000_000 && c.D == 1:
			b, r := c.ReconcileBytes, c.Rounds
			g.BytesAt1M1, g.RoundsAt1M1 = &b, &r
			g.Met = g.Met && b <= 3000 && r <= 4
		}
	}
	return g
}

// syncStoreParams are a benchmark store's parameters: the host's (durable
// on disk) without background jobs, quotas and new mailboxes' budgets (a
// case's mailbox is new by construction).
func syncStoreParams(kind string) store.Params {
	sp := store.InMemoryParams()
	if kind == StoreDisk {
		sp = storeParams()
	}
	sp.RetentionInterval, sp.Default, sp.GlobalQuotaBytes = 0, store.MailboxPolicy{}, 0
	sp.Admission = store.AdmissionParams{}
	return sp
}

// syncPair is the two stores and sync services of a case.
type syncPair struct {
	stores []*store.Store
	svcs   []*hostsync.Service
}

func (sp *syncPair) close() {
	for j := range sp.svcs {
		if sp.svcs[j] != nil {
			_ = sp.svcs[j].Close()
		}
		if sp.stores[j] != nil {
			_ = sp.stores[j].Close()
		}
	}
}

// openPair fills two fresh stores, a with common and onlyA, b with common
// and onlyB, and starts a sync service on each.
func openPair(ctx context.Context, p SyncParams, hosts []host.Host, kind, dir string, common, onlyA, onlyB []*envelope.Envelope) (*syncPair, error) {
	sp := &syncPair{stores: make([]*store.Store, 2), svcs: make([]*hostsync.Service, 2)}
	var fill sync.WaitGroup
	errs := make([]error, 2)
	for j, own := range [][]*envelope.Envelope{onlyA, onlyB} {
		fill.Add(1)
		go func() {
			defer fill.Done()
			sp.stores[j], errs[j] = syncFill(ctx, kind, fmt.Sprintf("%s-%c", dir, 'a'+j), common, own)
		}()
	}
	fill.Wait()
	if err := errors.Join(errs...); err != nil {
		sp.close()
		return nil, err
	}
	m := common[0].Mailbox()
	for j := range sp.svcs {
		st := sp.stores[j]
		deliver := func(ctx context.Context, e *envelope.Envelope, _ peer.ID) (bool, error) {
			r, err := st.Put(ctx, e)
			return r.Duplicate, err
		}
		var err error
		if sp.svcs[j], err = hostsync.New(hosts[j], st, deliver, nil, hostsync.WithParams(p.Params), hostsync.WithLogger(quiet)); err != nil {
			sp.close()
			return nil, err
		}
		sp.svcs[j].Watch(m)
	}
	return sp, nil
}

// syncReused runs every d of p on one pair of stores (SyncParams.Reuse).
func syncReused(ctx context.Context, p SyncParams, hosts []host.Host, pool []*envelope.Envelope, kind, dir string) ([]SyncCase, time.Duration, error) {
	start := time.Now()
	total := 0
	for _, d := range p.D {
		total += d
	}
	n := len(pool)
	if total >= n {
		return nil, 0, fmt.Errorf("%w: the differences (%d) leave no common envelopes of %d", ErrInvalidParams, total, n)
	}
	sp, err := openPair(ctx, p, hosts, kind, dir, pool[:n-total], nil, nil)
	if err != nil {
		return nil, 0, err
	}
	defer sp.close()
	setup := time.Since(start)
	var out []SyncCase
	next := n - total
	for _, d := range p.D {
		extra := pool[next : next+d]
		t := time.Now()
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for j, own := range [][]*envelope.Envelope{extra[:d/2], extra[d/2:]} {
			wg.Add(1)
			go func() { defer wg.Done(); errs[j] = putMany(ctx, sp.stores[j], own) }()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, 0, err
		}
		setup += time.Since(t)
		next += d
		c, err := runCase(ctx, hosts, sp, pool[0].Mailbox(), kind, next, extra)
		if err != nil {
			return nil, 0, fmt.Errorf("d = %d: %w", d, err)
		}
		if p.Progress != nil {
			p.Progress(*c)
		}
		out = append(out, *c)
	}
	return out, setup, nil
}

// syncCase fills two fresh stores (setup time returned separately) and
// runs one session from hosts[0].
func syncCase(ctx context.Context, p SyncParams, hosts []host.Host, pool []*envelope.Envelope, kind string, d int, dir string) (*SyncCase, time.Duration, error) {
	start := time.Now()
	n := len(pool)
	common, onlyA, onlyB := pool[:n-d], pool[n-d:n-d+d/2], pool[n-d+d/2:]
	sp, err := openPair(ctx, p, hosts, kind, dir, common, onlyA, onlyB)
	if err != nil {
		return nil, 0, err
	}
	defer sp.close()
	setup := time.Since(start)
	c, err := runCase(ctx, hosts, sp, pool[0].Mailbox(), kind, n, pool[n-d:])
	return c, setup, err
}

// runCase runs one session from hosts[0] over sp, whose stores must then
// both hold n envelopes; moved are the envelopes only one side held.
func runCase(ctx context.Context, hosts []host.Host, sp *syncPair, m envelope.MailboxID, kind string, n int, moved []*envelope.Envelope) (*SyncCase, error) {
	d := len(moved)
	stores, svcs := sp.stores, sp.svcs
	runtime.GC()
	base := heapInUse()
	var peak atomic.Uint64
	peak.Store(base)
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			if h := heapInUse(); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	cpu0 := cpuTime()
	st, err := svcs[0].SyncWith(ctx, hosts[1].ID(), m)
	cpu := cpuTime() - cpu0
	close(stop)
	<-sampled
	if err != nil {
		return nil, err
	}
	for j, s := range stores {
		ms, err := s.Stats(m)
		if err != nil {
			return nil, err
		}
		if ms.Count != int64(n) {
			return nil, fmt.Errorf("%w: store %d holds %d envelopes after the session, want %d", ErrMismatch, j, ms.Count, n)
		}
	}
	var missing int64
	for _, e := range moved {
		missing += int64(e.Size())
	}
	c := &SyncCase{
		Store: kind, N: n, D: d,
		ReconcileBytes:   st.ReconcileBytesSent + st.ReconcileBytesReceived,
		Rounds:           st.Rounds,
		Seconds:          st.Elapsed.Seconds(),
		ReconcileSeconds: st.ReconcileElapsed.Seconds(),
		CPUSeconds:       cpu.Seconds(),
		TotalBytes:       st.BytesSent + st.BytesReceived,
		TransferRounds:   st.TransferRounds,
		PeakHeapBytes:    peak.Load(),
		MissingBytes:     missing,
		NaiveBytes:       int64(n) * 32,
		Received:         st.Received,
		Sent:             st.Sent,
	}
	c.PeakHeapGrowthBytes = c.PeakHeapBytes - base
	c.TransferBytes = c.TotalBytes - c.ReconcileBytes
	c.BytesPerDifference = float64(c.ReconcileBytes) / float64(max(d, 1))
	c.TargetBytes, c.TargetRounds = syncTargets(n, d, missing)
	c.MeetsTargets = c.TotalBytes <= c.TargetBytes && float64(c.Rounds) <= c.TargetRounds
	return c, nil
}

// syncFill opens a fresh store of kind in dir and stores the envelopes of
// lists with many concurrent Puts (group commits of up to 256).
func syncFill(ctx context.Context, kind, dir string, lists ...[]*envelope.Envelope) (*store.Store, error) {
	if kind == StoreMemory {
		dir = ""
	}
	st, err := store.Open(dir, syncStoreParams(kind), store.WithLogger(quiet))
	if err != nil {
		return nil, err
	}
	var all []*envelope.Envelope
	for _, l := range lists {
		all = append(all, l...)
	}
	if err := fillStore(ctx, st, all); err != nil {
		_ = st.Close()
		return nil, err
	}
	return st, nil
}

var heapSample = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}

// heapInUse is the bytes of live and unswept heap objects.
func heapInUse() uint64 {
	s := make([]metrics.Sample, 1)
	s[0].Name = heapSample[0].Name
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
