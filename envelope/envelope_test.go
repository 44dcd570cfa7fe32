package envelope

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
)

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sealed(t testing.TB, k ed25519.PrivateKey, ct []byte) *Envelope {
	t.Helper()
	nonce := make([]byte, NonceSize)
	rand.Read(nonce)
	e, err := Seal(k, nonce, ct, 0)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestRoundTrip(t *testing.T) {
	k := newKey(t)
	for _, n := range []int{0, 1, 100, 1024, DefaultMaxSize - Overhead} {
		ct := bytes.Repeat([]byte{0xab}, n)
		e := sealed(t, k, ct)
		got, err := Open(e.Bytes(), 0, nil)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if got.ID() != e.ID() || got.Mailbox() != e.Mailbox() || !bytes.Equal(got.Ciphertext, ct) {
			t.Fatalf("n=%d: round trip changed the envelope", n)
		}
		if got.Mailbox() != MailboxFor(k.Public().(ed25519.PublicKey)) {
			t.Fatal("mailbox is not the hash of WPub")
		}
		if !bytes.Equal(got.AAD(), HeaderAAD(got.WPub, got.Nonce, len(ct))) {
			t.Fatal("HeaderAAD disagrees with AAD")
		}
	}
}

func TestRejects(t *testing.T) {
	k := newKey(t)
	e := sealed(t, k, []byte("ciphertext"))
	other := MailboxFor(newKey(t).Public().(ed25519.PublicKey))
	flip := func(i int) []byte {
		b := append([]byte(nil), e.Bytes()...)
		b[i] ^= 1
		return b
	}
	// Re-sign a body with a different key but keep the original WPub: a forgery.
	forged := append([]byte(nil), e.Bytes()[:e.Size()-SignatureSize]...)
	forged = append(forged, ed25519.Sign(newKey(t), signedMessage(forged))...)

	tests := []struct {
		name string
		b    []byte
		max  int
		mbx  *MailboxID
		want error
	}{
		{"empty", nil, 0, nil, ErrMalformed},
		{"truncated", e.Bytes()[:e.Size()-1], 0, nil, ErrMalformed},
		{"extended", append(append([]byte(nil), e.Bytes()...), 0), 0, nil, ErrMalformed},
		{"version", flip(0), 0, nil, ErrVersion},
		{"length field", flip(HeaderSize - 1), 0, nil, ErrMalformed},
		{"ciphertext bit", flip(HeaderSize), 0, nil, ErrBadSignature},
		{"signature bit", flip(e.Size() - 1), 0, nil, ErrBadSignature},
		{"nonce bit", flip(1 + PublicKeySize), 0, nil, ErrBadSignature},
		{"forged", forged, 0, nil, ErrBadSignature},
		{"wrong mailbox", e.Bytes(), 0, &other, ErrWrongMailbox},
		{"over limit", e.Bytes(), e.Size() - 1, nil, ErrTooLarge},
		{"absurd limit", e.Bytes(), AbsoluteMaxSize + 1, nil, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(tc.b, tc.max, tc.mbx)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSealLimits(t *testing.T) {
	k := newKey(t)
	if _, err := Seal(k, make([]byte, NonceSize), make([]byte, DefaultMaxSize), 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize seal: %v", err)
	}
	if _, err := Seal(k, make([]byte, 3), nil, 0); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short nonce: %v", err)
	}
	if _, err := Seal(k[:10], make([]byte, NonceSize), nil, 0); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short key: %v", err)
	}
}

func TestParseHex(t *testing.T) {
	e := sealed(t, newKey(t), nil)
	m, err := ParseMailboxID(e.Mailbox().String())
	if err != nil || m != e.Mailbox() {
		t.Fatalf("mailbox hex round trip: %v", err)
	}
	id, err := ParseID(e.ID().String())
	if err != nil || id != e.ID() {
		t.Fatalf("id hex round trip: %v", err)
	}
	for _, s := range []string{"", "zz", "abcd"} {
		if _, err := ParseMailboxID(s); !errors.Is(err, ErrMalformed) {
			t.Fatalf("ParseMailboxID(%q) = %v", s, err)
		}
		if _, err := ParseID(s); !errors.Is(err, ErrMalformed) {
			t.Fatalf("ParseID(%q) = %v", s, err)
		}
	}
}

func FuzzOpen(f *testing.F) {
	k := newKey(f)
	f.Add(sealed(f, k, []byte("hello")).Bytes())
	f.Add(sealed(f, k, nil).Bytes())
	f.Add([]byte{Version})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Open(b, 0, nil)
		if err != nil {
			if e != nil {
				t.Fatal("error with a non-nil envelope")
			}
			return
		}
		if !bytes.Equal(e.Bytes(), b) || e.Size() != Overhead+len(e.Ciphertext) {
			t.Fatal("accepted envelope does not re-encode to its input")
		}
	})
}

func BenchmarkOpen(b *testing.B) {
	e := sealed(b, newKey(b), make([]byte, 1024-Overhead))
	raw := e.Bytes()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Open(raw, 0, nil); err != nil {
			b.Fatal(err)
		}
	}
}
