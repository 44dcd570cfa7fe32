package keymgmt

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
)

var suites = []Suite{SuiteX25519, SuitePQ}

func newID(tb testing.TB, s Suite) *Identity {
	tb.Helper()
	id, err := NewIdentity(s)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func TestNewIdentityUnknownSuite(t *testing.T) {
	for _, s := range []Suite{0, 3, 255} {
		if _, err := NewIdentity(s); !errors.Is(err, ErrUnknownSuite) {
			t.Errorf("suite %d: got %v, want ErrUnknownSuite", s, err)
		}
	}
}

func TestPublicIdentityRoundTrip(t *testing.T) {
	for _, s := range suites {
		t.Run(s.String(), func(t *testing.T) {
			id := newID(t, s)
			pub := id.Public()
			if len(pub.HPKEPub) != s.PublicKeySize() || pub.Suite != s {
				t.Fatalf("public key %d bytes, suite %v", len(pub.HPKEPub), pub.Suite)
			}
			b := pub.Marshal()
			if len(b) != publicIdentityHeader+s.PublicKeySize() {
				t.Fatalf("encoding is %d bytes", len(b))
			}
			got, err := ParsePublicIdentity(b)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(pub) || !bytes.Equal(got.Marshal(), b) {
				t.Fatal("round trip changed the identity")
			}
			if err := got.Validate(); err != nil {
				t.Fatal(err)
			}
			// Public returns a copy: mutating it leaves the identity intact.
			pub.SignPub[0] ^= 1
			if !id.Public().SignPub.Equal(got.SignPub) {
				t.Fatal("Public aliases the identity's key")
			}
		})
	}
}

func TestParsePublicIdentityRejects(t *testing.T) {
	x := newID(t, SuiteX25519).Public().Marshal()
	pq := newID(t, SuitePQ).Public().Marshal()
	with := func(b []byte, f func([]byte)) []byte { b = clone(b); f(b); return b }
	tests := []struct {
		name string
		b    []byte
		also error
	}{
		{"empty", nil, nil},
		{"header only", x[:publicIdentityHeader], nil},
		{"x25519 truncated", x[:len(x)-1], nil},
		{"x25519 trailing", append(clone(x), 0), nil},
		{"pq truncated", pq[:len(pq)-1], nil},
		{"pq trailing", append(clone(pq), 0), nil},
		{"version 0", with(x, func(b []byte) { b[0] = 0 }), nil},
		{"version 2", with(x, func(b []byte) { b[0] = 2 }), nil},
		{"suite 0", with(x, func(b []byte) { b[1] = 0 }), ErrUnknownSuite},
		{"suite 9", with(x, func(b []byte) { b[1] = 9 }), ErrUnknownSuite},
		{"x25519 body labelled pq", with(x, func(b []byte) { b[1] = byte(SuitePQ) }), nil},
		{"pq body labelled x25519", with(pq, func(b []byte) { b[1] = byte(SuiteX25519) }), nil},
		{"x25519 low-order point", with(x, func(b []byte) { clear(b[publicIdentityHeader:]) }), ErrInvalidKey},
		{"pq low-order x25519 half", with(pq, func(b []byte) { clear(b[len(b)-32:]) }), ErrInvalidKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePublicIdentity(tc.b)
			if !errors.Is(err, ErrMalformed) || p != nil {
				t.Fatalf("got %v, %v; want ErrMalformed", p, err)
			}
			if tc.also != nil && !errors.Is(err, tc.also) {
				t.Fatalf("got %v, want also %v", err, tc.also)
			}
		})
	}
}

func TestPublicIdentityValidateRejects(t *testing.T) {
	good := newID(t, SuiteX25519).Public()
	tests := []struct {
		name string
		p    PublicIdentity
		want error
	}{
		{"short signing key", PublicIdentity{SignPub: good.SignPub[:31], Suite: good.Suite, HPKEPub: good.HPKEPub}, ErrInvalidKey},
		{"short hpke key", PublicIdentity{SignPub: good.SignPub, Suite: good.Suite, HPKEPub: good.HPKEPub[:31]}, ErrInvalidKey},
		{"wrong suite", PublicIdentity{SignPub: good.SignPub, Suite: SuitePQ, HPKEPub: good.HPKEPub}, ErrInvalidKey},
		{"unknown suite", PublicIdentity{SignPub: good.SignPub, Suite: 7, HPKEPub: good.HPKEPub}, ErrUnknownSuite},
		{"low-order point", PublicIdentity{SignPub: good.SignPub, Suite: good.Suite, HPKEPub: make([]byte, 32)}, ErrInvalidKey},
	}
	for _, tc := range tests {
		if err := tc.p.Validate(); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestPrivateIdentityRoundTrip(t *testing.T) {
	for _, s := range suites {
		t.Run(s.String(), func(t *testing.T) {
			id := newID(t, s)
			b, err := id.MarshalPrivate()
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != privateIdentitySize {
				t.Fatalf("private encoding is %d bytes", len(b))
			}
			got, err := ParsePrivateIdentity(b)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Public().Equal(id.Public()) || got.Suite() != s {
				t.Fatal("private round trip changed the public identity")
			}
			// The reloaded identity can open what was sealed to the original
			// and its signatures verify under the original key.
			sealed, err := SealTo(id.Public(), []byte("info"), []byte("hi"))
			if err != nil {
				t.Fatal(err)
			}
			if pt, err := got.Open([]byte("info"), sealed); err != nil || string(pt) != "hi" {
				t.Fatalf("reloaded identity cannot open: %q %v", pt, err)
			}
			sig := got.Sign("test/ctx", []byte("m"))
			if err := VerifySignature(id.Public().SignPub, "test/ctx", []byte("m"), sig); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestParsePrivateIdentityRejects(t *testing.T) {
	b, err := newID(t, SuiteX25519).MarshalPrivate()
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func([]byte)) []byte { c := clone(b); f(c); return c }
	tests := map[string][]byte{
		"empty":     nil,
		"truncated": b[:len(b)-1],
		"trailing":  append(clone(b), 0),
		"version":   with(func(c []byte) { c[0] = 2 }),
		"suite":     with(func(c []byte) { c[1] = 0 }),
	}
	for name, in := range tests {
		if id, err := ParsePrivateIdentity(in); !errors.Is(err, ErrMalformed) || id != nil {
			t.Errorf("%s: got %v, %v; want ErrMalformed", name, id, err)
		}
	}
}

func TestSignVerify(t *testing.T) {
	id := newID(t, SuiteX25519)
	other := newID(t, SuiteX25519)
	msg := []byte("message")
	const ctx = "meshnode/test/context"
	sig := id.Sign(ctx, msg)
	pub := id.Public().SignPub
	if err := VerifySignature(pub, ctx, msg, sig); err != nil {
		t.Fatal(err)
	}
	tampered := clone(sig)
	tampered[10] ^= 1
	tests := []struct {
		name    string
		pub     ed25519.PublicKey
		ctx     string
		msg     []byte
		sig     []byte
		wantErr error
	}{
		{"other key", other.Public().SignPub, ctx, msg, sig, ErrBadSignature},
		{"other context", pub, ctx + "x", msg, sig, ErrBadSignature},
		{"empty context", pub, "", msg, sig, ErrBadSignature},
		// The length prefix stops bytes moving between context and message.
		{"shifted boundary", pub, ctx[:len(ctx)-1], append([]byte{ctx[len(ctx)-1]}, msg...), sig, ErrBadSignature},
		{"other message", pub, ctx, []byte("messagf"), sig, ErrBadSignature},
		{"tampered signature", pub, ctx, msg, tampered, ErrBadSignature},
		{"short signature", pub, ctx, msg, sig[:63], ErrBadSignature},
		{"nil signature", pub, ctx, msg, nil, ErrBadSignature},
		{"short key", pub[:31], ctx, msg, sig, ErrInvalidKey},
	}
	for _, tc := range tests {
		if err := VerifySignature(tc.pub, tc.ctx, tc.msg, tc.sig); !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.wantErr)
		}
	}
}

func TestSignPanicsOnBadContext(t *testing.T) {
	id := newID(t, SuiteX25519)
	for _, ctx := range []string{"", string(make([]byte, 256))} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Sign with a %d-byte context did not panic", len(ctx))
				}
			}()
			id.Sign(ctx, nil)
		}()
	}
}

func FuzzParsePublicIdentity(f *testing.F) {
	for _, s := range suites {
		f.Add(newID(f, s).Public().Marshal())
	}
	f.Add([]byte{identityVersion, byte(SuiteX25519)})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePublicIdentity(b)
		if err != nil {
			if p != nil || !errors.Is(err, ErrMalformed) {
				t.Fatalf("rejection %v with value %v", err, p)
			}
			return
		}
		if !bytes.Equal(p.Marshal(), b) {
			t.Fatal("accepted identity does not re-encode to its input")
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("accepted identity does not validate: %v", err)
		}
		if _, err := SealTo(p, nil, []byte("x")); err != nil {
			t.Fatalf("cannot seal to an accepted identity: %v", err)
		}
	})
}

func FuzzParsePrivateIdentity(f *testing.F) {
	for _, s := range suites {
		b, err := newID(f, s).MarshalPrivate()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := ParsePrivateIdentity(b)
		if err != nil {
			if id != nil || !errors.Is(err, ErrMalformed) {
				t.Fatalf("rejection %v with value %v", err, id)
			}
			return
		}
		// X25519 scalars are clamped on the way in, so compare the
		// second encoding with the third rather than with the input.
		b2, err := id.MarshalPrivate()
		if err != nil {
			t.Fatal(err)
		}
		id2, err := ParsePrivateIdentity(b2)
		if err != nil {
			t.Fatal(err)
		}
		b3, err := id2.MarshalPrivate()
		if err != nil || !bytes.Equal(b2, b3) || !id2.Public().Equal(id.Public()) {
			t.Fatalf("private encoding is not stable: %v", err)
		}
	})
}

func TestSuiteKEMIDs(t *testing.T) {
	for _, s := range []Suite{SuiteX25519, SuitePQ} {
		got, err := SuiteForKEM(s.KEMID())
		if err != nil || got != s {
			t.Fatalf("suite %v: KEM %#04x maps back to %v, %v", s, s.KEMID(), got, err)
		}
	}
	if _, err := SuiteForKEM(0x9999); !errors.Is(err, ErrUnknownSuite) {
		t.Fatalf("unknown KEM: %v", err)
	}
	if Suite(0).KEMID() != 0 {
		t.Fatal("invalid suite has a KEM ID")
	}
}
