package reconcile

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/meshnode/meshnode/envelope"
)

// raw concatenates message pieces.
func raw(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestDecodeRejects(t *testing.T) {
	p := DefaultParams()
	v := []byte{ProtocolVersion}
	inf := []byte{0xff}
	b1 := []byte{1, 0x10} // bound 0x10
	b2 := []byte{1, 0x20} // bound 0x20
	id := func(first byte) []byte { x := make([]byte, IDSize); x[0] = first; return x }
	fp := make([]byte, FingerprintSize)
	cases := []struct {
		name string
		p    func(*Params)
		msg  []byte
		want error
	}{
		{"empty", nil, nil, ErrMalformed},
		{"version-0", nil, []byte{0}, ErrVersion},
		{"version-2", nil, []byte{2, 0xff, 0}, ErrVersion},
		{"too-large", nil, make([]byte, p.MaxMessageSize+1), ErrTooLarge},
		{"bound-length-33", nil, raw(v, []byte{33}, make([]byte, 33), []byte{0}), ErrMalformed},
		{"bound-truncated", nil, raw(v, []byte{3, 0x10}), ErrMalformed},
		{"bound-trailing-zero", nil, raw(v, []byte{2, 0x10, 0}, []byte{0}), ErrMalformed},
		{"bound-lowest-first", nil, raw(v, []byte{0}, []byte{0}), ErrProtocol},
		{"bounds-descending", nil, raw(v, b2, []byte{0}, b1, []byte{0}), ErrProtocol},
		{"bounds-equal", nil, raw(v, b1, []byte{0}, b1, []byte{0}), ErrProtocol},
		{"after-infinity", nil, raw(v, inf, []byte{0}, inf, []byte{0}), ErrProtocol},
		{"mode-missing", nil, raw(v, inf), ErrMalformed},
		{"mode-unknown", nil, raw(v, inf, []byte{4}), ErrMalformed},
		{"fingerprint-truncated", nil, raw(v, inf, []byte{1}, fp[:15]), ErrMalformed},
		{"idlist-count-missing", nil, raw(v, inf, []byte{2}), ErrMalformed},
		{"idlist-count-nonminimal", nil, raw(v, inf, []byte{2, 0x81, 0x00}, id(1)), ErrMalformed},
		{"idlist-count-over-limit", nil, raw(v, inf, []byte{2, 0x81, 0x80, 0x01}), ErrTooLarge},
		{"idlist-count-over-bytes", nil, raw(v, inf, []byte{2, 2}, id(1)), ErrMalformed},
		{"idlist-not-ascending", nil, raw(v, inf, []byte{2, 2}, id(2), id(1)), ErrProtocol},
		{"idlist-duplicate", nil, raw(v, inf, []byte{2, 2}, id(1), id(1)), ErrProtocol},
		{"idlist-id-above-range", nil, raw(v, b1, []byte{2, 1}, id(0x10)), ErrProtocol},
		{"idlist-id-below-range", nil, raw(v, b1, []byte{0}, inf, []byte{2, 1}, id(0x0f)), ErrProtocol},
		{"iddiff-bitmap-truncated", nil, raw(v, inf, []byte{3, 9, 0}), ErrMalformed},
		{"iddiff-padding", nil, raw(v, inf, []byte{3, 3, 0x08, 0}), ErrMalformed},
		{"iddiff-bits-over-limit", nil, raw(v, inf, []byte{3, 0x81, 0x80, 0x01}), ErrTooLarge},
		{"iddiff-ids-truncated", nil, raw(v, inf, []byte{3, 0, 1}, id(1)[:31]), ErrMalformed},
		{"iddiff-ids-not-ascending", nil, raw(v, inf, []byte{3, 0, 2}, id(5), id(4)), ErrProtocol},
		{"too-many-ranges", func(p *Params) { p.MaxRanges = 2 }, raw(v, b1, []byte{0}, b2, []byte{0}, inf, []byte{0}), ErrTooLarge},
		{"too-many-ids-in-total", func(p *Params) { p.MaxIDs = 2 },
			raw(v, b1, []byte{2, 1}, id(1), b2, []byte{2, 1}, id(0x11), inf, []byte{3, 0, 1}, id(0x21)), ErrTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := p
			if c.p != nil {
				c.p(&q)
			}
			if _, err := decodeMessage(c.msg, q); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			// A responder rejects it the same way and is then finished.
			res, err := NewResponder(NewMemSet(), DefaultParams())
			if err != nil {
				t.Fatal(err)
			}
			if c.p == nil {
				if _, _, _, _, err := res.Reconcile(c.msg); !errors.Is(err, c.want) {
					t.Fatalf("responder: got %v, want %v", err, c.want)
				}
			}
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	p := DefaultParams()
	var id envelope.ID
	id[0] = 0x30
	rs := []wireRange{
		{hi: BoundOf(envelope.ID{0x10}), mode: modeSkip},
		{hi: BoundOf(envelope.ID{0x20}), mode: modeFingerprint, fp: Fingerprint{1, 2, 3}},
		{hi: BoundOf(envelope.ID{0x40}), mode: modeIDList, ids: []envelope.ID{id}},
		{hi: Infinity(), mode: modeIDDiff, nbit: 11, bits: []byte{0xff, 0x07}, ids: []envelope.ID{{0x50}, {0x60}}},
	}
	msg := encodeMessage(rs)
	got, err := decodeMessage(msg, p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(encodeMessage(got), msg) || len(got) != len(rs) {
		t.Fatal("round trip differs")
	}
	if rs, err := decodeMessage([]byte{ProtocolVersion}, p); err != nil || len(rs) != 0 {
		t.Fatalf("empty message: %v, %v", rs, err)
	}
}

// seedMessages returns the messages of real sessions, for fuzz seeds.
func seedMessages(tb testing.TB) [][]byte {
	r := rand.New(rand.NewPCG(12, 12))
	common := randomIDs(r, 2000)
	a := NewMemSet(append(randomIDs(r, 30), common...)...)
	b := NewMemSet(append(randomIDs(r, 30), common...)...)
	ini, _ := NewInitiator(a, DefaultParams())
	res, _ := NewResponder(b, DefaultParams())
	msg, err := ini.Initiate()
	if err != nil {
		tb.Fatal(err)
	}
	var out [][]byte
	for msg != nil {
		out = append(out, msg)
		reply, _, _, _, err := res.Reconcile(msg)
		if err != nil {
			tb.Fatal(err)
		}
		if reply == nil {
			break
		}
		out = append(out, reply)
		if msg, _, _, _, err = ini.Reconcile(reply); err != nil {
			tb.Fatal(err)
		}
	}
	return out
}

// FuzzDecode: the decoder never panics, accepts only canonical encodings
// (decode then encode gives the same bytes), and a responder fed anything
// either fails cleanly or answers within the limits.
func FuzzDecode(f *testing.F) {
	for _, m := range seedMessages(f) {
		f.Add(m)
	}
	f.Add([]byte{ProtocolVersion})
	f.Add([]byte{ProtocolVersion, 0xff, 2, 0})
	r := rand.New(rand.NewPCG(13, 13))
	set := NewMemSet(randomIDs(r, 500)...)
	p := DefaultParams()
	f.Fuzz(func(t *testing.T, msg []byte) {
		rs, err := decodeMessage(msg, p)
		if err == nil && !bytes.Equal(encodeMessage(rs), msg) {
			t.Fatalf("accepted a non-canonical encoding %x", msg)
		}
		res, _ := NewResponder(set, p)
		reply, _, _, _, rerr := res.Reconcile(msg)
		if (err == nil) != (rerr == nil) && !errors.Is(rerr, ErrProtocol) {
			t.Fatalf("decode %v but responder %v", err, rerr)
		}
		if rerr == nil && reply != nil {
			if len(reply) > p.MaxMessageSize {
				t.Fatalf("reply of %d bytes", len(reply))
			}
			if _, err := decodeMessage(reply, p); err != nil {
				t.Fatalf("own reply does not decode: %v", err)
			}
		}
	})
}
