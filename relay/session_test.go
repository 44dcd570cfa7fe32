package relay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/admission"
	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/ratelimit"
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

// Each request is answered as soon as it is done, by its ID: a request
// held in the store does not hold up the answers of those sent after it,
// and a refusal does not end the session.
func TestSessionAnswersWhenDone(t *testing.T) {
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	slow := tu.Envelope(t, k, 200)
	hd := &holdHandler{hold: slow.ID(), release: make(chan struct{})}
	srv := newRelayWith(t, hd, DefaultParams())
	st, r := rawSession(t, srv)

	badSig := append([]byte(nil), tu.Envelope(t, k, 200).Bytes()...)
	badSig[len(badSig)-1] ^= 1
	var out []byte
	for i, e := range [][]byte{slow.Bytes(), badSig, tu.Envelope(t, k, 200).Bytes()} {
		out = appendSessionRequest(out, uint32(10+i), &request{mailbox: m, envelope: e})
	}
	if _, err := st.Write(out); err != nil {
		t.Fatal(err)
	}
	// The second and third are answered while the first is held.
	got := map[uint32]status.Code{}
	for range 2 {
		id, c := readAnswer(t, r)
		got[id] = c
	}
	if want := (map[uint32]status.Code{11: status.BadSignature, 12: status.OK}); !maps.Equal(got, want) {
		t.Fatalf("answers %v before the first request is released, want %v", got, want)
	}
	close(hd.release)
	if id, c := readAnswer(t, r); id != 10 || c != status.OK {
		t.Fatalf("answer %d: %v, want 10: OK", id, c)
	}
	// The session goes on after the refusal.
	if _, err := st.Write(appendSessionRequest(nil, 7, &request{mailbox: m, envelope: tu.Envelope(t, k, 200).Bytes()})); err != nil {
		t.Fatal(err)
	}
	if id, c := readAnswer(t, r); id != 7 || c != status.OK {
		t.Fatalf("after a refusal: %d: %v", id, c)
	}
}

// How the host answers requests it cannot or will not read on a session.
func TestSessionServerFraming(t *testing.T) {
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	good := func(id uint32) []byte {
		return appendSessionRequest(nil, id, &request{mailbox: m, envelope: tu.Envelope(t, k, 100).Bytes()})
	}
	// A frame over the bound whose first bytes carry its ID.
	tooLarge := binary.AppendUvarint(nil, uint64(sessionIDSize+DefaultParams().MaxRequestSize()+1))
	tooLarge = binary.BigEndian.AppendUint32(tooLarge, 99)
	tests := []struct {
		name    string
		p       func(*Params)
		frames  [][]byte
		answers map[uint32]status.Code
		ends    bool // the host ends the session after answering
	}{
		{"pipelined", nil, [][]byte{good(1), good(2), good(3)},
			map[uint32]status.Code{1: status.OK, 2: status.OK, 3: status.OK}, false},
		{"too large: answered by its ID, then the end", nil, [][]byte{good(1), good(2), tooLarge},
			map[uint32]status.Code{1: status.OK, 2: status.OK, 99: status.TooLarge}, true},
		{"no room for an ID: the end", nil, [][]byte{good(1), frameOf([]byte{0, 0, 1})},
			map[uint32]status.Code{1: status.OK}, true},
		{"not a request", nil, [][]byte{appendSessionRequest(nil, 5, &request{mailbox: m, envelope: []byte("junk")}), good(6)},
			map[uint32]status.Code{5: status.Malformed, 6: status.OK}, false},
		{"wrong version", nil, [][]byte{frameOf(append([]byte{0, 0, 0, 8, 9}, make([]byte, 40)...)), good(9)},
			map[uint32]status.Code{8: status.Version, 9: status.OK}, false},
		{"over the rate: skipped and answered", func(p *Params) { p.PeerRate, p.PeerBurst = 0.001, 2 },
			[][]byte{good(1), good(2), good(3), good(4)},
			map[uint32]status.Code{1: status.OK, 2: status.OK, 3: status.RateLimited, 4: status.RateLimited}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultParams()
			if tc.p != nil {
				tc.p(&p)
			}
			srv := newRelay(t, WithParams(p))
			st, r := rawSession(t, srv)
			var out []byte
			for _, f := range tc.frames {
				out = append(out, f...)
			}
			if _, err := st.Write(out); err != nil {
				t.Fatal(err)
			}
			got := map[uint32]status.Code{}
			for range tc.answers {
				id, c := readAnswer(t, r)
				got[id] = c
			}
			if !maps.Equal(got, tc.answers) {
				t.Fatalf("answers %v, want %v", got, tc.answers)
			}
			if tc.ends {
				if _, err := r.Next(64); err == nil {
					t.Fatal("the session went on")
				}
				return
			}
			// The session is still at a frame boundary and goes on.
			if _, err := st.Write(good(1000)); err != nil {
				t.Fatal(err)
			}
			if id, c := readAnswer(t, r); id != 1000 || (c != status.OK && c != status.RateLimited) {
				t.Fatalf("after: %d: %v", id, c)
			}
		})
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
			frame, err := r.ReadFrame(sessionIDSize + DefaultParams().MaxRequestSize())
			if err != nil {
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
			id := binary.BigEndian.Uint32(frame)
			if _, err := st.Write(appendSessionResponse(nil, id, &response{code: status.OK})); err != nil {
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

// A host that answers a request twice, or one never sent, breaks the
// session: the calls waiting on it fail instead of taking another's
// answer.
func TestSessionRejectsStrayAnswers(t *testing.T) {
	srv := newHost(t)
	srv.SetStreamHandler(SessionProtocolID, func(st network.Stream) {
		frame, err := wire.NewReader(st).ReadFrame(sessionIDSize + DefaultParams().MaxRequestSize())
		if err != nil {
			_ = st.Reset()
			return
		}
		id := binary.BigEndian.Uint32(frame)
		out := appendSessionResponse(nil, id+1, &response{code: status.OK})
		_, _ = st.Write(appendSessionResponse(out, id, &response{code: status.OK}))
		_ = st.Close()
	})
	client := newHost(t)
	link(t, client, srv)
	k := tu.WriteKey(t)
	s := NewSession(client, srv.ID(), 5*time.Second)
	t.Cleanup(func() { s.Close() })
	if err := s.Send(context.Background(), tu.Mailbox(k), tu.Envelope(t, k, 100)); !errors.Is(err, ErrBadResponse) {
		t.Fatalf("answer to a request never sent: %v, want ErrBadResponse", err)
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

// rawSession opens a session stream to srv for a test to write frames on.
func rawSession(t *testing.T, srv *testRelay) (network.Stream, *wire.Reader) {
	t.Helper()
	client := newHost(t)
	link(t, client, srv.h)
	st, err := client.NewStream(context.Background(), srv.h.ID(), SessionProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Reset() })
	_ = st.SetDeadline(time.Now().Add(10 * time.Second))
	return st, wire.NewReader(st)
}

// readAnswer reads one session answer.
func readAnswer(t *testing.T, r *wire.Reader) (uint32, status.Code) {
	t.Helper()
	b, err := r.ReadFrame(sessionIDSize + maxResponseSize)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	id, resp, err := parseSessionResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	return id, resp.code
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

func FuzzParseSessionResponse(f *testing.F) {
	f.Add(appendSessionResponse(nil, 7, &response{code: status.OK})[1:])
	f.Add(appendSessionResponse(nil, 1<<31, &response{code: status.NotServed, msg: "no"})[1:])
	f.Add([]byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, r, err := parseSessionResponse(b)
		if err != nil {
			return
		}
		if got := appendSessionResponse(nil, id, r); !bytes.Equal(got[len(got)-len(b):], b) {
			t.Fatal("session answer does not re-encode to its input")
		}
	})
}

// The host's reading of session requests: whatever the bytes, it never
// panics, never accepts a frame over the bound, and either answers a
// request (by its ID) or ends the session.
func FuzzSessionRequests(f *testing.F) {
	k := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	m := tu.Mailbox(k)
	env, err := envelope.Seal(k, make([]byte, envelope.NonceSize), []byte("ciphertext"), 0)
	if err != nil {
		f.Fatal(err)
	}
	good := appendSessionRequest(nil, 1, &request{mailbox: m, envelope: env.Bytes()})
	f.Add(good)
	f.Add(append(append([]byte(nil), good...), appendSessionRequest(nil, 2, &request{mailbox: m, envelope: []byte("x")})...))
	f.Add(binary.BigEndian.AppendUint32(binary.AppendUvarint(nil, 1<<20), 3))
	f.Add([]byte{2, 0, 0})
	p := DefaultParams()
	p.RejectsBeforeBlacklist, p.PeerRate = 0, 0
	r := &Relay{
		params:  p,
		log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		limiter: ratelimit.New[peer.ID](0, 0, 1),
		rejects: ratelimit.New[peer.ID](0, 0, 1),
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(in), readBufferSize)
		for range 16 {
			a, size, ok := r.peekSessionRequest(br, "", admission.Key{})
			if !ok {
				return
			}
			if a.code == status.OK {
				if size > sessionIDSize+p.MaxRequestSize() {
					t.Fatalf("frame of %d bytes accepted", size)
				}
				env, ok := r.readSessionRequest(a, "", nil, br, size)
				if ok && (env == nil || env.Size() > p.MaxEnvelopeSize || a.code != status.OK) {
					t.Fatalf("accepted %v with code %v", env, a.code)
				}
				if !ok && a.code == status.OK {
					t.Fatal("refused without a code")
				}
			}
			if !a.intact {
				return
			}
		}
	})
}
