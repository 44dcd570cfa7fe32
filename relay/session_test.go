package relay

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/internal/wire"
)

// A session carries many requests on one stream; a refusal ends the
// stream but not the Session, which opens a new one for the next Send.
func TestSession(t *testing.T) {
	srv := newRelay(t)
	client := newHost(t)
	link(t, client, srv.h)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	ctx := context.Background()
	s := NewSession(client, srv.h.ID(), 5*time.Second)
	t.Cleanup(func() { s.Close() })

	var sent []*envelope.Envelope
	for range 30 {
		e := tu.Envelope(t, k, 500)
		if err := s.Send(ctx, m, e); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, e)
	}
	// A frame larger than the per-stream reservation reserves the rest.
	big := tu.Envelope(t, k, 40<<10)
	if err := s.Send(ctx, m, big); err != nil {
		t.Fatalf("large envelope: %v", err)
	}
	sent = append(sent, big)
	first := s.st
	if err := s.Send(ctx, m, sent[0]); err != nil {
		t.Fatalf("duplicate: %v", err)
	}
	if s.st != first {
		t.Fatal("a duplicate ended the session's stream")
	}

	tampered := append([]byte(nil), tu.Envelope(t, k, 500).Bytes()...)
	tampered[envelope.HeaderSize] ^= 1
	bad, err := envelope.Decode(tampered, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(ctx, m, bad); !errors.Is(err, envelope.ErrBadSignature) {
		t.Fatalf("tampered envelope: %v", err)
	}
	if err := s.Send(ctx, tu.Mailbox(tu.WriteKey(t)), sent[1]); !errors.Is(err, envelope.ErrWrongMailbox) {
		t.Fatalf("wrong mailbox: %v", err)
	}
	last := tu.Envelope(t, k, 500)
	if err := s.Send(ctx, m, last); err != nil {
		t.Fatalf("after refusals: %v", err)
	}
	sent = append(sent, last)
	for _, e := range sent {
		if !srv.hd.has(e.ID()) {
			t.Fatalf("%s acknowledged but not delivered", e.ID().Short())
		}
	}
	if srv.hd.count() != len(sent) {
		t.Fatalf("delivered %d, want %d", srv.hd.count(), len(sent))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(ctx, m, last); !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("send after close: %v", err)
	}
}

// On the session protocol the host answers a broken frame and ends the
// stream (it is no longer at a frame boundary); after a good request it
// waits for the next one.
func TestSessionServerFraming(t *testing.T) {
	srv := newRelay(t)
	client := newHost(t)
	link(t, client, srv.h)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	st, err := client.NewStream(context.Background(), srv.h.ID(), SessionProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(5 * time.Second))
	r := wire.NewReader(st)
	answer := func() status.Code {
		t.Helper()
		b, err := r.ReadFrame(maxResponseSize)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		resp, err := parseResponse(b)
		if err != nil {
			t.Fatal(err)
		}
		return resp.code
	}
	for range 3 {
		if err := writeFrame(st, (&request{mailbox: m, envelope: tu.Envelope(t, k, 100).Bytes()}).marshal()); err != nil {
			t.Fatal(err)
		}
		if c := answer(); c != status.OK {
			t.Fatalf("code %v", c)
		}
	}
	// A length prefix above the limit: answered, then the stream ends.
	if _, err := st.Write(frameOf(make([]byte, DefaultParams().MaxRequestSize()+1))); err != nil {
		t.Fatal(err)
	}
	if c := answer(); c != status.TooLarge {
		t.Fatalf("code %v, want too large", c)
	}
	if _, err := r.ReadFrame(maxResponseSize); err == nil {
		t.Fatal("session went on after a broken frame")
	}
	if srv.hd.count() != 3 {
		t.Fatalf("delivered %d, want 3", srv.hd.count())
	}
}
