package hostsync

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/meshnode/meshnode/admission"
	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	tu "github.com/meshnode/meshnode/internal/testutil"
)

// gatedNode is a sync node whose incoming sessions pass an admission
// sync gate of two active sessions, one of them reserved for the
// established mailbox est, and two pending ones.
func gatedNode(t *testing.T, hello time.Duration, est envelope.MailboxID) (*testNode, *admission.Controller) {
	t.Helper()
	ap := admission.DefaultParams()
	ap.Sync = admission.GateParams{MaxPending: 2, PendingPerPrefix: 2, PendingPerPeer: 2,
		MaxStreams: 2, ReservedStreams: 1, PerPrefix: 2, PrivilegedPerPrefix: 2, PerPeer: 2}
	adm, err := admission.New(ap, nil)
	if err != nil {
		t.Fatal(err)
	}
	adm.SetClassifier(func(m envelope.MailboxID) admission.Class {
		if m == est {
			return admission.ClassEstablished
		}
		return admission.ClassNew
	})
	p := testParams()
	p.HelloTimeout = hello
	p.IdleTimeout = max(p.IdleTimeout, hello)
	n := newNode(t, nodeOpts{params: &p})
	n.sv.adm = adm
	return n, adm
}

func refusals(adm *admission.Controller) map[admission.Reason]uint64 {
	out := map[admission.Reason]uint64{}
	for _, r := range adm.Refusals().Counts() {
		out[r.Reason] = r.Total
	}
	return out
}

// A stream that sends no hello is reset after HelloTimeout (counted as
// an idle timeout), and the oldest of more pending streams than the gate
// holds is reset at once to make room (counted as evicted), long before
// its own timeout.
func TestSyncGateIdleStreams(t *testing.T) {
	leakCheck(t)
	est := tu.Mailbox(tu.WriteKey(t))
	quick, qadm := gatedNode(t, 200*time.Millisecond, est)
	slow, sadm := gatedNode(t, time.Minute, est)
	for _, tc := range []struct {
		n      *testNode
		adm    *admission.Controller
		open   int
		reason admission.Reason
	}{
		{quick, qadm, 1, admission.ReasonIdleTimeout},
		{slow, sadm, 3, admission.ReasonIdleEvicted},
	} {
		evil := newEvil(t, tc.n)
		var first network.Stream
		for i := range tc.open {
			str, err := evil.h.NewStream(context.Background(), tc.n.h.ID(), ProtocolID)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { str.Reset() })
			_, _ = str.Write(nil) // the protocol header, no hello
			if i == 0 {
				first = str
			}
			// One at a time, so the first is the oldest.
			tu.Eventually(t, 10*time.Second, func() bool {
				u := tc.adm.Sync().Usage()
				return u.Pending == min(i+1, 2) || refusals(tc.adm)[tc.reason] > 0
			}, "stream %d pending", i)
		}
		_ = first.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := first.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%s: the idle stream was not reset: %v", tc.reason, err)
		}
		tu.Eventually(t, 10*time.Second, func() bool { return refusals(tc.adm)[tc.reason] > 0 }, "%s counted", tc.reason)
		if u := tc.adm.Sync().Usage(); u.Pending > 2 {
			t.Fatalf("%d streams pending, at most 2", u.Pending)
		}
	}
}

// A slow session for a new mailbox holds the only general slot: a
// second one is refused as busy, reading once; a session for the
// established mailbox still gets the reserved slot and syncs.
func TestSyncGateReservesForEstablished(t *testing.T) {
	leakCheck(t)
	ek := tu.WriteKey(t)
	est := tu.Mailbox(ek)
	host, adm := gatedNode(t, time.Minute, est)
	peer := newNode(t, nodeOpts{})
	connect(t, peer, host)
	evil := newEvil(t, host)

	// The slow session: a hello and nothing more (its status comes with
	// the answer to a reconcile message that never comes).
	evil.open(t, host.h.ID(), defaultHello(tu.Mailbox(tu.WriteKey(t))).marshal())
	tu.Eventually(t, 10*time.Second, func() bool {
		u := adm.Sync().Usage()
		return u.Active == 1 && u.General == 1
	}, "the slow session to hold the general slot")

	_, err := peer.sv.SyncWith(context.Background(), host.h.ID(), tu.Mailbox(tu.WriteKey(t)))
	var se *status.Error
	const want = "remote: busy: the sync streams left are reserved for established mailboxes; retry shortly"
	if !errors.Is(err, status.ErrBusy) || !errors.As(err, &se) || se.Error() != want || strings.Count(err.Error(), "busy") != 1 {
		t.Fatalf("second general session: %v; want an error reading %q", err, want)
	}
	if refusals(adm)[admission.ReasonStreamsBusy] == 0 {
		t.Fatal("busy refusal not counted")
	}

	envs := seal(t, ek, 5, 300)
	put(t, peer.st, envs...)
	st, err := peer.sv.SyncWith(context.Background(), host.h.ID(), est)
	if err != nil || st.Sent != 5 {
		t.Fatalf("session for the established mailbox: %+v, %v", st, err)
	}
	if got := liveIDs(t, host.st, est); len(got) != 5 {
		t.Fatalf("host holds %d of 5 envelopes", len(got))
	}
}
