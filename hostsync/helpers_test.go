package hostsync

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"github.com/meshnode/meshnode/envelope"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/store"
)

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

// leakCheck registers, before anything else is opened, a cleanup that
// fails the test if goroutines outlive every host, store and service.
func leakCheck(t *testing.T) {
	t.Helper()
	// The snapshot is taken now, before the test starts anything: taken
	// inside the cleanup it would ignore the very goroutines to find.
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		goleak.VerifyNone(t,
			before,
			// libp2p and badger keep process-wide workers.
			goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
			goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
			goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
		)
	})
}

// testParams are fast-moving defaults for tests.
func testParams() Params {
	p := DefaultParams()
	p.SessionTimeout = 20 * time.Second
	p.IdleTimeout = 10 * time.Second
	p.Interval = time.Hour
	p.PollInterval = 20 * time.Millisecond
	p.BackoffMin = 50 * time.Millisecond
	p.BackoffMax = 200 * time.Millisecond
	p.SessionRate = 0 // unlimited
	return p
}

type allowAll struct{}

func (allowAll) Serves(envelope.MailboxID, peer.ID) bool { return true }

type denyAll struct{}

func (denyAll) Serves(envelope.MailboxID, peer.ID) bool { return false }

func newHost(t testing.TB) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func storeParams() store.Params {
	p := store.InMemoryParams()
	p.RetentionInterval = 0
	return p
}

func newStore(t testing.TB, opts ...store.Option) *store.Store {
	t.Helper()
	st, err := store.Open("", storeParams(), append([]store.Option{store.WithLogger(quietLogger())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func storeDeliver(st *store.Store) DeliverFunc {
	return func(ctx context.Context, e *envelope.Envelope, _ peer.ID) (bool, error) {
		r, err := st.Put(ctx, e)
		return r.Duplicate, err
	}
}

// served records the responder's view of incoming sessions.
type served struct {
	mu   sync.Mutex
	runs []servedRun
}

type servedRun struct {
	from peer.ID
	st   Stats
	err  error
}

func (s *served) hook(p peer.ID, _ envelope.MailboxID, st *Stats, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runs = append(s.runs, servedRun{from: p, st: *st, err: err})
}

func (s *served) all() []servedRun {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.runs)
}

type testNode struct {
	h      host.Host
	st     *store.Store
	sv     *Service
	served *served
}

type nodeOpts struct {
	params  *Params
	policy  Policy
	hostsOf func(envelope.MailboxID) []peer.ID
	storeOp []store.Option
	// watchedOnly passes a nil Policy: only watched mailboxes are served.
	watchedOnly bool
}

func newNode(t testing.TB, o nodeOpts) *testNode {
	t.Helper()
	n := &testNode{h: newHost(t), st: newStore(t, o.storeOp...), served: &served{}}
	p := testParams()
	if o.params != nil {
		p = *o.params
	}
	pol := o.policy
	if pol == nil && !o.watchedOnly {
		pol = allowAll{}
	}
	opts := []Option{WithParams(p), WithLogger(quietLogger()), func(c *config) error { c.served = n.served.hook; return nil }}
	if o.hostsOf != nil {
		opts = append(opts, WithHosts(o.hostsOf))
	}
	sv, err := New(n.h, n.st, storeDeliver(n.st), pol, opts...)
	if err != nil {
		t.Fatal(err)
	}
	n.sv = sv
	t.Cleanup(func() { sv.Close() })
	return n
}

func connect(t testing.TB, a, b *testNode) {
	t.Helper()
	if err := a.h.Connect(context.Background(), peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// seal makes n fresh envelopes of size bytes (whole encoding) under k.
func seal(t testing.TB, k ed25519.PrivateKey, n, size int) []*envelope.Envelope {
	t.Helper()
	out := make([]*envelope.Envelope, n)
	for i := range out {
		out[i] = tu.Envelope(t, k, size-envelope.Overhead)
	}
	return out
}

func put(t testing.TB, st *store.Store, envs ...*envelope.Envelope) {
	t.Helper()
	for _, e := range envs {
		if _, err := st.Put(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
}

// ids returns every ID the store knows in m (live and tombstoned) and the
// live ones.
func ids(t testing.TB, st *store.Store, m envelope.MailboxID) (all, live []envelope.ID) {
	t.Helper()
	err := st.RangeIDs(m, envelope.ID{}, envelope.ID{}, func(id envelope.ID, l bool) bool {
		all = append(all, id)
		if l {
			live = append(live, id)
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return all, live
}

func liveIDs(t testing.TB, st *store.Store, m envelope.MailboxID) []envelope.ID {
	_, live := ids(t, st, m)
	return live
}

func idsOf(envs []*envelope.Envelope) []envelope.ID {
	out := make([]envelope.ID, len(envs))
	for i, e := range envs {
		out[i] = e.ID()
	}
	return out
}

func sortedIDs(l []envelope.ID) []envelope.ID {
	l = slices.Clone(l)
	slices.SortFunc(l, func(a, b envelope.ID) int { return slices.Compare(a[:], b[:]) })
	return slices.Compact(l)
}
