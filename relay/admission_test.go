package relay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/admission"
	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	tu "github.com/meshnode/meshnode/internal/testutil"
)

// proofHandler stores an envelope only if it comes with a proof of work
// of bits for its mailbox on host self, as a host under load asks of new
// mailboxes, and records the origins it was given.
type proofHandler struct {
	memHandler
	self    peer.ID
	bits    uint8
	origins chan admission.Origin
}

func (h *proofHandler) DeliverFrom(ctx context.Context, env *envelope.Envelope, o admission.Origin) (bool, error) {
	select {
	case h.origins <- o:
	default:
	}
	if o.Proof == nil || !admission.CheckMailboxProof(h.self, env.Mailbox(), *o.Proof, h.bits) {
		return false, status.ProofError(h.bits, "prove it")
	}
	return h.memHandler.Deliver(ctx, env, o.Peer)
}

func newProofRelay(t *testing.T, bits uint8) (*testRelay, *proofHandler) {
	t.Helper()
	srv := newRelay(t)
	hd := &proofHandler{self: srv.h.ID(), bits: bits, origins: make(chan admission.Origin, 16)}
	srv.r.handler = hd
	return srv, hd
}

// A host that asks for a proof of work gets one from both clients, which
// send again with it; one that asks for more than the client's limit gets
// an error matching status.ErrProofRequired with the bits it asked for.
func TestClientsSolveProofOfWork(t *testing.T) {
	srv, hd := newProofRelay(t, 10)
	client := newHost(t)
	link(t, client, srv.h)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	if err := Send(context.Background(), client, srv.h.ID(), m, tu.Envelope(t, k, 100), 10*time.Second); err != nil {
		t.Fatalf("Send: %v", err)
	}
	s := NewSession(client, srv.h.ID(), 10*time.Second)
	t.Cleanup(func() { s.Close() })
	if err := s.Send(context.Background(), m, tu.Envelope(t, k, 100)); err != nil {
		t.Fatalf("Session.Send: %v", err)
	}
	if hd.count() != 2 {
		t.Fatalf("stored %d, want 2", hd.count())
	}
	if o := <-hd.origins; o.Peer != client.ID() {
		t.Fatalf("origin peer %s, want %s", o.Peer, client.ID())
	}

	hard, _ := newProofRelay(t, DefaultMaxProofBits+1)
	link(t, client, hard.h)
	err := Send(context.Background(), client, hard.h.ID(), m, tu.Envelope(t, k, 100), 10*time.Second)
	bits, ok := status.ProofBitsOf(err)
	if !errors.Is(err, status.ErrProofRequired) || !ok || bits != DefaultMaxProofBits+1 {
		t.Fatalf("host asking too much: %v (bits %d)", err, bits)
	}
	s2 := NewSession(client, hard.h.ID(), 10*time.Second)
	t.Cleanup(func() { s2.Close() })
	if err := s2.Send(context.Background(), m, tu.Envelope(t, k, 100)); !errors.Is(err, status.ErrProofRequired) {
		t.Fatalf("session, host asking too much: %v", err)
	}
}

// Refusal codes reach the client as distinct sentinels, and each reads
// once: its code's name, then what the host said (not "rate limited:
// rate limited: ..."), on both protocols.
func TestRefusalSentinels(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want error
		text string
	}{
		{"busy", fmt.Errorf("%w: all relay streams are in use; retry shortly", status.ErrBusy), status.ErrBusy,
			"remote: busy: all relay streams are in use; retry shortly"},
		{"rate", fmt.Errorf("%w: too many new mailboxes from your network; retry later", status.ErrRateLimited), status.ErrRateLimited,
			"remote: rate limited: too many new mailboxes from your network; retry later"},
		{"bare", status.ErrRateLimited, status.ErrRateLimited, "remote: rate limited"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newRelay(t)
			srv.hd.fail = tc.err
			client := newHost(t)
			link(t, client, srv.h)
			k := tu.WriteKey(t)
			err := Send(context.Background(), client, srv.h.ID(), tu.Mailbox(k), tu.Envelope(t, k, 100), 5*time.Second)
			if !errors.Is(err, tc.want) || !status.Temporary(err) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			s := NewSession(client, srv.h.ID(), 5*time.Second)
			t.Cleanup(func() { s.Close() })
			serr := s.Send(context.Background(), tu.Mailbox(k), tu.Envelope(t, k, 100))
			for _, err := range []error{err, serr} {
				var se *status.Error
				if !errors.As(err, &se) || se.Error() != tc.text {
					t.Errorf("refusal reads %q, want %q", err, tc.text)
				}
				if code := tc.text[len("remote: "):]; strings.Count(err.Error(), strings.SplitN(code, ":", 2)[0]) != 1 {
					t.Errorf("%q repeats its code", err)
				}
			}
		})
	}
}
