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
	p.MaxEnvelopes, p.Reconcile.MaxLearnt = 64, 64
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
	msgs, _ := exchange(f, []envelope.ID{e.ID()}, nil)
	f.Add(frames(append(msgs, marshalEnvelope(e), []byte{byte(frameDone)})...))
	f.Add(frames(append(msgs, []byte{byte(frameDone)})...))
	f.Add(frames(marshalReconcile([]byte{reconcile.ProtocolVersion, 0xff, 1})))
	f.Fuzz(func(t *testing.T, script []byte) {
		s := fuzzSession(t, st, m, script)
		view, err := st.SyncView(m)
		if err != nil {
			t.Fatal(err)
		}
		_ = s.respond(view, defaultHello(m))
	})
}

// FuzzInitiatorSession feeds arbitrary bytes to an initiator as the
// responder's side of the stream.
func FuzzInitiatorSession(f *testing.F) {
	st := newStore(f)
	k := tu.WriteKey(f)
	m := tu.Mailbox(k)
	e := tu.Envelope(f, k, 50)
	ok := (&statusFrame{code: status.OK}).marshal()
	f.Add(frames(ok, marshalReconcile([]byte{reconcile.ProtocolVersion, 1, 4, 0}), marshalEnvelope(e), ok))
	f.Add(frames(ok, marshalReconcile([]byte{reconcile.ProtocolVersion, 0}), ok))
	f.Add(frames((&statusFrame{code: status.NotServed, msg: "no"}).marshal()))
	f.Fuzz(func(t *testing.T, script []byte) {
		s := fuzzSession(t, st, m, script)
		_ = s.initiate()
	})
}
