package hostsync

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	tu "github.com/meshnode/meshnode/internal/testutil"
)

// connectedHosts is a WithHosts function: the peers h is connected to.
func connectedHosts(h *host.Host) func(envelope.MailboxID) []peer.ID {
	return func(envelope.MailboxID) []peer.ID { return (*h).Network().Peers() }
}

// Three hosts receive different envelopes while partitioned; once the
// partition heals, their schedulers bring all three to the same set.
func TestPartitionedHostsConvergeAfterHealing(t *testing.T) {
	leakCheck(t)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	nodes := make([]*testNode, 3)
	for i := range nodes {
		var h host.Host
		nodes[i] = newNode(t, nodeOpts{hostsOf: connectedHosts(&h)})
		h = nodes[i].h
		nodes[i].sv.Watch(m)
	}
	common := seal(t, k, 20, 600)
	var all []*envelope.Envelope
	all = append(all, common...)
	for _, n := range nodes {
		own := seal(t, k, 40, 600)
		put(t, n.st, append(common, own...)...)
		all = append(all, own...)
	}
	want := sortedIDs(idsOf(all))

	connect(t, nodes[0], nodes[1])
	connect(t, nodes[1], nodes[2])
	connect(t, nodes[0], nodes[2])
	tu.Eventually(t, 20*time.Second, func() bool {
		for _, n := range nodes {
			if !slices.Equal(liveIDs(t, n.st, m), want) {
				return false
			}
		}
		return true
	}, "three hosts converge on %d envelopes", len(want))
	for _, n := range nodes {
		for _, r := range n.served.all() {
			if isViolation(r.err) {
				t.Fatalf("violation between honest hosts: %v", r.err)
			}
		}
	}
}

// A new host in WithHosts is synced with at once; a PeerJoined one too;
// changes after that arrive with the periodic sync.
func TestWatchSyncsNewHostsAndPeriodically(t *testing.T) {
	leakCheck(t)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	var hosts atomic.Pointer[[]peer.ID]
	hosts.Store(&[]peer.ID{})
	p := testParams()
	p.Interval = 300 * time.Millisecond
	a := newNode(t, nodeOpts{params: &p, hostsOf: func(envelope.MailboxID) []peer.ID { return *hosts.Load() }})
	b, c := newNode(t, nodeOpts{}), newNode(t, nodeOpts{})
	connect(t, a, b)
	connect(t, a, c)
	fromB, fromC := seal(t, k, 10, 500), seal(t, k, 10, 500)
	put(t, b.st, fromB...)
	put(t, c.st, fromC...)
	a.sv.Watch(m)

	hosts.Store(&[]peer.ID{b.h.ID()})
	tu.Eventually(t, 10*time.Second, func() bool { return len(liveIDs(t, a.st, m)) == 10 }, "a syncs with b once b is a known host")
	a.sv.PeerJoined(m, c.h.ID())
	tu.Eventually(t, 10*time.Second, func() bool { return len(liveIDs(t, a.st, m)) == 20 }, "a syncs with c once c joined")
	later := seal(t, k, 5, 500)
	put(t, c.st, later...)
	tu.Eventually(t, 10*time.Second, func() bool { return len(liveIDs(t, a.st, m)) == 25 }, "a picks up c's new envelopes with the periodic sync")

	// Unwatched (and with no Policy): a no longer syncs m, and a service
	// without a policy refuses it.
	a.sv.Unwatch(m)
	tu.Eventually(t, 5*time.Second, func() bool { return !a.sv.sched.watching(m) }, "unwatched")
}

// countingPolicy refuses everything and counts the sessions it saw.
type countingPolicy struct{ n atomic.Int64 }

func (p *countingPolicy) Serves(envelope.MailboxID, peer.ID) bool { p.n.Add(1); return false }

// Triggers against a failing peer are coalesced and backed off: far fewer
// sessions than triggers.
func TestTriggerBacksOffAfterFailures(t *testing.T) {
	leakCheck(t)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	refuser := &countingPolicy{}
	b := newNode(t, nodeOpts{policy: refuser})
	p := testParams()
	p.BackoffMin, p.BackoffMax, p.Jitter = 100*time.Millisecond, time.Second, 0.25
	a := newNode(t, nodeOpts{params: &p, hostsOf: func(envelope.MailboxID) []peer.ID { return []peer.ID{b.h.ID()} }})
	connect(t, a, b)
	a.sv.Watch(m)
	tu.Eventually(t, 10*time.Second, func() bool { return refuser.n.Load() >= 1 }, "first session")
	start := time.Now()
	// A gap detector calling Trigger every 10 ms (pacing the source, not
	// synchronising): without backoff every call would start a session.
	const triggers = 30
	pace := time.NewTicker(10 * time.Millisecond)
	defer pace.Stop()
	for range triggers {
		a.sv.Trigger(m)
		<-pace.C
	}
	// The loop handles posts in order: once this one ran, so did the
	// triggers.
	handled := make(chan struct{})
	a.sv.sched.post(func() { close(handled) })
	<-handled
	elapsed := time.Since(start)
	// After the k-th failure the next session waits at least
	// BackoffMin·2^(k-1)·(1-Jitter); one more may be in flight.
	bound := 2 + int64(elapsed/(p.BackoffMin*3/4))
	if got := refuser.n.Load(); got > bound {
		t.Fatalf("%d sessions for %d triggers in %v, want at most %d", got, triggers, elapsed, bound)
	}
}

// At most one session per (peer, mailbox) at a time, in either direction.
func TestOneSessionPerPeerAndMailbox(t *testing.T) {
	leakCheck(t)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	a := newNode(t, nodeOpts{})
	b := newNode(t, nodeOpts{})
	// b's store hand-off blocks until released, holding the session open.
	gate, entered := make(chan struct{}), make(chan struct{}, 100)
	var once sync.Once
	b.sv.deliver = func(ctx context.Context, e *envelope.Envelope, p peer.ID) (bool, error) {
		entered <- struct{}{}
		once.Do(func() { <-gate })
		return storeDeliver(b.st)(ctx, e, p)
	}
	connect(t, a, b)
	put(t, a.st, seal(t, k, 3, 400)...)
	done := make(chan error, 1)
	go func() {
		_, err := a.sv.SyncWith(context.Background(), b.h.ID(), m)
		done <- err
	}()
	<-entered
	if _, err := a.sv.SyncWith(context.Background(), b.h.ID(), m); !errors.Is(err, ErrBusy) {
		t.Fatalf("second session a→b: %v, want ErrBusy", err)
	}
	if _, err := b.sv.SyncWith(context.Background(), a.h.ID(), m); !errors.Is(err, ErrBusy) {
		t.Fatalf("session b→a while a→b runs: %v, want ErrBusy", err)
	}
	other := tu.Mailbox(tu.WriteKey(t))
	if _, err := b.sv.SyncWith(context.Background(), a.h.ID(), other); err != nil {
		t.Fatalf("session for another mailbox: %v", err)
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := len(liveIDs(t, b.st, m)); got != 3 {
		t.Fatalf("b holds %d, want 3", got)
	}
}
