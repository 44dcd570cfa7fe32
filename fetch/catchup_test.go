package fetch

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/store"
)

// failingSource serves from a store but fails its failAt-th page (1-based)
// midway: after the page's first envelope was handed over.
type failingSource struct {
	st     *store.Store
	failAt int64
	calls  atomic.Int64
}

func (f *failingSource) VisitPage(m envelope.MailboxID, after store.Cursor, limit, maxBytes int, fn func([]byte) error) (store.Cursor, bool, error) {
	if f.calls.Add(1) != f.failAt {
		return f.st.VisitPage(m, after, limit, maxBytes, fn)
	}
	first := true
	return f.st.VisitPage(m, after, limit, maxBytes, func(enc []byte) error {
		if !first {
			return errors.New("disk on fire")
		}
		first = false
		return fn(enc)
	})
}

// protocols runs a catch-up test over each protocol: streaming, and page
// by page against a host that serves only ProtocolID.
func protocols(t *testing.T, test func(t *testing.T, streaming bool)) {
	t.Run("1.1.0", func(t *testing.T) { test(t, true) })
	t.Run("1.0.0", func(t *testing.T) { test(t, false) })
}

// catchUpSetup stores n envelopes and serves them in pages of pageSize
// from src (nil: the store itself), with StreamProtocolID or without.
func catchUpSetup(t *testing.T, streaming bool, n, pageSize int, src func(*store.Store) Source) (*Client, peer.ID, envelope.MailboxID, []envelope.ID) {
	t.Helper()
	srvHost, cliHost := newHost(t), newHost(t)
	st := newStore(t)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	var ids []envelope.ID
	for range n {
		e := tu.Envelope(t, k, 200)
		if _, err := st.Put(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID())
	}
	p := DefaultParams()
	p.MaxPageCount = pageSize
	var s Source = st
	if src != nil {
		s = src(st)
	}
	svc, err := NewService(srvHost, s, WithParams(p), WithPolicy(onlyMailbox(m)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	if !streaming {
		srvHost.RemoveStreamHandler(StreamProtocolID)
	}
	if err := cliHost.Connect(context.Background(), peer.AddrInfo{ID: srvHost.ID(), Addrs: srvHost.Addrs()}); err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(cliHost, p, false)
	if err != nil {
		t.Fatal(err)
	}
	return c, srvHost.ID(), m, ids
}

// A callback error stops the catch-up at the last page it accepted (the
// page already asked for ahead is dropped), and resuming from the cursor
// returned delivers the rest, in order, once.
func TestCatchUpStopsWhereCallbackFailed(t *testing.T) {
	protocols(t, testCatchUpStopsWhereCallbackFailed)
}

func testCatchUpStopsWhereCallbackFailed(t *testing.T, streaming bool) {
	c, srv, m, want := catchUpSetup(t, streaming, 300, 50, nil)
	ctx := context.Background()
	stop := errors.New("enough")
	var got []envelope.ID
	pages := 0
	cur, n, err := c.CatchUp(ctx, srv, m, nil, func(pg store.Page) error {
		if pages++; pages == 3 {
			return stop
		}
		for _, e := range pg.Envelopes {
			got = append(got, e.ID())
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 100 || len(got) != 100 {
		t.Fatalf("stopped with %v after %d envelopes (%d kept), want the callback's error after 100", err, n, len(got))
	}
	// The page fetched or read ahead was abandoned, and its goroutine is
	// gone.
	buf := make([]byte, 1<<20)
	if stacks := string(buf[:runtime.Stack(buf, true)]); strings.Contains(stacks, "fetchAsync") || strings.Contains(stacks, "readPages") {
		t.Fatalf("a page fetch outlived CatchUp:\n%s", stacks)
	}
	_, n, err = c.CatchUp(ctx, srv, m, cur, func(pg store.Page) error {
		for _, e := range pg.Envelopes {
			got = append(got, e.ID())
		}
		return nil
	})
	if err != nil || n != 200 {
		t.Fatalf("resumed: %d envelopes, %v", n, err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("envelope %d out of order or repeated", i)
		}
	}
}

// A host failing on a later page: the error is the host's, and the cursor
// is the last page delivered, so nothing is skipped on retry.
func TestCatchUpReportsLaterPageFailure(t *testing.T) {
	protocols(t, testCatchUpReportsLaterPageFailure)
}

func testCatchUpReportsLaterPageFailure(t *testing.T, streaming bool) {
	var fs *failingSource
	c, srv, m, want := catchUpSetup(t, streaming, 250, 50, func(st *store.Store) Source {
		fs = &failingSource{st: st, failAt: 3}
		return fs
	})
	var got []envelope.ID
	cur, n, err := c.CatchUp(context.Background(), srv, m, nil, func(pg store.Page) error {
		for _, e := range pg.Envelopes {
			got = append(got, e.ID())
		}
		return nil
	})
	if !errors.Is(err, status.ErrUnavailable) || n != 100 {
		t.Fatalf("got %v after %d envelopes, want unavailable after 100", err, n)
	}
	_, n, err = c.CatchUp(context.Background(), srv, m, cur, func(pg store.Page) error {
		for _, e := range pg.Envelopes {
			got = append(got, e.ID())
		}
		return nil
	})
	if err != nil || n != 150 || len(got) != len(want) {
		t.Fatalf("resumed: %d envelopes, %v", n, err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("envelope %d out of order or repeated", i)
		}
	}
}

// An empty mailbox and an exactly full last page both end cleanly.
func TestCatchUpEdges(t *testing.T) { protocols(t, testCatchUpEdges) }

func testCatchUpEdges(t *testing.T, streaming bool) {
	for _, tc := range []struct{ n, page, wantPages int }{{0, 10, 1}, {20, 10, 2}, {21, 10, 3}} {
		c, srv, m, _ := catchUpSetup(t, streaming, tc.n, tc.page, nil)
		pages := 0
		_, n, err := c.CatchUp(context.Background(), srv, m, nil, func(store.Page) error { pages++; return nil })
		if err != nil || n != tc.n {
			t.Fatalf("n=%d: %d envelopes, %v", tc.n, n, err)
		}
		// An empty mailbox yields one page with only a cursor.
		if pages != tc.wantPages {
			t.Fatalf("n=%d: %d pages, want %d", tc.n, pages, tc.wantPages)
		}
	}
}
