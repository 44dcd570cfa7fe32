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
	"github.com/meshnode/meshnode/store"
)

// tamper flips a ciphertext bit of e: the result fails its signature, and
// its ID is SHA-256 of the tampered bytes.
func tamper(e *envelope.Envelope) ([]byte, envelope.ID) {
	b := slices.Clone(e.Bytes())
	b[envelope.HeaderSize] ^= 1
	return append([]byte{byte(frameEnvelope)}, b...), envelope.ID(sha256.Sum256(b))
}

// exchange runs an honest reconciliation in memory between an initiator
// over ini and a responder over res and returns each side's messages, as
// reconcile frames. A real side over the same IDs answers a scripted peer
// with exactly these messages, since only the initiator's salt is random.
func exchange(t testing.TB, ini, res []envelope.ID) (fromIni, fromRes [][]byte) {
	t.Helper()
	a, err := reconcile.NewInitiator(reconcile.NewMemSet(ini...), reconcile.DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	b, err := reconcile.NewResponder(reconcile.NewMemSet(res...), reconcile.DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	msg, err := a.Initiate()
	if err != nil {
		t.Fatal(err)
	}
	for msg != nil {
		fromIni = append(fromIni, marshalReconcile(msg))
		reply, _, err := b.Reconcile(msg)
		if err != nil {
			t.Fatal(err)
		}
		if reply == nil {
			break
		}
		fromRes = append(fromRes, marshalReconcile(reply))
		if msg, _, err = a.Reconcile(reply); err != nil {
			t.Fatal(err)
		}
	}
	return fromIni, fromRes
}

var errAny = errors.New("any error")

// defaultHello is the hello of an initiator with the default limits.
func defaultHello(m envelope.MailboxID) *hello {
	p := reconcile.DefaultParams()
	return &hello{mailbox: m, maxMessage: p.MaxMessageSize, maxRounds: p.MaxRounds}
}

// TestResponderTranscripts plays scripted initiators against a responder
// whose store is empty: what verifies and was announced is stored; every
// other deviation is a violation that stores nothing (the deliver
// function of fuzzSession fails the test on anything unverified).
func TestResponderTranscripts(t *testing.T) {
	st := newStore(t)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	e1, e2 := tu.Envelope(t, k, 50), tu.Envelope(t, k, 60)
	bad, badID := tamper(e1)
	done := []byte{byte(frameDone)}
	script := func(ids []envelope.ID, tail ...[]byte) []byte {
		msgs, _ := exchange(t, ids, nil)
		return frames(append(msgs, tail...)...)
	}
	tests := []struct {
		name     string
		script   []byte
		received int
		want     error // nil: a clean end
		violates bool
	}{
		{"announced push", script([]envelope.ID{e1.ID()}, marshalEnvelope(e1), done), 1, nil, false},
		{"nothing to do", script(nil, done), 0, nil, false},
		{"announced, not pushed", script([]envelope.ID{e1.ID()}, done), 0, nil, false},
		{"unannounced push", script([]envelope.ID{e1.ID()}, marshalEnvelope(e2), done), 0, ErrProtocol, true},
		{"pushed twice", script([]envelope.ID{e1.ID()}, marshalEnvelope(e1), marshalEnvelope(e1), done), 1, ErrProtocol, true},
		{"bad signature", script([]envelope.ID{badID}, bad, done), 0, envelope.ErrBadSignature, true},
		{"done during reconciliation", frames(done), 0, ErrProtocol, true},
		{"malformed reconcile message", frames(marshalReconcile([]byte{reconcile.ProtocolVersion, 1})), 0, reconcile.ErrMalformed, true},
		{"other version", frames(marshalReconcile([]byte{1, 0})), 0, reconcile.ErrVersion, true},
		{"status instead of done", script([]envelope.ID{e1.ID()}, (&statusFrame{code: status.OK}).marshal()), 0, ErrProtocol, true},
		{"hangs up", script([]envelope.ID{e1.ID()}), 0, errAny, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := fuzzSession(t, st, m, tc.script)
			view, err := st.SyncView(m)
			if err != nil {
				t.Fatal(err)
			}
			err = s.respond(view, defaultHello(m))
			check(t, err, tc.want, tc.violates)
			if s.stats.Received != tc.received {
				t.Fatalf("received %d, want %d", s.stats.Received, tc.received)
			}
		})
	}
}

func check(t *testing.T, err, want error, violates bool) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("session: %v", err)
	case want == errAny && err == nil, want != nil && want != errAny && !errors.Is(err, want):
		t.Fatalf("session: %v, want %v", err, want)
	}
	if isViolation(err) != violates {
		t.Fatalf("session: %v counted as violation: %v", err, isViolation(err))
	}
}

// TestInitiatorTranscripts plays scripted responders (holding e1, which
// the initiator lacks) against an initiator with an empty store.
func TestInitiatorTranscripts(t *testing.T) {
	st := newStore(t)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	e1, e2 := tu.Envelope(t, k, 50), tu.Envelope(t, k, 60)
	bad, badID := tamper(e1)
	ok := (&statusFrame{code: status.OK}).marshal()
	// The initiator draws its salt, so a scripted responder cannot
	// precompute its answers; an empty initiator's first message is the
	// root fingerprint alone, and an answer that lists the responder's
	// keys needs the salt. Those cases run over real streams
	// (adversary_test.go); here the refusals and the transfer's frames.
	_ = badID
	tests := []struct {
		name   string
		script []byte
		want   error
		viol   bool
	}{
		{"refused", frames((&statusFrame{code: status.NotServed, msg: "no"}).marshal()), status.ErrNotServed, false},
		{"rate limited", frames((&statusFrame{code: status.RateLimited}).marshal()), status.ErrRateLimited, false},
		{"envelope instead of status", frames(marshalEnvelope(e2)), ErrProtocol, true},
		{"envelope instead of a reconcile message", frames(ok, bad), ErrProtocol, true},
		{"hangs up", frames(ok), errAny, false},
		{"malformed status", frames([]byte{byte(frameStatus), 0}), ErrProtocol, true},
	}
	_ = e1
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := fuzzSession(t, st, m, tc.script)
			check(t, s.initiate(), tc.want, tc.viol)
		})
	}
}

var _ = store.ErrNotFound
