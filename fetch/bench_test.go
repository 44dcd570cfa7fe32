package fetch

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/store"
)

// BenchmarkFetch measures a remote catch-up over TCP loopback: a host
// whose store is Badger on disk holds 10,000 envelopes of 1 KiB in one
// mailbox, and a client on another libp2p host fetches all of them with
// CatchUp (default page bounds: 1,000 envelopes a page): over the
// streaming protocol with signature verification off (a member) and on (a
// host), and page by page (protocol 1.0.0) against a host that does not
// stream. One op is one whole catch-up; envelopes/s is reported.
//
//	go test ./fetch -run '^$' -bench Fetch -benchtime 20x -count 5
func BenchmarkFetch(b *testing.B) {
	const n = 10_000
	srvHost, cliHost := newHost(b), newHost(b)
	p := store.DefaultParams()
	p.RetentionInterval, p.GCInterval = 0, 0
	st, err := store.Open(b.TempDir(), p, store.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	k := tu.WriteKey(b)
	m := tu.Mailbox(k)
	fillConcurrently(b, st, k, n)
	fp := DefaultParams()
	fp.PeerRate = 0 // capacity, not policy
	svc, err := NewService(srvHost, st, WithParams(fp), WithPolicy(onlyMailbox(m)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { svc.Close() })
	if err := cliHost.Connect(context.Background(), peer.AddrInfo{ID: srvHost.ID(), Addrs: srvHost.Addrs()}); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		streaming bool
		verify    bool
	}{
		{"protocol=1.1.0/verify=false", true, false},
		{"protocol=1.0.0/verify=false", false, false},
		{"protocol=1.1.0/verify=true", true, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			if !tc.streaming {
				// A host of before 1.1.0: the client learns it from the
				// refused negotiation and goes on page by page.
				srvHost.RemoveStreamHandler(StreamProtocolID)
				defer srvHost.SetStreamHandler(StreamProtocolID, svc.handleStream)
			}
			c, err := NewClient(cliHost, fp, tc.verify)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(n * 1024)
			b.ReportAllocs()
			for b.Loop() {
				_, got, err := c.CatchUp(context.Background(), srvHost.ID(), m, nil, func(store.Page) error { return nil })
				if err != nil || got != n {
					b.Fatalf("caught up %d of %d: %v", got, n, err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "envelopes/s")
		})
	}
}

// fillConcurrently stores n 1 KiB envelopes under k with 64 writers, so
// group commit keeps the setup short.
func fillConcurrently(b testing.TB, st *store.Store, k ed25519.PrivateKey, n int) {
	envs := make(chan *envelope.Envelope, n)
	for range n {
		envs <- tu.Envelope(b, k, 1024-envelope.Overhead)
	}
	close(envs)
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range envs {
				if _, err := st.Put(context.Background(), e); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
