package relay

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/meshnode/meshnode/envelope"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/store"
)

// storeHandler is the host's Handler: a durable Put into a Badger store.
type storeHandler struct{ st *store.Store }

func (h storeHandler) Deliver(ctx context.Context, env *envelope.Envelope, _ peer.ID) (bool, error) {
	res, err := h.st.Put(ctx, env)
	return res.Duplicate, err
}

// BenchmarkRelayIngest measures direct relays of 1 KiB envelopes from 4
// writers (each its own libp2p host on TCP loopback) keeping 8 requests in
// flight each, to one relay whose Handler stores durably: on disk (fsync
// per group commit, as a host) or in memory (the protocol and
// verification cost alone); with a stream per envelope (Send) or one
// pipelined session per writer (Session). The relay has joined every mailbox's
// topic, as a host does, so each stored envelope is also published.
//
//	go test ./relay -run '^$' -bench RelayIngest -benchtime 20000x
func BenchmarkRelayIngest(b *testing.B) {
	for _, mode := range []string{"disk", "memory"} {
		for _, proto := range []string{"stream", "session"} {
			b.Run("store="+mode+"/"+proto, func(b *testing.B) {
				p := store.DefaultParams()
				dir := b.TempDir()
				if mode == "memory" {
					p, dir = store.InMemoryParams(), ""
				}
				p.RetentionInterval, p.GCInterval = 0, 0
				p.Default, p.GlobalQuotaBytes = store.MailboxPolicy{}, 0
				st, err := store.Open(dir, p, store.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { st.Close() })
				benchIngest(b, storeHandler{st}, 4, 8, proto == "session")
				if u := st.Usage(); u.Count != int64(b.N) {
					b.Fatalf("stored %d of %d", u.Count, b.N)
				}
			})
		}
	}
}

// benchHost is a libp2p host with node's transport stack: TCP, Noise,
// yamux, no circuit relay, a resource manager of our own (libp2p's default
// one traces every event for its metrics; node's does not).
func benchHost(b *testing.B) host.Host {
	b.Helper()
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits))
	if err != nil {
		b.Fatal(err)
	}
	h, err := libp2p.New(
		libp2p.ResourceManager(rm),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableRelay(),
	)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	return h
}

func benchIngest(b *testing.B, hd Handler, writers, inflight int, session bool) {
	h := benchHost(b)
	psOpts, err := PubSubOptions(DefaultParams())
	if err != nil {
		b.Fatal(err)
	}
	ps, err := pubsub.NewGossipSub(context.Background(), h, psOpts...)
	if err != nil {
		b.Fatal(err)
	}
	p := DefaultParams()
	p.PeerRate = 0 // capacity, not policy
	srv, err := New(h, ps, hd, WithParams(p), WithPolicy(allowAll{}), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })

	type writer struct {
		m    envelope.MailboxID
		envs []*envelope.Envelope
		next atomic.Int64
	}
	ws := make([]*writer, writers)
	for i := range ws {
		k := tu.WriteKey(b)
		ws[i] = &writer{m: tu.Mailbox(k)}
		if err := srv.Join(ws[i].m); err != nil {
			b.Fatal(err)
		}
		for j := i; j < b.N; j += writers {
			ws[i].envs = append(ws[i].envs, tu.Envelope(b, k, 1024-envelope.Overhead))
		}
	}
	clients := make([]host.Host, writers)
	for i := range clients {
		clients[i] = benchHost(b)
		link(b, clients[i], h)
	}
	var wg sync.WaitGroup
	var failed atomic.Bool
	b.SetBytes(1024)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i, w := range ws {
		c := clients[i]
		send := func(e *envelope.Envelope) error {
			return Send(context.Background(), c, h.ID(), w.m, e, 10*time.Second)
		}
		if session {
			s := NewSession(c, h.ID(), 10*time.Second)
			defer s.Close()
			send = func(e *envelope.Envelope) error { return s.Send(context.Background(), w.m, e) }
		}
		for range inflight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !failed.Load() {
					j := int(w.next.Add(1) - 1)
					if j >= len(w.envs) {
						return
					}
					if err := send(w.envs[j]); err != nil && !errors.Is(err, context.Canceled) {
						failed.Store(true)
						b.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	b.StopTimer()
	// CPU per envelope (the writers' and the relay's: one process) says
	// more than time per envelope on a machine shared with other jobs.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}
