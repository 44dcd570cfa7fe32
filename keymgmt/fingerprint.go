package keymgmt

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strings"
)

// FingerprintLabel prefixes the signing key when hashing it into a
// fingerprint, so the digest cannot collide with any other hash of the same
// key in the protocol (such as a mailbox tag).
const FingerprintLabel = "meshnode/v1/fingerprint"

// Fingerprint layout: SHA-256(FingerprintLabel ‖ key) truncated to 20 bytes
// (160 bits) is exactly 32 base32 characters, shown in 8 groups of 4.
const (
	fingerprintBytes = 20
	fingerprintChars = 32 // 160 bits / 5 bits per base32 character
	fingerprintGroup = 4
	fingerprintSep   = '-'
)

// fpEncoding is lower-case RFC 4648 base32 without padding. Its alphabet has
// no 0, 1, 8 or 9, so the usual misreadings are rejected rather than
// silently accepted.
var fpEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Fingerprint returns a short, human-comparable digest of an identity
// signing key for out-of-band verification, such as
// "rsyh-febx-eggx-wxaj-nli2-iyqu-7jhh-vzjg" (the all-zero key). A key of
// the wrong size yields the fingerprint of whatever bytes were given.
//
// Security: the digest is 160 bits of SHA-256 over a labelled key. To
// impersonate a given member an attacker needs a key whose fingerprint
// matches that member's: a second preimage, about 2^160 work (2^160/N when
// any one of N members would do). A collision, two keys with the same
// fingerprint, takes about 2^80 work but only gives the attacker two keys
// of its own that look alike; it does not let anyone pass as a key they did
// not create. Users comparing a fingerprint should compare all of it.
func Fingerprint(pub ed25519.PublicKey) string {
	d := fingerprintDigest(pub)
	return groupFingerprint(fpEncoding.EncodeToString(d[:]))
}

func fingerprintDigest(pub []byte) [fingerprintBytes]byte {
	h := sha256.New()
	h.Write([]byte(FingerprintLabel))
	h.Write(pub)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	var d [fingerprintBytes]byte
	copy(d[:], sum[:])
	return d
}

func groupFingerprint(s string) string {
	var b strings.Builder
	b.Grow(len(s) + len(s)/fingerprintGroup)
	for i := 0; i < len(s); i += fingerprintGroup {
		if i > 0 {
			b.WriteByte(fingerprintSep)
		}
		b.WriteString(s[i : i+fingerprintGroup])
	}
	return b.String()
}

// ParseFingerprint accepts a fingerprint as a user typed or pasted it:
// upper or lower case, with or without '-' or blank separators anywhere. It
// returns the canonical form, which compares equal (==) to Fingerprint of
// the same key.
func ParseFingerprint(s string) (string, error) {
	var b strings.Builder
	b.Grow(fingerprintChars)
	for _, r := range s {
		switch {
		case r == fingerprintSep || r == ' ' || r == '\t' || r == '\n' || r == '\r':
			continue
		case r >= 'A' && r <= 'Z':
			r += 'a' - 'A'
		case r >= 'a' && r <= 'z', r >= '2' && r <= '7':
		default:
			return "", fmt.Errorf("%w: fingerprint contains %q, which is not a base32 character", ErrMalformed, r)
		}
		if b.Len() == fingerprintChars {
			return "", fmt.Errorf("%w: fingerprint longer than %d characters", ErrMalformed, fingerprintChars)
		}
		b.WriteRune(r)
	}
	if b.Len() != fingerprintChars {
		return "", fmt.Errorf("%w: fingerprint has %d characters, want %d", ErrMalformed, b.Len(), fingerprintChars)
	}
	// 32 characters carry exactly 160 bits, so every such string decodes
	// and there are no non-canonical trailing bits to reject.
	return groupFingerprint(b.String()), nil
}
