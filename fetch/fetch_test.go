package fetch

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/internal/wire"
	"github.com/meshnode/meshnode/store"
)

func newHost(t testing.TB) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func newStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open("", store.InMemoryParams())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type onlyMailbox envelope.MailboxID

func (o onlyMailbox) Serves(m envelope.MailboxID, _ peer.ID) bool { return m == envelope.MailboxID(o) }

func setup(t *testing.T, n, size int, p Params) (*Client, peer.ID, envelope.MailboxID, []envelope.ID) {
	t.Helper()
	srvHost, cliHost := newHost(t), newHost(t)
	st, m, ids, _ := storeEnvelopes(t, n, size)
	return serveTo(t, srvHost, cliHost, st, m, p, true), srvHost.ID(), m, ids
}

// storeEnvelopes stores n envelopes of payload bytes in one mailbox of a
// new store and returns it, the mailbox, the IDs in order and the size of
// each encoding.
func storeEnvelopes(t *testing.T, n, payload int) (*store.Store, envelope.MailboxID, []envelope.ID, int) {
	t.Helper()
	st := newStore(t)
	k := tu.WriteKey(t)
	var want []envelope.ID
	size := 0
	for range n {
		e := tu.Envelope(t, k, payload)
		if _, err := st.Put(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		want = append(want, e.ID())
		size = e.Size()
	}
	return st, tu.Mailbox(k), want, size
}

// serveTo serves m from st on srvHost with p and returns a client of p on
// cliHost (verifying signatures if verify), connected to it.
func serveTo(t *testing.T, srvHost, cliHost host.Host, st *store.Store, m envelope.MailboxID, p Params, verify bool) *Client {
	t.Helper()
	svc, err := NewService(srvHost, st, WithParams(p), WithPolicy(onlyMailbox(m)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	if err := cliHost.Connect(context.Background(), peer.AddrInfo{ID: srvHost.ID(), Addrs: srvHost.Addrs()}); err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(cliHost, p, verify)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPagesLoseAndRepeatNothing(t *testing.T) {
	p := DefaultParams()
	p.MaxPageBytes = 64 << 10 // forces byte-bounded pages of ~30 envelopes
	c, srv, m, want := setup(t, 300, 2000, p)
	var got []envelope.ID
	pages := 0
	_, n, err := c.CatchUp(context.Background(), srv, m, nil, func(pg store.Page) error {
		pages++
		for _, e := range pg.Envelopes {
			got = append(got, e.ID())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(want) || len(got) != len(want) {
		t.Fatalf("got %d envelopes, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("envelope %d out of order", i)
		}
	}
	if pages < 300*2000/(64<<10) {
		t.Fatalf("only %d pages: byte bound not applied", pages)
	}
}

func TestFetchErrors(t *testing.T) {
	c, srv, m, _ := setup(t, 3, 10, DefaultParams())
	ctx := context.Background()
	tests := []struct {
		name   string
		m      envelope.MailboxID
		cursor store.Cursor
		limit  int
		want   error
	}{
		{"not served", tu.Mailbox(tu.WriteKey(t)), nil, 10, status.ErrNotServed},
		{"unknown cursor", m, store.Cursor("not-a-cursor"), 10, store.ErrUnknownCursor},
		{"zero limit", m, nil, 0, ErrBadRequest},
		{"huge cursor", m, make(store.Cursor, MaxCursorSize+1), 10, ErrBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.Fetch(ctx, srv, tc.m, tc.cursor, tc.limit); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// A cursor of this host for another mailbox is unknown too.
	pg, err := c.Fetch(ctx, srv, m, nil, 2)
	if err != nil || len(pg.Envelopes) != 2 || !pg.More {
		t.Fatalf("first page: %v", err)
	}
}

// A server that sends more envelopes than asked for, or envelopes of another
// mailbox, is refused by the client.
func TestClientRejectsBadPages(t *testing.T) {
	srvHost, cliHost := newHost(t), newHost(t)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	var reply func(w *wire.Writer)
	srvHost.SetStreamHandler(ProtocolID, func(s network.Stream) {
		_, _ = wire.NewReader(s).ReadFrame(maxRequestSize)
		w := wire.NewWriter(s)
		reply(w)
		_ = w.Flush()
		_ = s.Close()
	})
	if err := cliHost.Connect(context.Background(), peer.AddrInfo{ID: srvHost.ID(), Addrs: srvHost.Addrs()}); err != nil {
		t.Fatal(err)
	}
	c, _ := NewClient(cliHost, DefaultParams(), true)
	tampered := append([]byte(nil), tu.Envelope(t, k, 10).Bytes()...)
	tampered[envelope.HeaderSize] ^= 1
	tests := []struct {
		name  string
		reply func(w *wire.Writer)
		want  error
	}{
		{"too many", func(w *wire.Writer) {
			_ = w.WriteFrame((&header{code: status.OK, count: 3}).marshal())
			for i := 0; i < 3; i++ {
				_ = w.WriteFrame(tu.Envelope(t, k, 10).Bytes())
			}
		}, ErrBadResponse},
		{"other mailbox", func(w *wire.Writer) {
			_ = w.WriteFrame((&header{code: status.OK, count: 1}).marshal())
			_ = w.WriteFrame(tu.Envelope(t, tu.WriteKey(t), 10).Bytes())
		}, ErrBadResponse},
		{"bad signature", func(w *wire.Writer) {
			_ = w.WriteFrame((&header{code: status.OK, count: 1}).marshal())
			_ = w.WriteFrame(tampered)
		}, envelope.ErrBadSignature},
		{"garbage header", func(w *wire.Writer) { _ = w.WriteFrame([]byte{0xee}) }, ErrBadResponse},
		{"truncated page", func(w *wire.Writer) {
			_ = w.WriteFrame((&header{code: status.OK, count: 2}).marshal())
			_ = w.WriteFrame(tu.Envelope(t, k, 10).Bytes())
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reply = tc.reply
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := c.Fetch(ctx, srvHost.ID(), m, nil, 2)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add((&request{limit: 10, cursor: []byte("abc")}).marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := parseRequest(b)
		if err != nil {
			return
		}
		if string(q.marshal()) != string(b) {
			t.Fatal("request does not re-encode to its input")
		}
	})
}

func FuzzParseHeader(f *testing.F) {
	f.Add((&header{code: status.OK, more: true, count: 7, next: []byte("cursor")}).marshal())
	f.Add((&header{code: status.UnknownCursor, msg: "unknown"}).marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHeader(b)
		if err != nil {
			return
		}
		if string(h.marshal()) != string(b) {
			t.Fatal("header does not re-encode to its input")
		}
	})
}
