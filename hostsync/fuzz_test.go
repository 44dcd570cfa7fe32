package hostsync

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/internal/wire"
	"github.com/meshnode/meshnode/reconcile"
	"github.com/meshnode/meshnode/store"
)

// scriptStream plays back what a peer sent and discards what we write.
type scriptStream struct{ r *bytes.Reader }

func (s scriptStream) Read(b []byte) (int, error)       { return s.r.Read(b) }
func (s scriptStream) Write(b []byte) (int, error)      { return len(b), nil }
func (s scriptStream) SetReadDeadline(time.Time) error  { return nil }
func (s scriptStream) SetWriteDeadline(time.Time) error { return nil }

// frames encodes a transcript of frames as they travel on the wire.
func frames(fs ...[]byte) []byte {
	var buf bytes.Buffer
	w := wire.NewWriter(&buf)
	for _, f := range fs {
		_ = w.WriteFrame(f)
	}
	_ = w.Flush()
	return buf.Bytes()
}

// fuzzSession returns a session reading script, over a shared store, whose
// deliver function counts what it is given (and checks it verifies).
func fuzzSession(t *testing.T, st *store.Store, m envelope.MailboxID, script []byte) *session {
	p := DefaultParams()
	p.MaxEnvelopes, p.MaxLearnt = 64, 64
	return &session{
		ctx: context.Background(), c: newConn(scriptStream{bytes.NewReader(script)}, time.Now().Add(time.Hour), time.Hour),
		st: st, p: p, m: m, peer: peer.ID("fuzz"),
		deliver: func(_ context.Context, e *envelope.Envelope, _ peer.ID) (bool, error) {
			if e.Mailbox() != m || e.Verify() != nil {
				t.Fatalf("deliver got an envelope that does not verify for the mailbox")
			}
			return false, nil
		},
	}
}

// FuzzResponderSession feeds arbitrary bytes to a responder after an
// accepted hello: whatever arrives, it ends with an error or cleanly,
// never panics, and delivers only verified envelopes of the mailbox.
func FuzzResponderSession(f *testing.F) {
	st := newStore(f)
	k := tu.WriteKey(f)
	m := tu.Mailbox(k)
	e := tu.Envelope(f, k, 50)
	ini, err := reconcile.NewInitiator(reconcile.NewMemSet(e.ID()), reconcile.DefaultParams())
	if err != nil {
		f.Fatal(err)
	}
	first, err := ini.Initiate()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(frames(marshalReconcile(first), (&batch{pushes: 1, wants: []envelope.ID{testID(1)}}).marshal(), marshalEnvelope(e), []byte{byte(frameDone)}))
	f.Add(frames(marshalReconcile(first), []byte{byte(frameDone)}))
	f.Add(frames(marshalReconcile([]byte{1, 0xff, 1})))
	f.Fuzz(func(t *testing.T, script []byte) {
		s := fuzzSession(t, st, m, script)
		_ = s.respond(reconcile.NewMemSet(), reconcile.DefaultParams())
	})
}

// FuzzInitiatorSession feeds arbitrary bytes to an initiator as the
// responder's side of the stream.
func FuzzInitiatorSession(f *testing.F) {
	st := newStore(f)
	k := tu.WriteKey(f)
	m := tu.Mailbox(k)
	e := tu.Envelope(f, k, 50)
	ini, err := reconcile.NewInitiator(reconcile.NewMemSet(), reconcile.DefaultParams())
	if err != nil {
		f.Fatal(err)
	}
	first, err := ini.Initiate()
	if err != nil {
		f.Fatal(err)
	}
	res, err := reconcile.NewResponder(reconcile.NewMemSet(e.ID()), reconcile.DefaultParams())
	if err != nil {
		f.Fatal(err)
	}
	reply, _, _, _, err := res.Reconcile(first)
	if err != nil {
		f.Fatal(err)
	}
	ok := (&statusFrame{code: status.OK}).marshal()
	f.Add(frames(ok, marshalReconcile(reply), marshalEnvelope(e), ok))
	f.Add(frames(ok, marshalReconcile(reply), marshalMissing(e.ID()), ok))
	f.Add(frames((&statusFrame{code: status.NotServed, msg: "no"}).marshal()))
	f.Fuzz(func(t *testing.T, script []byte) {
		s := fuzzSession(t, st, m, script)
		_ = s.initiate(reconcile.NewMemSet())
	})
}
