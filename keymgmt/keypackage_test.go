package keymgmt

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestKeyPackageRoundTrip(t *testing.T) {
	for _, s := range suites {
		t.Run(s.String(), func(t *testing.T) {
			id := newID(t, s)
			kp, err := id.NewKeyPackage("Ada Lovelace ✓", 24*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			text := kp.String()
			if !strings.HasPrefix(text, KeyPackagePrefix) || len(text) > maxKeyPackageText {
				t.Fatalf("text form %d chars: %.20q", len(text), text)
			}
			got, err := ParseKeyPackage("  "+text+"\n", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if !got.Identity.Equal(id.Public()) || got.Nick != kp.Nick ||
				!got.Created.Equal(kp.Created) || !got.Expires.Equal(kp.Expires) {
				t.Fatalf("round trip changed the package: %+v", got)
			}
			if got.Expires.Sub(got.Created) != 24*time.Hour {
				t.Fatalf("ttl %v", got.Expires.Sub(got.Created))
			}
			if got.String() != text {
				t.Fatal("parsed package does not re-encode to its text")
			}
			bin, err := ParseKeyPackageBinary(kp.Marshal(), time.Now())
			if err != nil || bin.String() != text {
				t.Fatalf("binary form: %v", err)
			}
		})
	}
}

func TestNewKeyPackageRejects(t *testing.T) {
	id := newID(t, SuiteX25519)
	tests := []struct {
		name string
		nick string
		ttl  time.Duration
	}{
		{"nick too long", strings.Repeat("a", MaxNickSize+1), time.Hour},
		{"nick invalid utf-8", "a\xffb", time.Hour},
		{"nick newline", "a\nb", time.Hour},
		{"nick escape", "a\x1b[31mb", time.Hour},
		{"nick C1 control", "a\u0085b", time.Hour},
		{"zero ttl", "ada", 0},
		{"negative ttl", "ada", -time.Hour},
		{"sub-second ttl", "ada", 500 * time.Millisecond},
	}
	for _, tc := range tests {
		if kp, err := id.NewKeyPackage(tc.nick, tc.ttl); !errors.Is(err, ErrInvalidParams) || kp != nil {
			t.Errorf("%s: got %v, want ErrInvalidParams", tc.name, err)
		}
	}
	if _, err := id.NewKeyPackage(strings.Repeat("é", MaxNickSize/2), time.Hour); err != nil {
		t.Errorf("64-byte nick refused: %v", err)
	}
	if _, err := id.NewKeyPackage("", time.Hour); err != nil {
		t.Errorf("empty nick refused: %v", err)
	}
}

// encodeText wraps raw binary bytes in the text form with a valid checksum,
// so tests can reach the checks behind the checksum.
func encodeText(b []byte) string {
	sum := sha256.Sum256(b)
	return KeyPackagePrefix + kpEncoding.EncodeToString(append(b, sum[:keyPackageChecksumSize]...))
}

func TestParseKeyPackageRejects(t *testing.T) {
	id := newID(t, SuiteX25519)
	kp, err := id.NewKeyPackage("ada", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	text := kp.String()
	bin := kp.Marshal()
	idLen := len(kp.Identity.Marshal())
	nickOff := 3 + idLen
	timeOff := nickOff + 1 + len(kp.Nick)

	// resign rebuilds a package whose signed bytes were changed by f and
	// signs it properly, to reach the checks after the signature.
	resign := func(f func(*KeyPackage)) string {
		c := *kp
		f(&c)
		c.Signature = id.Sign(SigContextKeyPackage, c.signedBytes())
		return c.String()
	}
	with := func(f func([]byte)) string { c := clone(bin); f(c); return encodeText(c) }
	// A one-character typo in the middle stays valid base64url but changes
	// the bytes, so the checksum catches it.
	typo := []byte(text)
	if p := len(typo) / 2; typo[p] == 'A' {
		typo[p] = 'B'
	} else {
		typo[p] = 'A'
	}

	tests := []struct {
		name string
		in   string
		now  time.Time
		want error
	}{
		{"empty", "", now, ErrMalformed},
		{"no prefix", text[len(KeyPackagePrefix):], now, ErrMalformed},
		{"wrong prefix", "mnkp2." + text[len(KeyPackagePrefix):], now, ErrMalformed},
		{"not base64", text + "!", now, ErrMalformed},
		{"standard base64 padding", text + "=", now, ErrMalformed},
		{"too long", KeyPackagePrefix + strings.Repeat("A", maxKeyPackageText), now, ErrMalformed},
		{"only checksum", KeyPackagePrefix + "AAA", now, ErrMalformed},
		{"typo", string(typo), now, ErrChecksum},
		{"truncated copy", text[:len(text)-8], now, ErrChecksum},
		{"bad version", with(func(c []byte) { c[0] = 3 }), now, ErrMalformed},
		{"identity length too long", with(func(c []byte) { binary.BigEndian.PutUint16(c[1:], uint16(idLen+1)) }), now, ErrMalformed},
		{"identity unknown suite", with(func(c []byte) { c[4] = 9 }), now, ErrUnknownSuite},
		{"nick length past end", with(func(c []byte) { c[nickOff] = 200 }), now, ErrMalformed},
		{"truncated binary", encodeText(bin[:len(bin)-1]), now, ErrMalformed},
		{"trailing binary", encodeText(append(clone(bin), 0)), now, ErrMalformed},
		{"nick control char", resign(func(c *KeyPackage) { c.Nick = "a\nb" }), now, ErrMalformed},
		{"expires before created", resign(func(c *KeyPackage) { c.Expires = c.Created.Add(-time.Second) }), now, ErrMalformed},
		{"tampered nick", with(func(c []byte) { c[nickOff+1] = 'b' }), now, ErrBadSignature},
		{"tampered expiry", with(func(c []byte) { c[timeOff+15]++ }), now, ErrBadSignature},
		{"tampered signature", with(func(c []byte) { c[len(c)-1] ^= 1 }), now, ErrBadSignature},
		{"tampered signing key", with(func(c []byte) { c[5] ^= 1 }), now, ErrBadSignature},
		{"expired", text, kp.Expires, ErrExpired},
		{"long expired", text, kp.Expires.Add(365 * 24 * time.Hour), ErrExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseKeyPackage(tc.in, tc.now)
			if !errors.Is(err, tc.want) || got != nil {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	// A signature by another key over the same bytes is refused.
	forged := *kp
	forged.Signature = newID(t, SuiteX25519).Sign(SigContextKeyPackage, kp.signedBytes())
	if _, err := ParseKeyPackage(forged.String(), now); !errors.Is(err, ErrBadSignature) {
		t.Errorf("signature by another key: %v", err)
	}
	// So is the right key under another context.
	forged.Signature = id.Sign("meshnode/v1/other", kp.signedBytes())
	if _, err := ParseKeyPackage(forged.String(), now); !errors.Is(err, ErrBadSignature) {
		t.Errorf("signature under another context: %v", err)
	}
}

func FuzzParseKeyPackage(f *testing.F) {
	now := time.Now()
	for _, s := range suites {
		kp, err := newID(f, s).NewKeyPackage("nick", time.Hour)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(kp.String())
	}
	f.Add(KeyPackagePrefix)
	f.Fuzz(func(t *testing.T, s string) {
		kp, err := ParseKeyPackage(s, now)
		if err != nil {
			if kp != nil {
				t.Fatal("error with a non-nil package")
			}
			for _, e := range []error{ErrMalformed, ErrChecksum, ErrBadSignature, ErrExpired} {
				if errors.Is(err, e) {
					return
				}
			}
			t.Fatalf("unexpected error class: %v", err)
		}
		if kp.String() != strings.TrimSpace(s) {
			t.Fatal("accepted package does not re-encode to its input")
		}
	})
}

func FuzzParseKeyPackageBinary(f *testing.F) {
	now := time.Now()
	for _, s := range suites {
		kp, err := newID(f, s).NewKeyPackage("nick", time.Hour)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(kp.Marshal())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		kp, err := ParseKeyPackageBinary(b, now)
		if err != nil {
			if kp != nil {
				t.Fatal("error with a non-nil package")
			}
			return
		}
		if string(kp.Marshal()) != string(b) {
			t.Fatal("accepted package does not re-encode to its input")
		}
	})
}

// Two key packages made in the same second by one identity with one nick
// must differ: each answers one welcome, in a mailbox derived from it.
func TestKeyPackagesAreUnique(t *testing.T) {
	id := newID(t, SuiteX25519)
	seen := map[string]bool{}
	for range 8 {
		kp, err := id.NewKeyPackage("ada", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if len(kp.Nonce) != KeyPackageNonceSize {
			t.Fatalf("nonce of %d bytes", len(kp.Nonce))
		}
		if seen[string(kp.Marshal())] {
			t.Fatal("two key packages are byte-identical")
		}
		seen[string(kp.Marshal())] = true
	}
}

// A version 1 package (no nonce), as saved before version 2, still parses
// and re-encodes to itself; a v2 package cut short of its nonce does not.
func TestKeyPackageVersion1(t *testing.T) {
	id := newID(t, SuiteX25519)
	kp, err := id.NewKeyPackage("ada", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	v1 := *kp
	v1.Nonce = nil
	v1.Signature = id.Sign(SigContextKeyPackage, v1.signedBytes())
	if v1.Marshal()[0] != keyPackageVersionV1 {
		t.Fatalf("version byte %d", v1.Marshal()[0])
	}
	got, err := ParseKeyPackage(v1.String(), time.Now())
	if err != nil {
		t.Fatalf("v1 package refused: %v", err)
	}
	if got.Nonce != nil || got.String() != v1.String() {
		t.Fatal("v1 package does not round-trip")
	}
	// A v2 package relabelled as v1 (or the reverse) fails: the signature
	// covers the version byte and the layouts differ in length.
	b := kp.Marshal()
	b[0] = keyPackageVersionV1
	if _, err := ParseKeyPackageBinary(b, time.Now()); err == nil {
		t.Fatal("v2 package relabelled v1 accepted")
	}
	b = v1.Marshal()
	b[0] = keyPackageVersion
	if _, err := ParseKeyPackageBinary(b, time.Now()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("v1 package relabelled v2: %v, want ErrMalformed", err)
	}
}
