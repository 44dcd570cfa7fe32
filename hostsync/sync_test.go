package hostsync

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/status"
	tu "github.com/meshnode/meshnode/internal/testutil"
)

func TestTwoHostsConvergeBothWays(t *testing.T) {
	leakCheck(t)
	a, b := newNode(t, nodeOpts{}), newNode(t, nodeOpts{})
	connect(t, a, b)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	common := seal(t, k, 200, 1024)
	onlyA, onlyB := seal(t, k, 300, 1024), seal(t, k, 250, 700)
	put(t, a.st, append(common, onlyA...)...)
	put(t, b.st, append(common, onlyB...)...)

	st, err := a.sv.SyncWith(context.Background(), b.h.ID(), m)
	if err != nil {
		t.Fatalf("SyncWith: %v", err)
	}
	if st.Received != len(onlyB) || st.Sent != len(onlyA) || st.Need != len(onlyB) || st.Have != len(onlyA) {
		t.Fatalf("stats %+v: want %d received and needed, %d sent and had", st, len(onlyB), len(onlyA))
	}
	want := sortedIDs(idsOf(slices.Concat(common, onlyA, onlyB)))
	for name, n := range map[string]*testNode{"a": a, "b": b} {
		if got := liveIDs(t, n.st, m); !slices.Equal(got, want) {
			t.Fatalf("%s holds %d IDs, want %d", name, len(got), len(want))
		}
	}
	runs := b.served.all()
	if len(runs) != 1 || runs[0].err != nil || runs[0].st.Received != len(onlyA) {
		t.Fatalf("responder saw %+v, want one clean session that received %d", runs, len(onlyA))
	}

	// A second session finds nothing and moves nothing: one round, a few
	// hundred bytes.
	st, err = b.sv.SyncWith(context.Background(), a.h.ID(), m)
	if err != nil {
		t.Fatal(err)
	}
	if st.Received+st.Sent+st.Have+st.Need != 0 || st.Rounds != 1 || st.BytesSent+st.BytesReceived > 1024 {
		t.Fatalf("second session %+v: want nothing moved in one round", st)
	}
}

// Without a Policy, a service syncs only the mailboxes it watches.
func TestNilPolicyServesWatchedOnly(t *testing.T) {
	leakCheck(t)
	a, b := newNode(t, nodeOpts{}), newNode(t, nodeOpts{watchedOnly: true})
	connect(t, a, b)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	put(t, a.st, seal(t, k, 4, 300)...)
	if _, err := a.sv.SyncWith(context.Background(), b.h.ID(), m); !errors.Is(err, status.ErrNotServed) {
		t.Fatalf("unwatched mailbox: %v, want ErrNotServed", err)
	}
	b.sv.Watch(m) // takes effect for the policy at once
	if _, err := a.sv.SyncWith(context.Background(), b.h.ID(), m); err != nil {
		t.Fatal(err)
	}
	if got := len(liveIDs(t, b.st, m)); got != 4 {
		t.Fatalf("b holds %d, want 4", got)
	}
}

// A byte budget per peer (PeerRate, PeerBurst) bounds what sync moves: a
// side stops pushing when it is spent and reports Throttled, and the next
// session moves the rest once it refills.
func TestPeerByteBudget(t *testing.T) {
	leakCheck(t)
	p := testParams()
	p.MaxEnvelopeSize = 4096
	p.PeerRate, p.PeerBurst = 4096, 8192 // 8 envelopes of 1000 bytes, then 4 a second
	a, b := newNode(t, nodeOpts{params: &p}), newNode(t, nodeOpts{})
	connect(t, a, b)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	envs := seal(t, k, 20, 1000)
	put(t, a.st, envs...)

	st, err := a.sv.SyncWith(context.Background(), b.h.ID(), m)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Throttled || !st.Truncated || st.Sent != 8 || st.Have != 20 {
		t.Fatalf("first session %+v: want 8 of 20 sent, throttled", st)
	}
	if got := liveIDs(t, b.st, m); len(got) != 8 {
		t.Fatalf("b holds %d envelopes, want 8", len(got))
	}
	tu.Eventually(t, 20*time.Second, func() bool {
		if _, err := a.sv.SyncWith(context.Background(), b.h.ID(), m); err != nil {
			t.Fatal(err)
		}
		return len(liveIDs(t, b.st, m)) == 20
	}, "the rest moves as the budget refills")
}
