package relay

import (
	"context"
	"crypto/ed25519"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/internal/wire"
)

// A session carries many requests on one stream; refusals and duplicates
// are answered and the stream goes on.
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
	first := s.conn
	// A frame larger than a small-frame slot reserves the rest.
	big := tu.Envelope(t, k, 40<<10)
	if err := s.Send(ctx, m, big); err != nil {
		t.Fatalf("large envelope: %v", err)
	}
	sent = append(sent, big)
	if err := s.Send(ctx, m, sent[0]); err != nil {
		t.Fatalf("duplicate: %v", err)
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
	if s.conn != first {
		t.Fatal("the session opened another stream: a large frame, a duplicate or a refusal ended the first")
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

// Concurrent Sends on one session share its stream, and the host handles
// them at once: the handler lets no delivery finish until all of them
// have started, so a host that handled a session's requests one after
// another would never answer.
func TestSessionPipelines(t *testing.T) {
	const inflight = 16
	hd := &gatedHandler{want: inflight, open: make(chan struct{})}
	srv := newRelayWith(t, hd, DefaultParams())
	client := newHost(t)
	link(t, client, srv.h)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	s := NewSession(client, srv.h.ID(), 10*time.Second)
	t.Cleanup(func() { s.Close() })
	errs := sendAll(s, m, envelopes(t, k, inflight, 700))
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := hd.count(); got != inflight {
		t.Fatalf("stored %d, want %d", got, inflight)
	}
	if n := sessionStreams(client, srv.h.ID()); n != 1 {
		t.Fatalf("%d session streams open, want 1", n)
	}
}

// The host handles at most SessionWindow requests of a session at once;
// the rest wait in the stream and are all answered.
func TestSessionWindow(t *testing.T) {
	hd := &concurrencyHandler{want: 3, open: make(chan struct{})}
	p := DefaultParams()
	p.SessionWindow = 3
	srv := newRelayWith(t, hd, p)
	client := newHost(t)
	link(t, client, srv.h)
	k := tu.WriteKey(t)
	s := NewSession(client, srv.h.ID(), 10*time.Second)
	t.Cleanup(func() { s.Close() })
	for i, err := range sendAll(s, tu.Mailbox(k), envelopes(t, k, 40, 300)) {
		if err != nil {
			t.Fatalf("envelope %d: %v", i, err)
		}
	}
	if got, peak := hd.count(), hd.peak.Load(); got != 40 || peak != 3 {
		t.Fatalf("stored %d with up to %d at once, want 40 with up to 3", got, peak)
	}
}

// Answers come back in request order even when later requests finish
// first, and a refusal does not end the session.
func TestSessionAnswersInOrder(t *testing.T) {
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	slow := tu.Envelope(t, k, 200)
	hd := &holdHandler{hold: slow.ID(), release: make(chan struct{})}
	srv := newRelayWith(t, hd, DefaultParams())
	client := newHost(t)
	link(t, client, srv.h)
	st, err := client.NewStream(context.Background(), srv.h.ID(), SessionProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Reset() })
	_ = st.SetDeadline(time.Now().Add(10 * time.Second))

	fast := tu.Envelope(t, k, 200)
	badSig := append([]byte(nil), tu.Envelope(t, k, 200).Bytes()...)
	badSig[len(badSig)-1] ^= 1
	var out []byte
	for _, e := range [][]byte{slow.Bytes(), badSig, fast.Bytes()} {
		out = (&request{mailbox: m, envelope: e}).appendFrame(out)
	}
	if _, err := st.Write(out); err != nil {
		t.Fatal(err)
	}
	// The third request is stored while the first is held.
	tu.Eventually(t, 10*time.Second, func() bool { return hd.has(fast.ID()) }, "later request stored first")
	close(hd.release)
	r := wire.NewReader(st)
	for i, want := range []status.Code{status.OK, status.BadSignature, status.OK} {
		if c := readCode(t, r); c != want {
			t.Fatalf("answer %d: %v, want %v", i, c, want)
		}
	}
	// The session goes on after the refusal.
	if err := writeFrame(st, (&request{mailbox: m, envelope: tu.Envelope(t, k, 200).Bytes()}).marshal()); err != nil {
		t.Fatal(err)
	}
	if c := readCode(t, r); c != status.OK {
		t.Fatalf("after a refusal: %v", c)
	}
}

// On the session protocol the host answers a broken frame and everything
// before it, then ends the stream (it is no longer at a frame boundary).
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
	var out []byte
	for range 3 {
		out = (&request{mailbox: m, envelope: tu.Envelope(t, k, 100).Bytes()}).appendFrame(out)
	}
	// A length prefix above the limit right behind them.
	out = append(out, frameOf(make([]byte, DefaultParams().MaxRequestSize()+1))...)
	if _, err := st.Write(out); err != nil {
		t.Fatal(err)
	}
	r := wire.NewReader(st)
	for i, want := range []status.Code{status.OK, status.OK, status.OK, status.TooLarge} {
		if c := readCode(t, r); c != want {
			t.Fatalf("answer %d: %v, want %v", i, c, want)
		}
	}
	if _, err := r.ReadFrame(maxResponseSize); err == nil {
		t.Fatal("session went on after a broken frame")
	}
	if srv.hd.count() != 3 {
		t.Fatalf("delivered %d, want 3", srv.hd.count())
	}
}

// A request on a stream that ends before its answer (the host closing a
// session it found idle) is sent again on a new stream; one on a stream
// opened for it is not.
func TestSessionRetriesOnEndedStream(t *testing.T) {
	srv := newHost(t)
	var streams, requests atomic.Int32
	srv.SetStreamHandler(SessionProtocolID, func(st network.Stream) {
		n := streams.Add(1)
		r := wire.NewReader(st)
		for i := 0; ; i++ {
			if _, err := r.ReadFrame(DefaultParams().MaxRequestSize()); err != nil {
				_ = st.Reset()
				return
			}
			requests.Add(1)
			// The first stream ends, unanswered, at its second request;
			// the third stream at its first.
			if (n == 1 && i == 1) || n == 3 {
				_ = st.Close()
				return
			}
			if err := writeFrame(st, (&response{code: status.OK}).marshal()); err != nil {
				return
			}
		}
	})
	client := newHost(t)
	link(t, client, srv)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	s := NewSession(client, srv.ID(), 5*time.Second)
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	for i := range 2 {
		if err := s.Send(ctx, m, tu.Envelope(t, k, 100)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if streams.Load() != 2 || requests.Load() != 3 {
		t.Fatalf("%d streams, %d requests; want the second request sent again on a second stream", streams.Load(), requests.Load())
	}
	// The second stream still works; end it, and the next Send opens a
	// third stream for itself, which ends unanswered: no retry.
	s.conn.fail(errors.New("test: drop the stream"))
	var ended *streamEnded
	if err := s.Send(ctx, m, tu.Envelope(t, k, 100)); !errors.As(err, &ended) {
		t.Fatalf("send on a fresh stream that ends: %v, want the stream's end", err)
	}
	if streams.Load() != 3 || requests.Load() != 4 {
		t.Fatalf("%d streams, %d requests; want no retry of a fresh stream's request", streams.Load(), requests.Load())
	}
}

// A session keeps many envelopes in flight under node's per-peer memory
// limit: small ones take a small-frame slot each, and large ones that do
// not all fit wait for the ones in flight instead of being refused. Each
// delivery takes 20 ms, so the host has many large frames in flight when
// it reads the ones that no longer fit.
func TestSessionMemoryLimit(t *testing.T) {
	for _, size := range []int{900, 40 << 10} {
		h := limitedHost(t)
		ps, err := pubsub.NewGossipSub(context.Background(), h, mustPubSubOptions(t)...)
		if err != nil {
			t.Fatal(err)
		}
		hd := &concurrencyHandler{delay: 20 * time.Millisecond}
		p := DefaultParams()
		p.PeerRate = 0
		r, err := New(h, ps, hd, WithParams(p), WithPolicy(allowAll{}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		client := newHost(t)
		link(t, client, h)
		k := tu.WriteKey(t)
		s := NewSession(client, h.ID(), 10*time.Second)
		t.Cleanup(func() { s.Close() })
		for i, err := range sendAll(s, tu.Mailbox(k), envelopes(t, k, 32, size)) {
			if err != nil {
				t.Fatalf("size %d, envelope %d: %v", size, i, err)
			}
		}
		if hd.count() != 32 {
			t.Fatalf("size %d: stored %d of 32", size, hd.count())
		}
	}
}

// newRelayWith starts a relay with handler hd and params p.
func newRelayWith(t *testing.T, hd Handler, p Params) *testRelay {
	t.Helper()
	h := newHost(t)
	ps, err := pubsub.NewGossipSub(context.Background(), h, mustPubSubOptions(t)...)
	if err != nil {
		t.Fatal(err)
	}
	p.PeerRate = 0
	r, err := New(h, ps, hd, WithParams(p), WithPolicy(allowAll{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &testRelay{h: h, r: r}
}

func envelopes(t *testing.T, k ed25519.PrivateKey, n, size int) []*envelope.Envelope {
	t.Helper()
	out := make([]*envelope.Envelope, n)
	for i := range out {
		out[i] = tu.Envelope(t, k, size)
	}
	return out
}

// sendAll sends every envelope on s at once, one goroutine each.
func sendAll(s *Session, m envelope.MailboxID, envs []*envelope.Envelope) []error {
	errs := make([]error, len(envs))
	var wg sync.WaitGroup
	for i, e := range envs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Send(context.Background(), m, e)
		}()
	}
	wg.Wait()
	return errs
}

// sessionStreams counts h's open session streams to p.
func sessionStreams(h interface {
	Network() network.Network
}, p peer.ID) int {
	n := 0
	for _, c := range h.Network().ConnsToPeer(p) {
		for _, st := range c.GetStreams() {
			if st.Protocol() == SessionProtocolID {
				n++
			}
		}
	}
	return n
}

func readCode(t *testing.T, r *wire.Reader) status.Code {
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

// concurrencyHandler records the most deliveries in progress at once.
// With want > 0, no delivery finishes before want of them are in
// progress together; each takes at least delay (a slow disk).
type concurrencyHandler struct {
	memHandler
	want      int32
	delay     time.Duration
	now, peak atomic.Int32
	once      sync.Once
	open      chan struct{}
}

func (c *concurrencyHandler) Deliver(ctx context.Context, env *envelope.Envelope, from peer.ID) (bool, error) {
	n := c.now.Add(1)
	defer c.now.Add(-1)
	for {
		p := c.peak.Load()
		if n <= p || c.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(c.delay)
	if c.want > 0 {
		if n >= c.want {
			c.once.Do(func() { close(c.open) })
		}
		select {
		case <-c.open:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	return c.memHandler.Deliver(ctx, env, from)
}

// holdHandler holds the delivery of one envelope until release is closed.
type holdHandler struct {
	memHandler
	hold    envelope.ID
	release chan struct{}
}

func (h *holdHandler) Deliver(ctx context.Context, env *envelope.Envelope, from peer.ID) (bool, error) {
	if env.ID() == h.hold {
		select {
		case <-h.release:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	return h.memHandler.Deliver(ctx, env, from)
}
