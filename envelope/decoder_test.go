package envelope

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
)

// A Decoder gives the same envelope as Decode, whatever the order of
// write keys (the cached tag is for the last key only), and rejects what
// Decode rejects.
func TestDecoderMatchesDecode(t *testing.T) {
	a, b := newKey(t), newKey(t)
	run := []*Envelope{
		sealed(t, a, []byte("one")), sealed(t, a, []byte("two")),
		sealed(t, b, []byte("three")), sealed(t, a, []byte("four")), sealed(t, b, []byte("five")),
	}
	d := NewDecoder(0)
	for i, want := range run {
		for name, decode := range map[string]func([]byte) (*Envelope, error){"Decode": d.Decode, "DecodeInPlace": d.DecodeInPlace} {
			in := append([]byte(nil), want.Bytes()...)
			got, err := decode(in)
			if err != nil {
				t.Fatalf("%s of envelope %d: %v", name, i, err)
			}
			if got.ID() != want.ID() || got.Mailbox() != want.Mailbox() || !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Fatalf("%s of envelope %d: ID or mailbox differ from Seal's", name, i)
			}
			if got.Mailbox() != MailboxFor(got.WPub) {
				t.Fatalf("%s of envelope %d: mailbox is not the tag of its key", name, i)
			}
			if err := got.Verify(); err != nil {
				t.Fatalf("%s of envelope %d: %v", name, i, err)
			}
		}
	}

	e := run[0]
	flip := func(i int) []byte {
		b := append([]byte(nil), e.Bytes()...)
		b[i] ^= 1
		return b
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"truncated", e.Bytes()[:e.Size()-1], ErrMalformed},
		{"extended", append(append([]byte(nil), e.Bytes()...), 0), ErrMalformed},
		{"version", flip(0), ErrVersion},
		{"length field", flip(HeaderSize - 1), ErrMalformed},
	} {
		for name, decode := range map[string]func([]byte) (*Envelope, error){"Decode": d.Decode, "DecodeInPlace": d.DecodeInPlace} {
			if got, err := decode(tc.b); !errors.Is(err, tc.want) || got != nil {
				t.Errorf("%s of %s: %v, %v; want %v", name, tc.name, got, err, tc.want)
			}
		}
	}
	if _, err := NewDecoder(e.Size() - 1).DecodeInPlace(e.Bytes()); !errors.Is(err, ErrTooLarge) {
		t.Errorf("DecodeInPlace over the limit: %v, want ErrTooLarge", err)
	}
}

// DecodeInPlace keeps the caller's bytes; Decode copies them.
func TestDecodeInPlaceShares(t *testing.T) {
	e := sealed(t, newKey(t), []byte("ciphertext"))
	d := NewDecoder(0)
	in := append([]byte(nil), e.Bytes()...)
	shared, err := d.DecodeInPlace(in)
	if err != nil {
		t.Fatal(err)
	}
	copied, err := d.Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	in[HeaderSize] ^= 1
	if shared.Ciphertext[0] != in[HeaderSize] {
		t.Fatal("DecodeInPlace copied the encoding")
	}
	if copied.Ciphertext[0] == in[HeaderSize] {
		t.Fatal("Decode did not copy the encoding")
	}
	// Appending to what DecodeInPlace returned cannot write into the
	// caller's buffer past the encoding.
	big := append(append([]byte(nil), e.Bytes()...), 0xAA)
	env, err := d.DecodeInPlace(big[:e.Size()])
	if err != nil {
		t.Fatal(err)
	}
	_ = append(env.Bytes(), 0x55)
	if big[e.Size()] != 0xAA {
		t.Fatal("the envelope's bytes can grow into the caller's buffer")
	}
}

// FuzzDecoder: a Decoder accepts exactly what Decode accepts, with the
// same ID and mailbox, after any earlier envelope.
func FuzzDecoder(f *testing.F) {
	k := newKey(f)
	first := sealed(f, k, []byte("first"))
	f.Add(sealed(f, k, []byte("hello")).Bytes())
	f.Add(sealed(f, newKey(f), nil).Bytes())
	f.Add([]byte{Version})
	f.Fuzz(func(t *testing.T, b []byte) {
		d := NewDecoder(0)
		if _, err := d.Decode(first.Bytes()); err != nil {
			t.Fatal(err)
		}
		want, werr := Decode(b, 0)
		got, gerr := d.DecodeInPlace(append([]byte(nil), b...))
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("Decode: %v; Decoder: %v", werr, gerr)
		}
		if werr != nil {
			if got != nil {
				t.Fatal("error with a non-nil envelope")
			}
			return
		}
		if got.ID() != want.ID() || got.Mailbox() != want.Mailbox() || got.Mailbox() != MailboxFor(ed25519.PublicKey(got.WPub)) {
			t.Fatal("Decoder and Decode differ")
		}
	})
}

func BenchmarkDecoder(b *testing.B) {
	e := sealed(b, newKey(b), make([]byte, 1024-Overhead))
	raw := e.Bytes()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	b.Run("Decode", func(b *testing.B) {
		for b.Loop() {
			if _, err := Decode(raw, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Decoder.DecodeInPlace", func(b *testing.B) {
		d := NewDecoder(0)
		for b.Loop() {
			if _, err := d.DecodeInPlace(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
