package fetch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
)

func TestParseStreamRequestRejects(t *testing.T) {
	good := (&streamRequest{limit: 10, pages: 3, cursor: []byte("abc")}).marshal()
	long := (&streamRequest{cursor: make([]byte, MaxCursorSize)}).marshal()
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, envelope.ErrMalformed},
		{"short", good[:10], envelope.ErrMalformed},
		{"version", append([]byte{2}, good[1:]...), envelope.ErrVersion},
		{"cursor cut short", good[:len(good)-1], envelope.ErrMalformed},
		{"trailing byte", append(append([]byte(nil), good...), 0), envelope.ErrMalformed},
		{"cursor over the bound", append(append(append([]byte(nil), long[:41]...), 0, MaxCursorSize+1), make([]byte, MaxCursorSize+1)...), envelope.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseStreamRequest(tc.b); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	q, err := parseStreamRequest(good)
	if err != nil || q.limit != 10 || q.pages != 3 || string(q.cursor) != "abc" {
		t.Fatalf("good request: %+v, %v", q, err)
	}
	if len(long) != maxStreamRequestSize {
		t.Fatalf("longest request is %d bytes, bound %d", len(long), maxStreamRequestSize)
	}
}

func TestParsePageHeaderRejects(t *testing.T) {
	good := (&pageHeader{code: status.OK, more: true, count: 2, size: 900, next: []byte("cur")}).marshal()
	at := func(i int, v byte) []byte {
		b := append([]byte(nil), good...)
		b[i] = v
		return b
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"unknown code", at(0, 0xee)},
		{"message longer than the header", at(2, 200)},
		{"more flag", at(3, 2)},
		{"cursor cut short", good[:len(good)-1]},
		{"trailing byte", append(append([]byte(nil), good...), 0)},
		{"size without envelopes", (&pageHeader{code: status.OK, size: 5}).marshal()},
		{"refusal carrying envelopes", (&pageHeader{code: status.NotServed, count: 1, size: 200}).marshal()},
		{"refusal claiming more", (&pageHeader{code: status.NotServed, more: true}).marshal()},
		{"refusal with a cursor", (&pageHeader{code: status.NotServed, next: []byte("c")}).marshal()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parsePageHeader(tc.b); !errors.Is(err, ErrBadResponse) {
				t.Fatalf("got %v, want ErrBadResponse", err)
			}
		})
	}
	longest := (&pageHeader{code: status.Unavailable, msg: string(make([]byte, status.MaxMessage))}).marshal()
	if len(longest)+MaxCursorSize > maxPageHeaderSize {
		t.Fatalf("header of %d bytes (and a cursor) over the bound %d", len(longest), maxPageHeaderSize)
	}
}

func TestSplitBody(t *testing.T) {
	frames := [][]byte{bytes.Repeat([]byte{1}, 100), bytes.Repeat([]byte{2}, 300)}
	var body []byte
	for _, f := range frames {
		body = binary.AppendUvarint(body, uint64(len(f)))
		body = append(body, f...)
	}
	if len(body) != bodySize(frames) {
		t.Fatalf("body of %d bytes, bodySize says %d", len(body), bodySize(frames))
	}
	var got [][]byte
	if err := splitBody(body, 2, 300, func(_ int, f []byte) error { got = append(got, f); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !bytes.Equal(got[0], frames[0]) || !bytes.Equal(got[1], frames[1]) {
		t.Fatal("frames differ")
	}
	tests := []struct {
		name  string
		body  []byte
		count int
		max   int
	}{
		{"fewer frames than the count", body, 3, 300},
		{"more bytes than the count", body, 1, 300},
		{"frame over the envelope bound", body, 2, 299},
		{"frame past the end", body[:len(body)-1], 2, 300},
		{"bad length prefix", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 1, 300},
		{"empty body, one frame", nil, 1, 300},
		{"length prefix not minimal", []byte{0x81, 0x00, 7}, 1, 300},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := splitBody(tc.body, tc.count, tc.max, func(int, []byte) error { return nil }); !errors.Is(err, ErrBadResponse) {
				t.Fatalf("got %v, want ErrBadResponse", err)
			}
		})
	}
}

func FuzzParseStreamRequest(f *testing.F) {
	f.Add((&streamRequest{limit: 10, pages: 2, cursor: []byte("abc")}).marshal())
	f.Add((&streamRequest{}).marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := parseStreamRequest(b)
		if err != nil {
			return
		}
		if len(b) > maxStreamRequestSize || string(q.marshal()) != string(b) {
			t.Fatal("request does not re-encode to its input")
		}
	})
}

func FuzzParsePageHeader(f *testing.F) {
	f.Add((&pageHeader{code: status.OK, more: true, count: 7, size: 7000, next: []byte("cursor")}).marshal())
	f.Add((&pageHeader{code: status.UnknownCursor, msg: "unknown"}).marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parsePageHeader(b)
		if err != nil {
			return
		}
		if len(b) > maxPageHeaderSize || string(h.marshal()) != string(b) {
			t.Fatal("page header does not re-encode to its input")
		}
	})
}

func FuzzSplitBody(f *testing.F) {
	f.Add([]byte{3, 1, 2, 3, 1, 9}, 2)
	f.Add([]byte{0}, 1)
	f.Fuzz(func(t *testing.T, body []byte, count int) {
		if count < 0 || count > 1000 {
			return
		}
		var frames [][]byte
		err := splitBody(body, count, 1<<10, func(_ int, fr []byte) error { frames = append(frames, fr); return nil })
		if err != nil {
			return
		}
		// What it accepted is exactly count frames that re-encode to body.
		if len(frames) != count || bodySize(frames) != len(body) {
			t.Fatalf("%d frames of %d bytes from a %d-byte body", len(frames), bodySize(frames), len(body))
		}
		var re []byte
		for _, fr := range frames {
			if len(fr) > 1<<10 {
				t.Fatal("frame over the bound")
			}
			re = binary.AppendUvarint(re, uint64(len(fr)))
			re = append(re, fr...)
		}
		if !bytes.Equal(re, body) {
			t.Fatal("frames do not re-encode to the body")
		}
	})
}
