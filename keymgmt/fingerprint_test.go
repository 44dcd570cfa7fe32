package keymgmt

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"regexp"
	"strings"
	"testing"
)

var fingerprintRE = regexp.MustCompile(`^[a-z2-7]{4}(-[a-z2-7]{4}){7}$`)

func TestFingerprintFormat(t *testing.T) {
	a, b := newID(t, SuiteX25519), newID(t, SuitePQ)
	fa := Fingerprint(a.Public().SignPub)
	if !fingerprintRE.MatchString(fa) {
		t.Fatalf("fingerprint %q does not have the documented shape", fa)
	}
	if fa != a.Fingerprint() || fa != a.Public().Fingerprint() {
		t.Fatal("fingerprint helpers disagree")
	}
	if fa == b.Fingerprint() {
		t.Fatal("two identities share a fingerprint")
	}
	// The digest is SHA-256 over the label and the key, truncated to 160
	// bits: check against an independent computation.
	sum := sha256.Sum256(append([]byte(FingerprintLabel), a.Public().SignPub...))
	if want := groupFingerprint(fpEncoding.EncodeToString(sum[:20])); fa != want {
		t.Fatalf("fingerprint %q, want %q", fa, want)
	}
	// Known answer for the all-zero key pins the label and the layout
	// (computed independently of this package).
	const zeroKAT = "rsyh-febx-eggx-wxaj-nli2-iyqu-7jhh-vzjg"
	if got := Fingerprint(make(ed25519.PublicKey, 32)); got != zeroKAT {
		t.Fatalf("fingerprint of the zero key is %q, want %q", got, zeroKAT)
	}
}

func TestParseFingerprint(t *testing.T) {
	fp := newID(t, SuiteX25519).Fingerprint()
	bare := strings.ReplaceAll(fp, "-", "")
	accept := []string{
		fp,
		strings.ToUpper(fp),
		bare,
		strings.ToUpper(bare),
		strings.ReplaceAll(fp, "-", " "),
		" " + fp + "\n",
		bare[:10] + "-" + bare[10:], // separators anywhere
	}
	for _, in := range accept {
		got, err := ParseFingerprint(in)
		if err != nil || got != fp {
			t.Errorf("ParseFingerprint(%q) = %q, %v; want %q", in, got, err, fp)
		}
	}
	reject := map[string]string{
		"empty":           "",
		"short":           bare[:31],
		"long":            bare + "a",
		"digit 0":         "0" + bare[1:],
		"digit 1":         "1" + bare[1:],
		"digit 8":         "8" + bare[1:],
		"padding":         bare[:31] + "=",
		"other punct":     strings.ReplaceAll(fp, "-", ":"),
		"non-ascii":       "é" + bare[1:],
		"separators only": "--------",
	}
	for name, in := range reject {
		if got, err := ParseFingerprint(in); !errors.Is(err, ErrMalformed) || got != "" {
			t.Errorf("%s: ParseFingerprint(%q) = %q, %v; want ErrMalformed", name, in, got, err)
		}
	}
}

func FuzzParseFingerprint(f *testing.F) {
	f.Add(newID(f, SuiteX25519).Fingerprint())
	f.Add("ABCD EFGH ijkl mnop qrst uvwx yz23 4567")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseFingerprint(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatal(err)
			}
			return
		}
		if !fingerprintRE.MatchString(got) {
			t.Fatalf("accepted %q as %q, not canonical", s, got)
		}
		if again, err := ParseFingerprint(got); err != nil || again != got {
			t.Fatalf("canonical form does not parse to itself: %q %v", again, err)
		}
	})
}
