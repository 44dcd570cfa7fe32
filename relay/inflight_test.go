package relay

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"

	"github.com/meshnode/meshnode/envelope"
	tu "github.com/meshnode/meshnode/internal/testutil"
)

// limitedHost is a host whose resource manager limits the relay service
// per peer as node does: 32 inbound streams and the memory of 8
// maximum-size request frames.
func limitedHost(t *testing.T) host.Host {
	t.Helper()
	max := DefaultParams().MaxRequestSize()
	scaling := rcmgr.DefaultLimits
	scaling.AddServicePeerLimit(ServiceName,
		rcmgr.BaseLimit{StreamsInbound: 32, StreamsOutbound: 32, Streams: 64, Memory: int64(8 * max)},
		rcmgr.BaseLimitIncrease{})
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(scaling.Scale(256<<20, 256)))
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.ResourceManager(rm))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// gatedHandler holds every delivery until want of them are in progress at
// once, so a test knows that many requests were admitted together.
type gatedHandler struct {
	memHandler
	want int
	mu   sync.Mutex
	n    int
	open chan struct{}
}

func (g *gatedHandler) Deliver(ctx context.Context, env *envelope.Envelope, from peer.ID) (bool, error) {
	g.mu.Lock()
	g.n++
	if g.n == g.want {
		close(g.open)
	}
	g.mu.Unlock()
	select {
	case <-g.open:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	return g.memHandler.Deliver(ctx, env, from)
}

// A sender may keep more small envelopes in flight than the per-peer
// memory limit holds maximum-size frames: the host reserves what each
// request announces, and frees it before answering.
func TestManySmallRequestsInFlight(t *testing.T) {
	h := limitedHost(t)
	ps, err := pubsub.NewGossipSub(context.Background(), h, mustPubSubOptions(t)...)
	if err != nil {
		t.Fatal(err)
	}
	const inflight, each = 16, 20
	hd := &gatedHandler{want: inflight, open: make(chan struct{})}
	p := DefaultParams()
	p.PeerRate = 0
	p.StreamTimeout = 5 * time.Second
	r, err := New(h, ps, hd, WithParams(p), WithPolicy(allowAll{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	client := newHost(t)
	link(t, client, h)

	k := tu.WriteKey(t)
	var wg sync.WaitGroup
	errs := make(chan error, inflight*each)
	for range inflight {
		envs := make([]*envelope.Envelope, each)
		for i := range envs {
			envs[i] = tu.Envelope(t, k, 900)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, e := range envs {
				if err := Send(context.Background(), client, h.ID(), tu.Mailbox(k), e, 10*time.Second); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := hd.count(); got != inflight*each {
		t.Fatalf("stored %d envelopes, want %d", got, inflight*each)
	}
}

// What the relay itself opened is published without a second signature
// check, and still reaches the topic; what a caller hands to Publish is
// checked as before.
func TestPublishVerification(t *testing.T) {
	a, b := newRelay(t), newRelay(t)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	for _, r := range []*testRelay{a, b} {
		if err := r.r.Join(m); err != nil {
			t.Fatal(err)
		}
	}
	link(t, a.h, b.h)
	tu.Eventually(t, 10*time.Second, func() bool { return len(a.r.TopicPeers(m)) == 1 }, "b on a's topic")

	client := newHost(t)
	link(t, client, a.h)
	e := tu.Envelope(t, k, 300)
	if err := Send(context.Background(), client, a.h.ID(), m, e, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 10*time.Second, func() bool { return b.hd.has(e.ID()) }, "relayed envelope gossiped to b")

	// a's own subscription receives its forward of e too; it must not hand
	// e to the Handler a second time. pubsub hands a's publications to a's
	// subscription in order, so once a later Publish has arrived, so has
	// the forward of e.
	later := tu.Envelope(t, k, 300)
	if err := a.r.Publish(context.Background(), later); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 10*time.Second, func() bool { return a.hd.has(later.ID()) }, "a's own publication delivered locally")
	if n := a.hd.deliveries(e.ID()); n != 1 {
		t.Fatalf("the relayed envelope reached a's Handler %d times, want 1 (direct relay only, not again from a's own forward)", n)
	}

	tampered := append([]byte(nil), tu.Envelope(t, k, 300).Bytes()...)
	tampered[envelope.HeaderSize] ^= 1
	bad, err := envelope.Decode(tampered, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.r.Publish(context.Background(), bad); err == nil {
		t.Fatal("Publish accepted an envelope with a bad signature")
	}
	// A verifiedData for other bytes than the message's is not trusted.
	if err := a.r.publishMismatched(bad, e); err == nil {
		t.Fatal("a verified mark for other bytes let a forgery through")
	}
}

func mustPubSubOptions(t *testing.T) []pubsub.Option {
	t.Helper()
	o, err := PubSubOptions(DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// publishMismatched publishes bad's bytes with a verified mark for good.
func (r *Relay) publishMismatched(bad, good *envelope.Envelope) error {
	r.mu.Lock()
	j := r.topics[bad.Mailbox()]
	r.mu.Unlock()
	return j.topic.Publish(context.Background(), bad.Bytes(), pubsub.WithValidatorData(verifiedData{good}))
}

// writeFrame writes the frames package wire reads.
func TestWriteFrameIsAWireFrame(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 5000, DefaultParams().MaxRequestSize()} {
		body := make([]byte, n)
		for i := range body {
			body[i] = byte(i)
		}
		var buf bytes.Buffer
		if err := writeFrame(&buf, body); err != nil {
			t.Fatal(err)
		}
		got, err := newFrameReader(&buf).ReadFrame(n)
		if err != nil || !bytes.Equal(got, body) || buf.Len() != 0 {
			t.Fatalf("%d bytes: read back %d bytes, %v, %d left", n, len(got), err, buf.Len())
		}
	}
}

// publications counts this node's own pubsub publications.
type publications struct {
	mu sync.Mutex
	n  int
}

func (p *publications) Trace(evt *pb.TraceEvent) {
	if evt.GetType() == pb.TraceEvent_PUBLISH_MESSAGE {
		p.mu.Lock()
		p.n++
		p.mu.Unlock()
	}
}

func (p *publications) count() int { p.mu.Lock(); defer p.mu.Unlock(); return p.n }

// A host forwards what it receives by the direct protocol only when
// another peer is on the mailbox's topic: alone, it publishes nothing.
func TestForwardOnlyToPeers(t *testing.T) {
	h := newHost(t)
	v := &publications{}
	ps, err := pubsub.NewGossipSub(context.Background(), h, append(mustPubSubOptions(t), pubsub.WithEventTracer(v))...)
	if err != nil {
		t.Fatal(err)
	}
	hd := &memHandler{}
	a, err := New(h, ps, hd, WithPolicy(allowAll{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	if err := a.Join(m); err != nil {
		t.Fatal(err)
	}
	client := newHost(t)
	link(t, client, h)
	alone := tu.Envelope(t, k, 300)
	if err := Send(context.Background(), client, h.ID(), m, alone, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if !hd.has(alone.ID()) {
		t.Fatal("relayed envelope not delivered")
	}

	b := newRelay(t)
	if err := b.r.Join(m); err != nil {
		t.Fatal(err)
	}
	link(t, b.h, h)
	tu.Eventually(t, 10*time.Second, func() bool { return len(a.TopicPeers(m)) == 1 }, "b on a's topic")
	shared := tu.Envelope(t, k, 300)
	if err := Send(context.Background(), client, h.ID(), m, shared, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 10*time.Second, func() bool { return b.hd.has(shared.ID()) }, "envelope forwarded to b")
	// The one publication is the forward of shared: a published nothing
	// while it was alone on the topic.
	if n := v.count(); n != 1 {
		t.Fatalf("a published %d times, want 1 (the forward to b only)", n)
	}
}
