package hostsync

import (
	"crypto/sha256"
	"errors"
	"slices"
	"testing"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/reconcile"
)

// initiateFor returns an initiator's first message over ids.
func initiateFor(t *testing.T, ids ...envelope.ID) []byte {
	t.Helper()
	ini, err := reconcile.NewInitiator(reconcile.NewMemSet(ids...), reconcile.DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	msg, err := ini.Initiate()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// tamper flips a ciphertext bit of e: the result fails its signature, and
// its ID is SHA-256 of the tampered bytes.
func tamper(e *envelope.Envelope) ([]byte, envelope.ID) {
	b := slices.Clone(e.Bytes())
	b[envelope.HeaderSize] ^= 1
	return append([]byte{byte(frameEnvelope)}, b...), envelope.ID(sha256.Sum256(b))
}

// TestResponderTranscripts plays scripted initiators against a responder
// whose set is empty: what verifies and was announced is stored; every
// other deviation is a violation that stores nothing (the deliver
// function of fuzzSession fails the test on anything unverified).
func TestResponderTranscripts(t *testing.T) {
	st := newStore(t)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	e1, e2 := tu.Envelope(t, k, 50), tu.Envelope(t, k, 60)
	bad, badID := tamper(e1)
	first := initiateFor(t, e1.ID())
	done := []byte{byte(frameDone)}
	push := func(n int, wants ...envelope.ID) []byte { return (&batch{pushes: n, wants: wants}).marshal() }
	descending := []byte{reconcile.ProtocolVersion, 1, 0x80, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x40, 0}

	tests := []struct {
		name     string
		script   []byte
		received int
		want     error // nil: a clean end
		violates bool
	}{
		{"announced push", frames(marshalReconcile(first), push(1), marshalEnvelope(e1), done), 1, nil, false},
		{"nothing to do", frames(marshalReconcile(first), done), 0, nil, false},
		{"want of a missing ID", frames(marshalReconcile(first), push(0, testID(9)), done), 0, nil, false},
		{"unannounced push", frames(marshalReconcile(first), push(1), marshalEnvelope(e2), done), 0, ErrProtocol, true},
		{"bad signature", frames(marshalReconcile(initiateFor(t, badID)), push(1), bad, done), 0, envelope.ErrBadSignature, true},
		{"push twice", frames(marshalReconcile(first), push(2), marshalEnvelope(e1), marshalEnvelope(e1), done), 1, ErrProtocol, true},
		{"want twice", frames(marshalReconcile(first), push(0, testID(9)), push(0, testID(9)), done), 0, ErrProtocol, true},
		{"batch during reconcile", frames(push(0)), 0, ErrProtocol, true},
		{"status instead of push", frames(marshalReconcile(first), push(1), (&statusFrame{}).marshal()), 0, ErrProtocol, true},
		{"garbage reconcile", frames(marshalReconcile([]byte{1, 40})), 0, reconcile.ErrMalformed, true},
		{"absurd ranges", frames(marshalReconcile(descending)), 0, reconcile.ErrProtocol, true},
		{"frame over the limit", frames(marshalReconcile(make([]byte, DefaultParams().Reconcile.MaxMessageSize+1))), 0, ErrProtocol, true},
		{"empty frame", frames([]byte{}), 0, ErrProtocol, true},
		{"long done", frames(marshalReconcile(first), []byte{byte(frameDone), 0}), 0, ErrProtocol, true},
		{"peer hangs up", frames(marshalReconcile(first), push(1)), 0, errAny, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := fuzzSession(t, st, m, tc.script)
			err := s.respond(reconcile.NewMemSet(), reconcile.DefaultParams())
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("respond: %v", err)
			case tc.want == errAny && err == nil, tc.want != nil && tc.want != errAny && !errors.Is(err, tc.want):
				t.Fatalf("respond: %v, want %v", err, tc.want)
			}
			if isViolation(err) != tc.violates {
				t.Fatalf("respond: %v counted as violation: %v", err, isViolation(err))
			}
			if s.stats.Received != tc.received {
				t.Fatalf("received %d, want %d", s.stats.Received, tc.received)
			}
		})
	}
}

// errAny matches any non-nil error in transcript tables.
var errAny = errors.New("any error")

// TestResponderLimits: wants past MaxEnvelopes are answered missing (the
// session is truncated, not failed); pushes past it end the session
// without a strike.
func TestResponderLimits(t *testing.T) {
	st := newStore(t)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	envs := seal(t, k, 3, 200)
	put(t, st, envs...)
	s := fuzzSession(t, st, m, frames(marshalReconcile(initiateFor(t)), (&batch{wants: idsOf(envs)}).marshal(), []byte{byte(frameDone)}))
	s.p.MaxEnvelopes = 2
	if err := s.respond(reconcile.NewMemSet(idsOf(envs)...), reconcile.DefaultParams()); err != nil {
		t.Fatal(err)
	}
	if s.stats.Sent != 2 || s.stats.Missing != 1 || !s.stats.Truncated {
		t.Fatalf("stats %+v: want 2 sent, 1 missing, truncated", s.stats)
	}

	more := seal(t, k, 3, 200)
	script := [][]byte{marshalReconcile(initiateFor(t, idsOf(more)...)), (&batch{pushes: 3}).marshal()}
	for _, e := range more {
		script = append(script, marshalEnvelope(e))
	}
	s = fuzzSession(t, st, m, frames(append(script, []byte{byte(frameDone)})...))
	s.p.MaxEnvelopes = 2
	err := s.respond(reconcile.NewMemSet(), reconcile.DefaultParams())
	if err == nil || isViolation(err) || s.stats.Received != 2 {
		t.Fatalf("respond: %v, %d received; want a non-violation error after 2", err, s.stats.Received)
	}

	// More announced than MaxLearnt keeps: verified pushes of the mailbox
	// are accepted (an honest peer cannot know what we dropped).
	s = fuzzSession(t, st, m, frames(append(script, []byte{byte(frameDone)})...))
	s.p.MaxLearnt = 1
	if err := s.respond(reconcile.NewMemSet(), reconcile.DefaultParams()); err != nil {
		t.Fatal(err)
	}
	if !s.stats.Truncated || s.stats.Need != 1 || s.stats.Received+s.stats.Duplicates != 3 {
		t.Fatalf("stats %+v: want 3 pushes taken with 1 learnt, truncated", s.stats)
	}
}

// TestInitiatorTranscripts plays scripted responders (holding e1, which
// the initiator lacks) against an initiator with an empty set.
func TestInitiatorTranscripts(t *testing.T) {
	st := newStore(t)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	e1, e2 := tu.Envelope(t, k, 50), tu.Envelope(t, k, 60)
	bad, badID := tamper(e1)
	replyFor := func(ids ...envelope.ID) []byte {
		res, err := reconcile.NewResponder(reconcile.NewMemSet(ids...), reconcile.DefaultParams())
		if err != nil {
			t.Fatal(err)
		}
		reply, _, _, _, err := res.Reconcile(initiateFor(t))
		if err != nil {
			t.Fatal(err)
		}
		return reply
	}
	reply := marshalReconcile(replyFor(e1.ID()))
	ok := (&statusFrame{code: status.OK}).marshal()

	tests := []struct {
		name     string
		script   []byte
		received int
		want     error
		violates bool
	}{
		{"served", frames(ok, reply, marshalEnvelope(e1), ok), 1, nil, false},
		{"missing", frames(ok, reply, marshalMissing(e1.ID()), ok), 0, nil, false},
		{"refused", frames((&statusFrame{code: status.NotServed, msg: "no"}).marshal()), 0, status.ErrNotServed, false},
		{"rate limited", frames((&statusFrame{code: status.RateLimited}).marshal()), 0, status.ErrRateLimited, false},
		{"other envelope", frames(ok, reply, marshalEnvelope(e2), ok), 0, ErrProtocol, true},
		{"bad signature", frames(ok, marshalReconcile(replyFor(badID)), bad, ok), 0, envelope.ErrBadSignature, true},
		{"missing of another ID", frames(ok, reply, marshalMissing(e2.ID()), ok), 0, ErrProtocol, true},
		{"reconcile instead of answer", frames(ok, reply, reply), 0, ErrProtocol, true},
		{"no status", frames(reply), 0, ErrProtocol, true},
		{"refused at the end", frames(ok, reply, marshalEnvelope(e1), (&statusFrame{code: status.Unavailable}).marshal()), 1, status.ErrUnavailable, false},
		{"hangs up", frames(ok, reply), 0, errAny, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := fuzzSession(t, st, m, tc.script)
			err := s.initiate(reconcile.NewMemSet())
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("initiate: %v", err)
			case tc.want == errAny && err == nil, tc.want != nil && tc.want != errAny && !errors.Is(err, tc.want):
				t.Fatalf("initiate: %v, want %v", err, tc.want)
			}
			if isViolation(err) != tc.violates {
				t.Fatalf("initiate: %v counted as violation: %v", err, isViolation(err))
			}
			if s.stats.Received != tc.received {
				t.Fatalf("received %d, want %d", s.stats.Received, tc.received)
			}
		})
	}
}
