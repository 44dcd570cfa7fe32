package fetch

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/internal/wire"
	"github.com/meshnode/meshnode/store"
)

// The room before a body fits the largest header of either protocol, and
// framed yields the header frame followed by the body, as the client
// reads them.
func TestFramedHeaders(t *testing.T) {
	long := strings.Repeat("x", status.MaxMessage+100) // truncated to MaxMessage
	cursor := bytes.Repeat([]byte{7}, MaxCursorSize)
	frames := [][]byte{bytes.Repeat([]byte{1}, 300), bytes.Repeat([]byte{2}, 200)}
	var bodyBytes []byte
	for _, f := range frames {
		bodyBytes = append(bodyBytes, frameOf(f)...)
	}
	for _, tc := range []struct {
		name   string
		header []byte
		parse  func([]byte) error
	}{
		{"1.0.0 header", (&header{code: status.Unavailable, msg: long, next: cursor}).marshal(), func(b []byte) error { _, err := parseHeader(b); return err }},
		{"1.1.0 page header", (&pageHeader{code: status.OK, msg: long, more: true, count: 2, size: uint32(len(bodyBytes)), next: cursor}).marshal(), func(b []byte) error { _, err := parsePageHeader(b); return err }},
		{"empty header", nil, func([]byte) error { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := body{buf: append(make([]byte, headerRoom), bodyBytes...), count: 2}
			out, err := b.framed(tc.header)
			if err != nil {
				t.Fatal(err)
			}
			r := wire.NewReader(bytes.NewReader(out))
			h, err := r.ReadFrame(headerRoom)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(h, tc.header) {
				t.Fatalf("header frame of %d bytes, want %d", len(h), len(tc.header))
			}
			if err := tc.parse(h); err != nil {
				t.Fatal(err)
			}
			for i, want := range frames {
				got, err := r.ReadFrame(1 << 10)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("frame %d: %v", i, err)
				}
			}
			if _, err := r.ReadFrame(1 << 10); err == nil {
				t.Fatal("bytes after the body")
			}
		})
	}
	b := body{buf: make([]byte, headerRoom)}
	if _, err := b.framed(make([]byte, headerRoom)); err == nil {
		t.Fatal("a header larger than its room was framed")
	}
}

func frameOf(b []byte) []byte {
	var buf bytes.Buffer
	w := wire.NewWriter(&buf)
	if err := w.WriteFrame(b); err != nil {
		panic(err)
	}
	if err := w.Flush(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// loadBody reuses its buffer from the start: a smaller page after a
// larger one leaves nothing of the larger behind, and every page is the
// store's envelopes, each framed, within the page bounds.
func TestLoadBodyReusesBuffer(t *testing.T) {
	st := newStore(t)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	var encs [][]byte
	for i := range 25 {
		e := tu.Envelope(t, k, 100+40*i)
		if _, err := st.Put(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		encs = append(encs, e.Bytes())
	}
	p := DefaultParams()
	buf := newPageBuffer(p, 10)
	var cur store.Cursor
	got := 0
	for _, limit := range []int{10, 3, 10, 1, 10} {
		b, err := loadBody(st, m, cur, limit, p.MaxPageBytes, buf)
		if err != nil {
			t.Fatal(err)
		}
		want := encs[got:min(got+limit, len(encs))]
		if b.count != len(want) || b.more != (got+len(want) < len(encs)) {
			t.Fatalf("page of %d (more %v) after %d, want %d", b.count, b.more, got, len(want))
		}
		var wantBody []byte
		for _, e := range want {
			wantBody = append(wantBody, frameOf(e)...)
		}
		if !bytes.Equal(b.buf[headerRoom:], wantBody) || b.size() != len(wantBody) {
			t.Fatalf("page after %d: body of %d bytes differs from the %d expected", got, b.size(), len(wantBody))
		}
		got += b.count
		cur, buf = b.next, b.buf
		if !b.more {
			break
		}
	}
	if got != len(encs) {
		t.Fatalf("loaded %d of %d", got, len(encs))
	}
	if _, err := loadBody(st, m, store.Cursor("bogus"), 10, p.MaxPageBytes, buf); !errors.Is(err, store.ErrUnknownCursor) {
		t.Fatalf("bogus cursor: %v", err)
	}
	var empty envelope.MailboxID
	if b, err := loadBody(st, empty, nil, 10, p.MaxPageBytes, buf); err != nil || b.count != 0 || b.size() != 0 {
		t.Fatalf("empty mailbox: %d envelopes, %v", b.count, err)
	}
}
