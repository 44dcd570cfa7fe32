package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/internal/wire"
	"github.com/meshnode/meshnode/store"
)

// streamFixture is a host serving n envelopes of one mailbox and a client
// connected to it, with the streams of each protocol counted.
type streamFixture struct {
	c       *Client
	srvHost host.Host
	svc     *Service
	m       envelope.MailboxID
	ids     []envelope.ID
	paged   atomic.Int64 // streams of ProtocolID served
	streams atomic.Int64 // streams of StreamProtocolID served
}

func newStreamFixture(t *testing.T, n int, p Params) *streamFixture {
	return newFixture(t, n, p, true)
}

// newFixture with streaming false serves ProtocolID only, as a host from
// before StreamProtocolID would.
func newFixture(t *testing.T, n int, p Params, streaming bool) *streamFixture {
	t.Helper()
	srvHost, cliHost := newHost(t), newHost(t)
	st := newStore(t)
	k := tu.WriteKey(t)
	f := &streamFixture{srvHost: srvHost, m: tu.Mailbox(k)}
	for range n {
		e := tu.Envelope(t, k, 200)
		if _, err := st.Put(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		f.ids = append(f.ids, e.ID())
	}
	var err error
	if f.svc, err = NewService(srvHost, st, WithParams(p), WithPolicy(onlyMailbox(f.m))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.svc.Close() })
	srvHost.SetStreamHandler(ProtocolID, func(s network.Stream) { f.paged.Add(1); f.svc.handle(s) })
	srvHost.SetStreamHandler(StreamProtocolID, func(s network.Stream) { f.streams.Add(1); f.svc.handleStream(s) })
	if !streaming {
		srvHost.RemoveStreamHandler(StreamProtocolID)
	}
	if err := cliHost.Connect(context.Background(), peer.AddrInfo{ID: srvHost.ID(), Addrs: srvHost.Addrs()}); err != nil {
		t.Fatal(err)
	}
	if f.c, err = NewClient(cliHost, p, true); err != nil {
		t.Fatal(err)
	}
	return f
}

// catchUp runs CatchUp from cur and appends what it delivers to got.
func (f *streamFixture) catchUp(t *testing.T, cur store.Cursor, got *[]envelope.ID) (store.Cursor, int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return f.c.CatchUp(ctx, f.srvHost.ID(), f.m, cur, func(pg store.Page) error {
		for _, e := range pg.Envelopes {
			*got = append(*got, e.ID())
		}
		return nil
	})
}

func checkSame(t *testing.T, got, want []envelope.ID) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d envelopes, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("envelope %d out of order, lost or repeated", i)
		}
	}
}

// One request, one stream, every page; with a host that does not speak
// the streaming protocol, the same catch-up page by page, whether the
// client knew that from identify or learns it when the host refuses the
// stream.
func TestCatchUpProtocols(t *testing.T) {
	for _, tc := range []struct {
		name           string
		streaming      bool
		dropAfter      bool // the host stops speaking 1.1.0 after identify
		streams, paged int64
	}{
		{"streaming", true, false, 1, 0},
		{"host speaks 1.0.0 only", false, false, 0, 6},
		{"host stopped speaking 1.1.0", true, true, 0, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultParams()
			p.MaxPageCount = 50
			f := newFixture(t, 300, p, tc.streaming)
			if tc.dropAfter {
				f.srvHost.RemoveStreamHandler(StreamProtocolID)
			}
			var got []envelope.ID
			_, n, err := f.catchUp(t, nil, &got)
			if err != nil || n != 300 {
				t.Fatalf("%d envelopes, %v", n, err)
			}
			checkSame(t, got, f.ids)
			if s, pg := f.streams.Load(), f.paged.Load(); s != tc.streams || pg != tc.paged {
				t.Fatalf("%d streaming and %d paged streams, want %d and %d", s, pg, tc.streams, tc.paged)
			}
		})
	}
}

// A host's page budget per stream: the client goes on with a new stream
// from the last cursor, losing and repeating nothing.
func TestCatchUpStreamBudget(t *testing.T) {
	for _, tc := range []struct{ n, page, budget, streams int }{
		{300, 50, 2, 3}, // the last stream's last page says none remain
		{301, 50, 2, 4},
		{10, 50, 1, 1},
		{0, 50, 1, 1},
	} {
		p := DefaultParams()
		p.MaxPageCount, p.MaxStreamPages = tc.page, tc.budget
		f := newStreamFixture(t, tc.n, p)
		var got []envelope.ID
		_, n, err := f.catchUp(t, nil, &got)
		if err != nil || n != tc.n {
			t.Fatalf("%+v: %d envelopes, %v", tc, n, err)
		}
		checkSame(t, got, f.ids)
		if s := f.streams.Load(); s != int64(tc.streams) {
			t.Fatalf("%+v: %d streams, want %d", tc, s, tc.streams)
		}
	}
}

// breakingStream breaks once more than budget bytes were written to it:
// a connection lost in the middle of a stream of pages. It writes what
// fits and then closes (the client reads everything up to the break) or
// resets (the client may lose what was in flight).
type breakingStream struct {
	network.Stream
	budget int
	reset  bool
	broken bool
}

func (b *breakingStream) Write(p []byte) (int, error) {
	if b.broken {
		return 0, network.ErrReset
	}
	if len(p) <= b.budget {
		b.budget -= len(p)
		return b.Stream.Write(p)
	}
	b.broken = true
	if b.reset {
		_ = b.Stream.Reset()
		return 0, network.ErrReset
	}
	n, _ := b.Stream.Write(p[:b.budget])
	_ = b.Stream.Close()
	return n, network.ErrReset
}

// Reset after a clean break would discard what the client has not read.
func (b *breakingStream) Reset() error {
	if b.broken && !b.reset {
		return nil
	}
	return b.Stream.Reset()
}

// A stream that breaks midway: whole pages before the break are
// delivered, the broken one is not, and resuming from the cursor returned
// delivers the rest, each envelope once and in order.
func TestCatchUpStreamBreaksAndResumes(t *testing.T) {
	const page = 50
	// The wire size of one page, header aside: 200-byte payloads.
	e := tu.Envelope(t, tu.WriteKey(t), 200)
	pageBytes := page * (uvarintLen(uint64(e.Size())) + e.Size())
	for _, tc := range []struct {
		name      string
		breakAt   int // bytes written before the break
		reset     bool
		delivered int // envelopes delivered before it (reset: at most)
	}{
		{"in the first header", 3, false, 0},
		{"in the first page", pageBytes / 2, false, 0},
		{"in the third page", 2*pageBytes + pageBytes/2, false, 2 * page},
		{"reset in the first page", pageBytes / 2, true, 0},
		{"reset in the third page", 2*pageBytes + pageBytes/2, true, 2 * page},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultParams()
			p.MaxPageCount = page
			f := newStreamFixture(t, 300, p)
			var once sync.Once
			f.srvHost.SetStreamHandler(StreamProtocolID, func(s network.Stream) {
				broken := false
				once.Do(func() { broken = true })
				if broken {
					// Pages are flushed one by one (well below
					// streamWriteSize), so the budget counts pages.
					f.svc.handleStream(&breakingStream{Stream: s, budget: tc.breakAt, reset: tc.reset})
					return
				}
				f.svc.handleStream(s)
			})
			var got []envelope.ID
			cur, n, err := f.catchUp(t, nil, &got)
			if err == nil || len(got) != n || n%page != 0 || n > tc.delivered || (!tc.reset && n != tc.delivered) {
				t.Fatalf("broken stream: %d envelopes (%d kept), %v; want an error after %d", n, len(got), err, tc.delivered)
			}
			before := n
			_, n, err = f.catchUp(t, cur, &got)
			if err != nil || n != 300-before {
				t.Fatalf("resumed: %d envelopes, %v", n, err)
			}
			checkSame(t, got, f.ids)
		})
	}
}

// Refusals end the stream with the host's code; the pages before them are
// delivered.
func TestCatchUpStreamRefusals(t *testing.T) {
	t.Run("unknown cursor", func(t *testing.T) {
		f := newStreamFixture(t, 3, DefaultParams())
		var got []envelope.ID
		if _, _, err := f.catchUp(t, store.Cursor("not-a-cursor"), &got); !errors.Is(err, store.ErrUnknownCursor) {
			t.Fatalf("got %v, want unknown cursor", err)
		}
	})
	t.Run("not served", func(t *testing.T) {
		f := newStreamFixture(t, 3, DefaultParams())
		f.m = tu.Mailbox(tu.WriteKey(t))
		var got []envelope.ID
		if _, _, err := f.catchUp(t, nil, &got); !errors.Is(err, status.ErrNotServed) {
			t.Fatalf("got %v, want not served", err)
		}
	})
	t.Run("rate limited after the burst", func(t *testing.T) {
		p := DefaultParams()
		p.MaxPageCount, p.PeerRate, p.PeerBurst = 10, 0.001, 3
		f := newStreamFixture(t, 100, p)
		var got []envelope.ID
		cur, n, err := f.catchUp(t, nil, &got)
		if !errors.Is(err, status.ErrRateLimited) || n != 30 {
			t.Fatalf("got %v after %d envelopes, want rate limited after 30", err, n)
		}
		checkSame(t, got, f.ids[:30])
		if len(cur) == 0 {
			t.Fatal("no cursor to resume from")
		}
	})
}

// rawHost is a host speaking StreamProtocolID with a scripted reply.
func rawHost(t *testing.T, reply func(s network.Stream, w *wire.Writer)) (*Client, peer.ID) {
	t.Helper()
	srvHost, cliHost := newHost(t), newHost(t)
	srvHost.SetStreamHandler(StreamProtocolID, func(s network.Stream) {
		if _, err := wire.NewReader(s).ReadFrame(maxStreamRequestSize); err != nil {
			_ = s.Reset()
			return
		}
		w := wire.NewWriter(s)
		reply(s, w)
		_ = w.Flush()
		_ = s.Close()
	})
	if err := cliHost.Connect(context.Background(), peer.AddrInfo{ID: srvHost.ID(), Addrs: srvHost.Addrs()}); err != nil {
		t.Fatal(err)
	}
	p := DefaultParams()
	p.MaxPageCount = 5
	p.StreamTimeout = 2 * time.Second
	c, err := NewClient(cliHost, p, true)
	if err != nil {
		t.Fatal(err)
	}
	return c, srvHost.ID()
}

// A host breaking the streaming protocol is refused, and nothing of the
// offending page reaches fn.
func TestCatchUpStreamRejectsBadPages(t *testing.T) {
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	mine := func(n int) [][]byte {
		var out [][]byte
		for range n {
			out = append(out, tu.Envelope(t, k, 10).Bytes())
		}
		return out
	}
	page := func(w *wire.Writer, h pageHeader, es [][]byte) {
		if h.code == status.OK && h.count == 0 && h.size == 0 {
			h.count, h.size = uint32(len(es)), uint32(bodySize(es))
		}
		_ = w.WriteFrame(h.marshal())
		for _, e := range es {
			_ = w.WriteFrame(e)
		}
	}
	tampered := append([]byte(nil), mine(1)[0]...)
	tampered[envelope.HeaderSize] ^= 1
	other := tu.Envelope(t, tu.WriteKey(t), 10).Bytes()
	tests := []struct {
		name  string
		reply func(s network.Stream, w *wire.Writer)
		want  error // nil: any error
	}{
		{"garbage header", func(_ network.Stream, w *wire.Writer) { _ = w.WriteFrame([]byte{0xee}) }, ErrBadResponse},
		{"oversized header", func(_ network.Stream, w *wire.Writer) { _ = w.WriteFrame(make([]byte, maxPageHeaderSize+1)) }, wire.ErrFrameTooLarge},
		{"more envelopes than the limit", func(_ network.Stream, w *wire.Writer) { page(w, pageHeader{code: status.OK}, mine(6)) }, ErrBadResponse},
		{"body larger than the bound", func(_ network.Stream, w *wire.Writer) {
			page(w, pageHeader{code: status.OK, count: 1, size: uint32(maxBodySize(DefaultParams(), 1) + 1)}, nil)
		}, ErrBadResponse},
		{"body smaller than its envelopes", func(_ network.Stream, w *wire.Writer) {
			es := mine(2)
			page(w, pageHeader{code: status.OK, count: 2, size: uint32(bodySize(es) - 1)}, es)
		}, ErrBadResponse},
		{"body larger than its envelopes", func(_ network.Stream, w *wire.Writer) {
			es := mine(2)
			page(w, pageHeader{code: status.OK, count: 1, size: uint32(bodySize(es))}, es)
		}, ErrBadResponse},
		{"too small for its count", func(_ network.Stream, w *wire.Writer) {
			page(w, pageHeader{code: status.OK, count: 3, size: 10}, nil)
		}, ErrBadResponse},
		{"envelope of another mailbox", func(_ network.Stream, w *wire.Writer) {
			page(w, pageHeader{code: status.OK}, [][]byte{mine(1)[0], other})
		}, ErrBadResponse},
		{"bad signature", func(_ network.Stream, w *wire.Writer) { page(w, pageHeader{code: status.OK}, [][]byte{tampered}) }, envelope.ErrBadSignature},
		{"empty page claiming more", func(_ network.Stream, w *wire.Writer) {
			page(w, pageHeader{code: status.OK, more: true, next: []byte("c")}, nil)
		}, ErrBadResponse},
		{"truncated body", func(_ network.Stream, w *wire.Writer) {
			es := mine(2)
			_ = w.WriteFrame((&pageHeader{code: status.OK, count: 2, size: uint32(bodySize(es))}).marshal())
			_ = w.WriteFrame(es[0])
		}, io.ErrUnexpectedEOF},
		{"closed before the first page", func(network.Stream, *wire.Writer) {}, io.ErrUnexpectedEOF},
		{"reset in a page", func(s network.Stream, w *wire.Writer) {
			page(w, pageHeader{code: status.OK, more: true, next: []byte("c")}, mine(2))
			_ = w.Flush()
			_ = s.Reset()
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, srv := rawHost(t, tc.reply)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			delivered := 0
			_, n, err := c.CatchUp(ctx, srv, m, nil, func(pg store.Page) error { delivered += len(pg.Envelopes); return nil })
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.name != "reset in a page" && (n != 0 || delivered != 0) {
				t.Fatalf("%d envelopes of a bad page delivered", delivered)
			}
		})
	}
}

// A host that accepts the stream and never answers: the client gives up
// after StreamTimeout. A client that never sends its request: the host
// gives up after its own.
func TestStreamDeadlines(t *testing.T) {
	t.Run("silent host", func(t *testing.T) {
		hold := make(chan struct{})
		t.Cleanup(func() { close(hold) })
		c, srv := rawHost(t, func(network.Stream, *wire.Writer) { <-hold })
		_, _, err := c.CatchUp(context.Background(), srv, tu.Mailbox(tu.WriteKey(t)), nil, func(store.Page) error { return nil })
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, network.ErrReset) && !isTimeout(err) {
			t.Fatalf("got %v, want a timeout", err)
		}
	})
	t.Run("silent client", func(t *testing.T) {
		p := DefaultParams()
		p.StreamTimeout = 300 * time.Millisecond
		f := newStreamFixture(t, 1, p)
		s, err := f.c.h.NewStream(context.Background(), f.srvHost.ID(), StreamProtocolID)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Reset() })
		_ = s.SetDeadline(time.Now().Add(10 * time.Second))
		// The host's read of the request times out; it answers with a
		// refusal or resets, and either way the stream ends.
		if _, err = io.ReadAll(s); err != nil && !errors.Is(err, network.ErrReset) {
			t.Fatalf("got %v, want the host to end the stream", err)
		}
	})
}

// newLimitedHost is a host whose resource manager grants the fetch
// service (and each peer within it) mem bytes.
func newLimitedHost(t *testing.T, mem int64) host.Host {
	t.Helper()
	scaling := rcmgr.DefaultLimits
	lim := rcmgr.BaseLimit{StreamsInbound: 16, StreamsOutbound: 16, Streams: 32, Memory: mem}
	scaling.AddServiceLimit(ServiceName, lim, rcmgr.BaseLimitIncrease{})
	scaling.AddServicePeerLimit(ServiceName, lim, rcmgr.BaseLimitIncrease{})
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(scaling.AutoScale()), rcmgr.WithMetricsDisabled())
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

// Memory is reserved with the resource manager before pages are loaded
// (host) or read (client): a host with room for two pages loads one
// ahead, one with room for one serves them one after the other, one with
// less refuses; a client without room for a page gives up before reading
// it.
func TestStreamMemoryReservations(t *testing.T) {
	p := DefaultParams()
	p.MaxPageCount, p.MaxPageBytes = 20, 64<<10 // pages of ~6 KiB, reserved as 64 KiB on the host
	const page = 64 << 10
	for _, tc := range []struct {
		name         string
		host, client int64 // the fetch service's memory on each side
		want         error
	}{
		// Medium priority (the host) is granted up to 60% of a limit,
		// high (the client) up to 80%.
		{"room for two pages", 4 * page, 1 << 20, nil},
		{"room for one page", 2 * page, 1 << 20, nil},
		{"no room on the host", page, 1 << 20, status.ErrBusy},
		{"no room on the client", 4 * page, 1 << 10, network.ErrResourceLimitExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srvHost, cliHost := newLimitedHost(t, tc.host), newLimitedHost(t, tc.client)
			st, m, want, _ := storeEnvelopes(t, 100, 200)
			c := serveTo(t, srvHost, cliHost, st, m, p, false)
			var got []envelope.ID
			_, n, err := c.CatchUp(context.Background(), srvHost.ID(), m, nil, func(pg store.Page) error {
				for _, e := range pg.Envelopes {
					got = append(got, e.ID())
				}
				return nil
			})
			if tc.want != nil {
				if !errors.Is(err, tc.want) || n != 0 {
					t.Fatalf("got %v after %d envelopes, want %v before any", err, n, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkSame(t, got, want)
		})
	}
}

// The client reads ahead only as far as the resource manager grants: a
// page it needs (none held) at high priority, granted up to 80% of a
// scope's limit, a page read ahead at low priority, up to 40%. With room
// for six pages, ReadAhead 8 reads two ahead; the reader then waits for a
// page to be handed over instead of failing, and the catch-up gets
// everything. A second catch-up from the same peer meanwhile still gets
// its pages, which it could not if the first had read ahead up to 80%.
func TestStreamReadAheadWithinMemory(t *testing.T) {
	p := DefaultParams()
	p.MaxPageCount, p.MaxPageBytes, p.ReadAhead = 10, 64<<10, 8
	// The first catch-up waits in its first page for the second one: no
	// deadline may end it however slow a loaded machine is (the test
	// asserts memory, never time).
	p.StreamTimeout = 10 * time.Minute
	const n = 100
	st, m, want, size := storeEnvelopes(t, n, 400)
	page := p.MaxPageCount * (size + uvarintLen(uint64(size)))
	srvHost, cliHost := newLimitedHost(t, 1<<20), newLimitedHost(t, int64(page*6))
	c := serveTo(t, srvHost, cliHost, st, m, p, false)
	used := func() int64 {
		var mem int64
		_ = cliHost.Network().ResourceManager().ViewService(ServiceName, func(s network.ServiceScope) error {
			mem = s.Stat().Memory
			return nil
		})
		return mem
	}
	catchUp := func(onFirst func()) ([]envelope.ID, error) {
		var got []envelope.ID
		first := true
		_, total, err := c.CatchUp(context.Background(), srvHost.ID(), m, nil, func(pg store.Page) error {
			if first {
				first = false
				onFirst()
			}
			for _, e := range pg.Envelopes {
				got = append(got, e.ID())
			}
			return nil
		})
		if err == nil && total != n {
			err = fmt.Errorf("caught up %d of %d", total, n)
		}
		return got, err
	}
	// The first page is handed over only once the reader has read ahead
	// as far as it may, and once a second catch-up has run to its end.
	var second []envelope.ID
	var secondErr error
	got, err := catchUp(func() {
		tu.Eventually(t, 2*time.Minute, func() bool { return used() >= int64(2*page) }, "reader reading ahead")
		second, secondErr = catchUp(func() {})
	})
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, got, want)
	if secondErr != nil {
		t.Fatalf("second catch-up while the first read ahead: %v", secondErr)
	}
	checkSame(t, second, want)
	tu.Eventually(t, 2*time.Minute, func() bool { return used() == 0 }, "client memory released")

	// A catch-up that stops at its first page gives back the memory of
	// the pages read ahead of it.
	stop := errors.New("enough")
	_, _, err = c.CatchUp(context.Background(), srvHost.ID(), m, nil, func(store.Page) error {
		tu.Eventually(t, 2*time.Minute, func() bool { return used() >= int64(2*page) }, "reader reading ahead")
		return stop
	})
	if !errors.Is(err, stop) {
		t.Fatalf("stopped catch-up: %v", err)
	}
	tu.Eventually(t, 2*time.Minute, func() bool { return used() == 0 }, "memory of the pages read ahead released")
}
