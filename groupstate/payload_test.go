package groupstate

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/envelope"
)

func testProfileBody(t testing.TB) []byte {
	t.Helper()
	priv, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := MarshalProfile(NewProfile(priv.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPayloadRoundTrip(t *testing.T) {
	g, _ := testGroup(t)
	author := testAuthor(t)
	cases := map[string]*Payload{
		"text":        textPayload(g, "héllo"),
		"no parents":  {GroupID: g.ID, Seq: 9, Kind: KindDirect, Body: []byte{0, 1, 2}},
		"empty body":  {GroupID: g.ID, Seq: 1, Kind: KindKeyUpdate, Sent: -5},
		"state event": {GroupID: g.ID, Epoch: 3, StateHead: [32]byte{9}, Seq: 1 << 60, Kind: KindStateEvent, Body: []byte("ev")},
		"profile":     {GroupID: g.ID, Seq: 2, Kind: KindProfile, Nick: "bob", Body: testProfileBody(t)},
	}
	for name, p := range cases {
		t.Run(name, func(t *testing.T) {
			if err := SignPayload(p, author); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(p.AuthorKey(), author.Public().(ed25519.PublicKey)) {
				t.Fatal("SignPayload did not set the author")
			}
			b, err := MarshalPayload(p)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != p.encodedLen() {
				t.Fatalf("encoded %d bytes, encodedLen %d", len(b), p.encodedLen())
			}
			q, err := ParsePayload(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := q.VerifyAuthor(); err != nil {
				t.Fatal(err)
			}
			if len(p.Body) == 0 {
				p.Body = nil
			}
			if !reflect.DeepEqual(p, q) {
				t.Fatalf("round trip changed the payload\n%+v\n%+v", p, q)
			}
			// ParsePayload copies: changing the input changes nothing.
			for i := range b {
				b[i] = 0
			}
			if err := q.VerifyAuthor(); err != nil {
				t.Fatal("parsed payload aliases its input")
			}
		})
	}
}

func TestSignPayloadRejects(t *testing.T) {
	g, _ := testGroup(t)
	author := testAuthor(t)
	tests := []struct {
		name   string
		mutate func(p *Payload)
		want   error
	}{
		{"seq zero", func(p *Payload) { p.Seq = 0 }, ErrPayloadMalformed},
		{"unknown kind 0", func(p *Payload) { p.Kind = 0 }, ErrUnknownKind},
		{"unknown kind 12", func(p *Payload) { p.Kind = 12 }, ErrUnknownKind},
		{"too many parents", func(p *Payload) { p.Parents = make([]envelope.ID, 9); fillIDs(p.Parents) }, ErrPayloadMalformed},
		{"duplicate parents", func(p *Payload) { p.Parents = []envelope.ID{{1}, {2}, {1}} }, ErrPayloadMalformed},
		{"long nick", func(p *Payload) { p.Nick = strings.Repeat("n", 65) }, ErrInvalidName},
		{"nick control char", func(p *Payload) { p.Nick = "a\tb" }, ErrInvalidName},
		{"text not utf8", func(p *Payload) { p.Body = []byte{0xff} }, ErrPayloadMalformed},
		{"profile without nick", func(p *Payload) { p.Kind, p.Nick, p.Body = KindProfile, "", testProfileBody(t) }, ErrProfileMalformed},
		{"profile bad body", func(p *Payload) { p.Kind, p.Body = KindProfile, []byte{1, 0, 0x20, 0, 1, 7} }, ErrProfileMalformed},
		{"too long", func(p *Payload) { p.Body = make([]byte, MaxBodyLen(len(p.Nick), len(p.Parents))+1) }, ErrTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := textPayload(g, "hi")
			tt.mutate(p)
			if err := SignPayload(p, author); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	if err := SignPayload(textPayload(g, "hi"), author[:10]); !errors.Is(err, ErrNotSigned) {
		t.Fatalf("short key: %v", err)
	}
}

func fillIDs(ids []envelope.ID) {
	for i := range ids {
		ids[i][0] = byte(i + 1)
	}
}

func TestTooLongSaysTheLimit(t *testing.T) {
	g, _ := testGroup(t)
	p := textPayload(g, "")
	max := MaxBodyLen(len(p.Nick), len(p.Parents))
	p.Body = bytes.Repeat([]byte("a"), max)
	if err := SignPayload(p, testAuthor(t)); err != nil {
		t.Fatalf("body of exactly the maximum %d: %v", max, err)
	}
	if p.encodedLen() != MaxPayloadSize {
		t.Fatalf("maximum body gives %d bytes, want %d", p.encodedLen(), MaxPayloadSize)
	}
	p.Body = append(p.Body, 'a')
	err := SignPayload(p, testAuthor(t))
	if !errors.Is(err, ErrTooLong) || !strings.Contains(err.Error(), "at most "+strconv.Itoa(max)+" bytes") {
		t.Fatalf("error does not name the maximum text length %d: %v", max, err)
	}
}

func TestVerifyAuthorRejects(t *testing.T) {
	g, _ := testGroup(t)
	author := testAuthor(t)
	other := testAuthor(t)
	tests := []struct {
		name   string
		mutate func(p *Payload)
		want   error
	}{
		{"unsigned", func(p *Payload) { p.Signature = [64]byte{} }, ErrNotSigned},
		{"no author", func(p *Payload) { p.Author = [32]byte{} }, ErrNotSigned},
		{"other author", func(p *Payload) { copy(p.Author[:], other.Public().(ed25519.PublicKey)) }, ErrAuthorSignature},
		{"changed body", func(p *Payload) { p.Body[0] ^= 1 }, ErrAuthorSignature},
		{"changed seq", func(p *Payload) { p.Seq++ }, ErrAuthorSignature},
		{"changed group", func(p *Payload) { p.GroupID[0] ^= 1 }, ErrAuthorSignature},
		{"changed epoch", func(p *Payload) { p.Epoch++ }, ErrAuthorSignature},
		{"changed state head", func(p *Payload) { p.StateHead[5] ^= 1 }, ErrAuthorSignature},
		{"changed parents", func(p *Payload) { p.Parents = p.Parents[:1] }, ErrAuthorSignature},
		{"changed time", func(p *Payload) { p.Sent++ }, ErrAuthorSignature},
		{"changed kind", func(p *Payload) { p.Kind = KindDirect }, ErrAuthorSignature},
		{"changed nick", func(p *Payload) { p.Nick = "mallory" }, ErrAuthorSignature},
		{"changed signature", func(p *Payload) { p.Signature[10] ^= 1 }, ErrAuthorSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := signedText(t, g, author, "hello")
			tt.mutate(p)
			if err := p.VerifyAuthor(); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParsePayloadRejects(t *testing.T) {
	g, _ := testGroup(t)
	author := testAuthor(t)
	p := signedText(t, g, author, "hello")
	good, err := MarshalPayload(p)
	if err != nil {
		t.Fatal(err)
	}
	const parentsOff = 97
	kindOff := parentsOff + 1 + 32*len(p.Parents) + 8
	nickOff := kindOff + 1
	bodyOff := nickOff + 1 + len(p.Nick)
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrPayloadMalformed},
		{"bad version", mut(func(b []byte) []byte { b[0] = 2; return b }), ErrPayloadMalformed},
		{"trailing byte", mut(func(b []byte) []byte { return append(b, 0) }), ErrPayloadMalformed},
		{"truncated signature", good[:len(good)-1], ErrPayloadMalformed},
		{"seq zero", mut(func(b []byte) []byte { binary.BigEndian.PutUint64(b[89:], 0); return b }), ErrPayloadMalformed},
		{"nine parents", mut(func(b []byte) []byte { b[parentsOff] = 9; return b }), ErrPayloadMalformed},
		{"parent count too high", mut(func(b []byte) []byte { b[parentsOff] = 3; return b }), ErrPayloadMalformed},
		{"duplicate parents", mut(func(b []byte) []byte { copy(b[parentsOff+33:], b[parentsOff+1:parentsOff+33]); return b }), ErrPayloadMalformed},
		{"unknown kind", mut(func(b []byte) []byte { b[kindOff] = 99; return b }), ErrUnknownKind},
		{"kind zero", mut(func(b []byte) []byte { b[kindOff] = 0; return b }), ErrUnknownKind},
		{"nick too long", mut(func(b []byte) []byte { b[nickOff] = 200; return b }), ErrPayloadMalformed},
		{"nick control", mut(func(b []byte) []byte { b[nickOff+1] = 7; return b }), ErrInvalidName},
		{"body length too long", mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b[bodyOff:], 6); return b }), ErrPayloadMalformed},
		{"body length too short", mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b[bodyOff:], 4); return b }), ErrPayloadMalformed},
		{"body length huge", mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b[bodyOff:], 1<<31); return b }), ErrPayloadMalformed},
		{"text not utf8", mut(func(b []byte) []byte { b[bodyOff+4] = 0xff; return b }), ErrPayloadMalformed},
		{"unsigned", mut(func(b []byte) []byte { clear(b[len(b)-64:]); return b }), ErrNotSigned},
		{"too large", make([]byte, MaxPayloadSize+1), ErrPayloadMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParsePayload(tt.data); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	for n := range len(good) {
		if _, err := ParsePayload(good[:n]); err == nil {
			t.Fatalf("truncated to %d bytes accepted", n)
		}
	}
	if _, err := MarshalPayload(textPayload(g, "unsigned")); !errors.Is(err, ErrNotSigned) {
		t.Fatalf("MarshalPayload of an unsigned payload: %v", err)
	}
}

func TestProfile(t *testing.T) {
	for name, kem := range map[string]hpke.KEM{
		"x25519":         hpke.DHKEM(ecdh.X25519()),
		"mlkem768x25519": hpke.MLKEM768X25519(),
	} {
		t.Run(name, func(t *testing.T) {
			priv, err := kem.GenerateKey()
			if err != nil {
				t.Fatal(err)
			}
			b, err := MarshalProfile(NewProfile(priv.PublicKey()))
			if err != nil {
				t.Fatal(err)
			}
			p, err := ParseProfile(b)
			if err != nil {
				t.Fatal(err)
			}
			pk, err := p.HPKEPublicKey()
			if err != nil || !bytes.Equal(pk.Bytes(), priv.PublicKey().Bytes()) || p.KEM != kem.ID() {
				t.Fatalf("profile round trip: %v", err)
			}
		})
	}
	good := testProfileBody(t)
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := map[string][]byte{
		"empty":        nil,
		"bad version":  mut(func(b []byte) []byte { b[0] = 2; return b }),
		"unknown KEM":  mut(func(b []byte) []byte { b[1], b[2] = 0xee, 0xee; return b }),
		"wrong length": mut(func(b []byte) []byte { b[4]--; return b }),
		"trailing":     mut(func(b []byte) []byte { return append(b, 0) }),
		"truncated":    good[:len(good)-1],
		"empty key":    {1, 0, 0x20, 0, 0},
		"key for other KEM": mut(func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[1:], hpke.MLKEM768X25519().ID())
			return b
		}),
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseProfile(data); !errors.Is(err, ErrProfileMalformed) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func FuzzParsePayload(f *testing.F) {
	g, _ := testGroup(f)
	author := testAuthor(f)
	p := signedText(f, g, author, "hello")
	b, _ := MarshalPayload(p)
	f.Add(b)
	q := &Payload{GroupID: g.ID, Seq: 2, Kind: KindProfile, Nick: "bob", Body: testProfileBody(f)}
	_ = SignPayload(q, author)
	b, _ = MarshalPayload(q)
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePayload(data)
		if err != nil {
			return
		}
		out, err := MarshalPayload(p)
		if err != nil {
			t.Fatalf("parsed payload does not encode: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatal("non-canonical payload accepted")
		}
		_ = p.VerifyAuthor()
	})
}

func FuzzParseProfile(f *testing.F) {
	f.Add(testProfileBody(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProfile(data)
		if err != nil {
			return
		}
		out, err := MarshalProfile(p)
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("profile not canonical: %v", err)
		}
	})
}
