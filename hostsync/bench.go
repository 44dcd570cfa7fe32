package hostsync

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/store"
)

// BenchParams describe a sync benchmark: for each d in D, two hosts whose
// stores hold n envelopes between them, d of which only one side holds
// (half on each side), run one session.
type BenchParams struct {
	N            int
	D            []int
	EnvelopeSize int // bytes of each envelope encoding
	// Dir, if set, holds on-disk stores (in fresh subdirectories);
	// otherwise the stores are in memory.
	Dir    string
	Params Params
	Log    *slog.Logger
}

// DefaultBenchParams are the figures: n = 100,000 envelopes of
// 1 KiB, d = 0, 10 and 1,000.
func DefaultBenchParams() BenchParams {
	return BenchParams{N: 100_000, D: []int{0, 10, 1000}, EnvelopeSize: 1024, Params: DefaultParams()}
}

// BenchResult is the outcome of Bench, one entry per d.
type BenchResult struct {
	Results      []BenchCase `json:"results"`
	EnvelopeSize int         `json:"envelope_size"`
	SetupSeconds float64     `json:"setup_seconds"`
	GOMAXPROCS   int         `json:"gomaxprocs"`
	GoVersion    string      `json:"go_version"`
}

// BenchCase is one session. Bytes count every frame both ways, length
// prefixes included.
type BenchCase struct {
	N int `json:"n"` // envelopes in the union of both stores
	D int `json:"d"` // envelopes only one side held
	// ReconcileBytes: hello, status and reconcile messages; Rounds: their
	// round trips.
	ReconcileBytes int64 `json:"reconcile_bytes"`
	Rounds         int   `json:"rounds"`
	// Seconds is the whole session as the initiator saw it (set snapshot,
	// reconciliation, transfer, final acknowledgement).
	Seconds float64 `json:"seconds"`
	// TransferBytes: the batches, envelopes and acknowledgement;
	// TransferRounds: batches that waited for answers.
	TransferBytes  int64 `json:"transfer_bytes"`
	TransferRounds int   `json:"transfer_rounds"`
	TotalBytes     int64 `json:"total_bytes"`
	// MissingBytes is the size of the d envelopes that had to move.
	MissingBytes int64 `json:"missing_bytes"`
	// NaiveBytes is the exchange of all IDs: n × 32.
	NaiveBytes int64 `json:"naive_bytes"`
	// Targets: TotalBytes ≤ 2·MissingBytes + 16 KiB and Rounds ≤
	// 2·log16(n/d) + 2 (2 for d = 0).
	TargetBytes  int64   `json:"target_bytes"`
	TargetRounds float64 `json:"target_rounds"`
	MeetsTargets bool    `json:"meets_targets"`
	Received     int     `json:"received"`
	Sent         int     `json:"sent"`
}

// benchTargets returns the targets of a case.
func benchTargets(n, d int, missingBytes int64) (int64, float64) {
	rounds := 2.0
	if d > 0 {
		rounds = 2*math.Log(float64(n)/float64(d))/math.Log(16) + 2
	}
	return 2*missingBytes + 16<<10, rounds
}

// Bench runs the sync benchmark over real libp2p hosts on loopback TCP.
func Bench(ctx context.Context, bp BenchParams) (*BenchResult, error) {
	if bp.N < 1 || bp.EnvelopeSize <= envelope.Overhead || bp.EnvelopeSize > bp.Params.MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: bench needs n ≥ 1 and an envelope size in (%d, %d]", ErrInvalidParams, envelope.Overhead, bp.Params.MaxEnvelopeSize)
	}
	for _, d := range bp.D {
		if d < 0 || d > bp.N {
			return nil, fmt.Errorf("%w: d = %d not in [0, n = %d]", ErrInvalidParams, d, bp.N)
		}
	}
	if err := bp.Params.validate(); err != nil {
		return nil, err
	}
	if bp.Log == nil {
		bp.Log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	pool, err := benchEnvelopes(bp.N, bp.EnvelopeSize)
	if err != nil {
		return nil, err
	}
	hosts := make([]host.Host, 2)
	for i := range hosts {
		if hosts[i], err = libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0")); err != nil {
			return nil, fmt.Errorf("hostsync: bench host: %w", err)
		}
		defer hosts[i].Close()
	}
	if err := hosts[0].Connect(ctx, peer.AddrInfo{ID: hosts[1].ID(), Addrs: hosts[1].Addrs()}); err != nil {
		return nil, fmt.Errorf("hostsync: bench connect: %w", err)
	}
	res := &BenchResult{EnvelopeSize: bp.EnvelopeSize, GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version()}
	setup := time.Since(start)
	for i, d := range bp.D {
		c, took, err := benchCase(ctx, bp, hosts, pool, d, i)
		if err != nil {
			return nil, fmt.Errorf("hostsync: bench d = %d: %w", d, err)
		}
		setup += took
		res.Results = append(res.Results, *c)
	}
	res.SetupSeconds = setup.Seconds()
	return res, nil
}

// benchCase fills two fresh stores (setup time returned separately) and
// runs one session from hosts[0].
func benchCase(ctx context.Context, bp BenchParams, hosts []host.Host, pool []*envelope.Envelope, d, i int) (*BenchCase, time.Duration, error) {
	start := time.Now()
	m := pool[0].Mailbox()
	common, onlyA, onlyB := pool[:bp.N-d], pool[bp.N-d:bp.N-d+d/2], pool[bp.N-d+d/2:]
	stores := make([]*store.Store, 2)
	svcs := make([]*Service, 2)
	defer func() {
		for j := range svcs {
			if svcs[j] != nil {
				_ = svcs[j].Close()
			}
			if stores[j] != nil {
				_ = stores[j].Close()
			}
		}
	}()
	var fill sync.WaitGroup
	errs := make([]error, 2)
	for j, own := range [][]*envelope.Envelope{onlyA, onlyB} {
		sp := store.InMemoryParams()
		dir := ""
		if bp.Dir != "" {
			sp = store.DefaultParams()
			dir = fmt.Sprintf("%s/case%d-%c", bp.Dir, i, 'a'+j)
		}
		sp.RetentionInterval, sp.Default, sp.GlobalQuotaBytes = 0, store.MailboxPolicy{}, 0
		sp.Badger.MemTableSize = 16 << 20
		st, err := store.Open(dir, sp, store.WithLogger(bp.Log))
		if err != nil {
			return nil, 0, err
		}
		stores[j] = st
		fill.Add(1)
		go func() {
			defer fill.Done()
			errs[j] = benchPut(ctx, st, common, own)
		}()
	}
	fill.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, 0, err
	}
	for j := range svcs {
		st := stores[j]
		deliver := func(ctx context.Context, e *envelope.Envelope, _ peer.ID) (bool, error) {
			r, err := st.Put(ctx, e)
			return r.Duplicate, err
		}
		var err error
		if svcs[j], err = New(hosts[j], st, deliver, nil, WithParams(bp.Params), WithLogger(bp.Log)); err != nil {
			return nil, 0, err
		}
		svcs[j].Watch(m)
	}
	setup := time.Since(start)

	st, err := svcs[0].SyncWith(ctx, hosts[1].ID(), m)
	if err != nil {
		return nil, 0, err
	}
	for j, s := range stores {
		ms, err := s.Stats(m)
		if err != nil {
			return nil, 0, err
		}
		if ms.Count != int64(bp.N) {
			return nil, 0, fmt.Errorf("store %d holds %d envelopes after the session, want %d", j, ms.Count, bp.N)
		}
	}
	var missing int64
	for _, e := range pool[bp.N-d:] {
		missing += int64(e.Size())
	}
	c := &BenchCase{
		N: bp.N, D: d,
		ReconcileBytes: st.ReconcileBytesSent + st.ReconcileBytesReceived,
		Rounds:         st.Rounds,
		Seconds:        st.Elapsed.Seconds(),
		TotalBytes:     st.BytesSent + st.BytesReceived,
		TransferRounds: st.TransferRounds,
		MissingBytes:   missing,
		NaiveBytes:     int64(bp.N) * 32,
		Received:       st.Received,
		Sent:           st.Sent,
	}
	c.TransferBytes = c.TotalBytes - c.ReconcileBytes
	c.TargetBytes, c.TargetRounds = benchTargets(bp.N, d, missing)
	c.MeetsTargets = c.TotalBytes <= c.TargetBytes && float64(c.Rounds) <= c.TargetRounds
	return c, setup, nil
}

// benchPut stores envelopes with enough concurrent Puts to batch commits.
func benchPut(ctx context.Context, st *store.Store, lists ...[]*envelope.Envelope) error {
	const workers = 64
	var all []*envelope.Envelope
	for _, l := range lists {
		all = append(all, l...)
	}
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(all) && errs[w] == nil; i += workers {
				_, errs[w] = st.Put(ctx, all[i])
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// benchEnvelopes seals n envelopes of size bytes under one fresh write key
// (one mailbox), on every core. The "ciphertext" is pseudo-random filler:
// hosts never look inside.
func benchEnvelopes(n, size int) ([]*envelope.Envelope, error) {
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	out := make([]*envelope.Envelope, n)
	workers := runtime.GOMAXPROCS(0)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), uint64(n)))
			nonce := make([]byte, envelope.NonceSize)
			ct := make([]byte, size-envelope.Overhead)
			for i := w; i < n; i += workers {
				for j := range nonce {
					nonce[j] = byte(r.Uint32())
				}
				for j := range ct {
					ct[j] = byte(r.Uint32())
				}
				if out[i], errs[w] = envelope.Seal(k, nonce, ct, size); errs[w] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}
