package hostsync

import (
	"context"
	"sync"
	"testing"
	"time"

	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/store"
)

// fakeClock is a store clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// One host expired old envelopes; the other still holds some of them and
// never had others. Repeated sessions both ways resurrect nothing, move
// nothing, and cost the same bounded traffic every time.
func TestRetentionNeitherResurrectsNorLoops(t *testing.T) {
	leakCheck(t)
	clock := &fakeClock{t: time.Now()}
	a := newNode(t, nodeOpts{storeOp: []store.Option{store.WithClock(clock.now)}})
	b := newNode(t, nodeOpts{})
	connect(t, a, b)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	old, oldOnlyA := seal(t, k, 40, 400), seal(t, k, 10, 400)
	put(t, a.st, append(old, oldOnlyA...)...)
	put(t, b.st, old...)
	clock.advance(2 * time.Hour)
	fresh := seal(t, k, 20, 400)
	put(t, a.st, fresh...)
	put(t, b.st, fresh...)
	if err := a.st.SetPolicy(m, store.MailboxPolicy{MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if n, err := a.st.EnforceRetention(context.Background()); err != nil || n != len(old)+len(oldOnlyA) {
		t.Fatalf("retention removed %d (%v), want %d", n, err, len(old)+len(oldOnlyA))
	}
	known, live := ids(t, a.st, m)
	if len(live) != len(fresh) || len(known) != len(fresh)+len(old)+len(oldOnlyA) {
		t.Fatalf("a knows %d IDs, %d live; want tombstones for the expired", len(known), len(live))
	}

	first := map[bool]int64{}
	for round := range 6 {
		from, to := a, b
		if round%2 == 1 {
			from, to = b, a
		}
		st, err := from.sv.SyncWith(context.Background(), to.h.ID(), m)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if st.Received != 0 || st.Sent != 0 || st.Truncated {
			t.Fatalf("round %d moved envelopes: %+v", round, st)
		}
		// Only the 10 envelopes b never had differ: a holds them as
		// tombstones, so it has nothing to push and counts them missing.
		if st.Have+st.Need != len(oldOnlyA) {
			t.Fatalf("round %d: difference %d, want %d", round, st.Have+st.Need, len(oldOnlyA))
		}
		if from == a && st.Missing != len(oldOnlyA) {
			t.Fatalf("round %d: %d missing, want %d", round, st.Missing, len(oldOnlyA))
		}
		bytes := st.BytesSent + st.BytesReceived
		if f, ok := first[from == a]; !ok {
			first[from == a] = bytes
		} else if bytes > f {
			t.Fatalf("round %d cost %d bytes, more than the first session's %d", round, bytes, f)
		}
		if bytes > 8<<10 {
			t.Fatalf("round %d cost %d bytes for 10 differing IDs", round, bytes)
		}
	}
	if got := liveIDs(t, a.st, m); len(got) != len(fresh) {
		t.Fatalf("a holds %d live envelopes after syncing, want %d (expired ones resurrected)", len(got), len(fresh))
	}
	if got := liveIDs(t, b.st, m); len(got) != len(old)+len(fresh) {
		t.Fatalf("b holds %d live envelopes, want %d", len(got), len(old)+len(fresh))
	}

	// The scheduler does not keep re-running a session whose difference
	// cannot be served: after the sessions Watch starts, nothing stays
	// pending.
	before := len(a.served.all()) + len(b.served.all())
	for _, n := range []*testNode{a, b} {
		n.sv.Watch(m)
		n.sv.PeerJoined(m, a.h.ID())
		n.sv.PeerJoined(m, b.h.ID())
	}
	tu.Eventually(t, 10*time.Second, func() bool {
		return len(a.served.all())+len(b.served.all()) > before && idle(a) && idle(b)
	}, "schedulers idle after their sessions")
	for _, r := range append(a.served.all(), b.served.all()...) {
		if r.err != nil || r.st.Received != 0 {
			t.Fatalf("scheduled session: %+v", r)
		}
	}
}

// idle reports whether n's scheduler has nothing running or pending.
func idle(n *testNode) bool {
	res := make(chan bool, 1)
	n.sv.sched.post(func() {
		ok := n.sv.sched.running == 0
		for _, ps := range n.sv.sched.pairs {
			ok = ok && !ps.pending && !ps.running
		}
		res <- ok
	})
	select {
	case ok := <-res:
		return ok
	case <-time.After(time.Second):
		return false
	}
}
