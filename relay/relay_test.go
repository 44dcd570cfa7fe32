package relay

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/admission"
	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/internal/wire"
)

// memHandler records delivered envelopes.
type memHandler struct {
	mu    sync.Mutex
	seen  map[envelope.ID]bool
	calls map[envelope.ID]int // Deliver calls per envelope, duplicates included
	fail  error
}

func (h *memHandler) Deliver(_ context.Context, env *envelope.Envelope, _ peer.ID) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail != nil {
		return false, h.fail
	}
	if h.seen == nil {
		h.seen, h.calls = map[envelope.ID]bool{}, map[envelope.ID]int{}
	}
	h.calls[env.ID()]++
	dup := h.seen[env.ID()]
	h.seen[env.ID()] = true
	return dup, nil
}

func (h *memHandler) has(id envelope.ID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen[id]
}

func (h *memHandler) deliveries(id envelope.ID) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[id]
}

func (h *memHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen)
}

type allowAll struct{}

func (allowAll) Serves(envelope.MailboxID, peer.ID) bool { return true }

func newHost(t testing.TB) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

type testRelay struct {
	h  host.Host
	r  *Relay
	hd *memHandler
}

func newRelay(t *testing.T, opts ...Option) *testRelay {
	t.Helper()
	h := newHost(t)
	psOpts, err := PubSubOptions(DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	ps, err := pubsub.NewGossipSub(context.Background(), h, psOpts...)
	if err != nil {
		t.Fatal(err)
	}
	hd := &memHandler{}
	r, err := New(h, ps, hd, append([]Option{WithPolicy(allowAll{})}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &testRelay{h: h, r: r, hd: hd}
}

func link(t testing.TB, a, b host.Host) {
	t.Helper()
	if err := a.Connect(context.Background(), peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// rawExchange sends one raw frame on the relay protocol and returns the
// decoded response.
func rawExchange(t *testing.T, from host.Host, to peer.ID, frame []byte) *response {
	t.Helper()
	s, err := from.NewStream(context.Background(), to, ProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.Write(frame); err != nil {
		t.Fatal(err)
	}
	_ = s.CloseWrite()
	b, err := wire.NewReader(s).ReadFrame(maxResponseSize)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	resp, err := parseResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func frameOf(b []byte) []byte {
	var out []byte
	w := &sliceWriter{&out}
	_ = wire.WriteOne(w, b)
	return out
}

type sliceWriter struct{ b *[]byte }

func (w *sliceWriter) Write(p []byte) (int, error) { *w.b = append(*w.b, p...); return len(p), nil }

func TestDirectRejections(t *testing.T) {
	srv := newRelay(t, WithParams(func() Params { p := DefaultParams(); p.RejectsBeforeBlacklist = 0; return p }()))
	client := newHost(t)
	link(t, client, srv.h)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	good := tu.Envelope(t, k, 64)
	badSig := append([]byte(nil), good.Bytes()...)
	badSig[len(badSig)-1] ^= 1
	oversize := make([]byte, DefaultParams().MaxRequestSize()+1)
	good2 := tu.Envelope(t, k, 64)

	tests := []struct {
		name  string
		frame []byte
		want  status.Code
	}{
		{"garbage frame", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, status.Malformed},
		{"truncated request", frameOf([]byte{wireVersion, 1, 2}), status.Malformed},
		{"truncated proof", frameOf(append([]byte{wireVersionProof}, make([]byte, 32+3)...)), status.Malformed},
		{"wrong version", frameOf(append([]byte{9}, make([]byte, 40)...)), status.Version},
		{"oversize", frameOf(oversize), status.TooLarge},
		{"not an envelope", frameOf((&request{mailbox: m, envelope: []byte("hello")}).marshal()), status.Malformed},
		{"bad signature", frameOf((&request{mailbox: m, envelope: badSig}).marshal()), status.BadSignature},
		{"wrong mailbox", frameOf((&request{mailbox: tu.Mailbox(tu.WriteKey(t)), envelope: good.Bytes()}).marshal()), status.WrongMailbox},
		{"good", frameOf((&request{mailbox: m, envelope: good.Bytes()}).marshal()), status.OK},
		{"duplicate", frameOf((&request{mailbox: m, envelope: good.Bytes()}).marshal()), status.Duplicate},
		{"with a proof", frameOf((&request{mailbox: m, proof: &admission.Proof{1}, envelope: good2.Bytes()}).marshal()), status.OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := rawExchange(t, client, srv.h.ID(), tc.frame); got.code != tc.want {
				t.Fatalf("code %v (%s), want %v", got.code, got.msg, tc.want)
			}
		})
	}
	if srv.hd.count() != 2 {
		t.Fatalf("handler got %d envelopes, want 2", srv.hd.count())
	}
}

func TestSendReportsHandlerErrors(t *testing.T) {
	srv := newRelay(t)
	srv.hd.fail = errors.New("disk on fire")
	client := newHost(t)
	link(t, client, srv.h)
	k := tu.WriteKey(t)
	err := Send(context.Background(), client, srv.h.ID(), tu.Mailbox(k), tu.Envelope(t, k, 10), time.Second*5)
	if !errors.Is(err, status.ErrUnavailable) {
		t.Fatalf("got %v, want unavailable", err)
	}
	var se *status.Error
	if !errors.As(err, &se) || se.Message != "internal error" {
		t.Fatalf("internal error text leaked or missing: %v", err)
	}
}

func TestRateLimit(t *testing.T) {
	p := DefaultParams()
	p.PeerRate, p.PeerBurst = 1, 3
	srv := newRelay(t, WithParams(p))
	client := newHost(t)
	link(t, client, srv.h)
	k := tu.WriteKey(t)
	limited := 0
	for i := 0; i < 6; i++ {
		err := Send(context.Background(), client, srv.h.ID(), tu.Mailbox(k), tu.Envelope(t, k, 10), 5*time.Second)
		if errors.Is(err, status.ErrRateLimited) {
			limited++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if limited < 2 {
		t.Fatalf("only %d of 6 rapid relays were rate limited with burst 3", limited)
	}
}

// A peer without validators publishes forgeries on the topic: the honest
// node rejects them, does not deliver them and does not forward them.
func TestGossipForgeriesDieAtFirstHop(t *testing.T) {
	a := newRelay(t)
	c := newRelay(t)
	// The attacker runs plain gossipsub with the same options but no validator.
	evil := newHost(t)
	psOpts, _ := PubSubOptions(DefaultParams())
	eps, err := pubsub.NewGossipSub(context.Background(), evil, psOpts...)
	if err != nil {
		t.Fatal(err)
	}
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	for _, r := range []*testRelay{a, c} {
		if err := r.r.Join(m); err != nil {
			t.Fatal(err)
		}
	}
	et, err := eps.Join(TopicName(m))
	if err != nil {
		t.Fatal(err)
	}
	esub, _ := et.Subscribe()
	defer esub.Cancel()
	// evil — a — c: c can only hear what a forwards.
	link(t, evil, a.h)
	link(t, a.h, c.h)
	tu.Eventually(t, 10*time.Second, func() bool {
		return len(a.r.TopicPeers(m)) == 2 && len(c.r.TopicPeers(m)) == 1 && len(et.ListPeers()) == 1
	}, "mesh evil—a—c")

	// Warm the path: honest envelopes from evil until one has crossed a to c
	// (gossipsub only forwards to mesh peers, built at the first heartbeats).
	sent := 0
	tu.Eventually(t, 15*time.Second, func() bool {
		if err := et.Publish(context.Background(), tu.Envelope(t, k, 50).Bytes()); err != nil {
			t.Fatal(err)
		}
		sent++
		time.Sleep(100 * time.Millisecond)
		return c.hd.count() > 0
	}, "path evil→a→c")

	forged := tu.Envelope(t, tu.WriteKey(t), 50) // valid signature, wrong mailbox
	tampered := append([]byte(nil), tu.Envelope(t, k, 50).Bytes()...)
	tampered[envelope.HeaderSize] ^= 1
	for _, b := range [][]byte{forged.Bytes(), tampered, []byte("junk")} {
		if err := et.Publish(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	// Then one honest envelope through the same path: once it has arrived,
	// the forgeries sent before it have been judged too.
	good := tu.Envelope(t, k, 50)
	if err := et.Publish(context.Background(), good.Bytes()); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 10*time.Second, func() bool { return c.hd.has(good.ID()) }, "last good envelope reaches c via a")
	for _, id := range []envelope.ID{forged.ID(), sha256.Sum256(tampered), sha256.Sum256([]byte("junk"))} {
		if a.hd.has(id) || c.hd.has(id) {
			t.Fatalf("forgery %s delivered", id.Short())
		}
	}
	if a.hd.count() > sent+1 || c.hd.count() > sent+1 {
		t.Fatalf("more envelopes delivered than honest ones sent: a=%d c=%d sent=%d", a.hd.count(), c.hd.count(), sent+1)
	}
}

func TestTopicNameHidesTag(t *testing.T) {
	m := tu.Mailbox(tu.WriteKey(t))
	if n := TopicName(m); len(n) == 0 || strings.Contains(n, m.String()) {
		t.Fatalf("topic %q reveals mailbox %s", n, m)
	}
	if TopicName(m) != TopicName(m) {
		t.Fatal("topic name not deterministic")
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add((&request{envelope: []byte("x")}).marshal())
	f.Add([]byte{wireVersion})
	f.Add((&request{proof: &admission.Proof{7}, envelope: []byte("x")}).marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := parseRequest(b)
		if err != nil {
			return
		}
		if got := q.marshal(); string(got) != string(b) {
			t.Fatal("request does not re-encode to its input")
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	f.Add((&response{code: status.OK}).marshal())
	f.Add((&response{code: status.NotServed, msg: "no"}).marshal())
	f.Add((&response{code: status.ProofRequired, msg: "work", bits: 20}).marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseResponse(b)
		if err != nil {
			return
		}
		if got := r.marshal(); string(got) != string(b) {
			t.Fatal("response does not re-encode to its input")
		}
	})
}
