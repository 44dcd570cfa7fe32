package keymgmt

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// SigContextKeyPackage is the signature context of key packages.
const SigContextKeyPackage = "meshnode/v1/key-package"

// Key package limits and text form.
const (
	// MaxNickSize bounds a key package nickname in bytes (UTF-8).
	MaxNickSize = 64
	// KeyPackagePrefix starts the text form; the digit is the version.
	KeyPackagePrefix = "mnkp1."
	// keyPackageChecksumSize is the truncated SHA-256 appended before
	// base64: enough to catch typos and truncation, not a security check
	// (the signature is).
	keyPackageChecksumSize = 4
	// keyPackageVersion is the binary version written. Version 1 (no
	// nonce) is still read: a v1 package made in the same second as
	// another by the same identity and nick is byte-identical to it, so
	// their welcome mailboxes collide; v2 adds KeyPackageNonceSize random
	// bytes so every package is unique.
	keyPackageVersion   = 2
	keyPackageVersionV1 = 1
	// KeyPackageNonceSize is the size of a v2 key package's random nonce.
	KeyPackageNonceSize = 16
	// maxKeyPackageText comfortably exceeds the largest valid text (about
	// 1.9 KB for a post-quantum identity with a 64-byte nick).
	maxKeyPackageText = 4096
)

var kpEncoding = base64.RawURLEncoding

// KeyPackage is what a person shares (as text) so a manager can add them to
// a group: their public identity and a nickname, signed by the identity key
// and valid until Expires. Times have one-second resolution.
type KeyPackage struct {
	Identity PublicIdentity
	Nick     string
	Created  time.Time
	Expires  time.Time
	// Nonce makes each key package unique (and so its welcome mailbox,
	// groupstate.WelcomeMailbox, which is derived from the package): 16
	// random bytes in version 2, nil in a version 1 package read from old
	// records.
	Nonce     []byte
	Signature []byte
}

// NewKeyPackage creates and signs a key package valid for ttl from now.
func (id *Identity) NewKeyPackage(nick string, ttl time.Duration) (*KeyPackage, error) {
	if err := checkNick(nick); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidParams, err)
	}
	if ttl < time.Second {
		return nil, fmt.Errorf("%w: key package ttl %v is shorter than one second", ErrInvalidParams, ttl)
	}
	now := time.Unix(time.Now().Unix(), 0).UTC()
	// The nonce is random rather than a counter so that packages of one
	// identity are not ordered or counted by whoever sees several of them.
	nonce := make([]byte, KeyPackageNonceSize)
	rand.Read(nonce)
	kp := &KeyPackage{
		Identity: *id.Public(),
		Nick:     nick,
		Created:  now,
		Expires:  now.Add(ttl.Truncate(time.Second)),
		Nonce:    nonce,
	}
	kp.Signature = id.Sign(SigContextKeyPackage, kp.signedBytes())
	return kp, nil
}

// checkNick: valid UTF-8, at most MaxNickSize bytes, no control characters
// (a nick is displayed; newlines or escapes in it could fake UI text).
func checkNick(nick string) error {
	if len(nick) > MaxNickSize {
		return fmt.Errorf("nick is %d bytes, at most %d allowed", len(nick), MaxNickSize)
	}
	if !utf8.ValidString(nick) {
		return fmt.Errorf("nick is not valid UTF-8")
	}
	for _, r := range nick {
		if unicode.IsControl(r) {
			return fmt.Errorf("nick contains control character %U", r)
		}
	}
	return nil
}

// signedBytes is the binary encoding without the signature.
func (kp *KeyPackage) signedBytes() []byte {
	idb := kp.Identity.Marshal()
	out := make([]byte, 0, 3+len(idb)+1+len(kp.Nick)+16+len(kp.Nonce)+ed25519.SignatureSize)
	if kp.Nonce == nil {
		out = append(out, keyPackageVersionV1)
	} else {
		out = append(out, keyPackageVersion)
	}
	out = binary.BigEndian.AppendUint16(out, uint16(len(idb)))
	out = append(out, idb...)
	out = append(out, byte(len(kp.Nick)))
	out = append(out, kp.Nick...)
	out = binary.BigEndian.AppendUint64(out, uint64(kp.Created.Unix()))
	out = binary.BigEndian.AppendUint64(out, uint64(kp.Expires.Unix()))
	return append(out, kp.Nonce...)
}

// Marshal returns the binary encoding (see the package doc).
func (kp *KeyPackage) Marshal() []byte {
	return append(kp.signedBytes(), kp.Signature...)
}

// String returns the text form: KeyPackagePrefix ‖ base64url(binary ‖
// SHA-256(binary)[:4]), without padding.
func (kp *KeyPackage) String() string {
	b := kp.Marshal()
	sum := sha256.Sum256(b)
	b = append(b, sum[:keyPackageChecksumSize]...)
	return KeyPackagePrefix + kpEncoding.EncodeToString(b)
}

// ParseKeyPackage decodes and verifies the text form. Surrounding
// whitespace is ignored. Errors: ErrMalformed (not a key package),
// ErrChecksum (a typo or a truncated copy), ErrBadSignature (tampered),
// ErrExpired (authentic but past Expires at now).
func ParseKeyPackage(s string, now time.Time) (*KeyPackage, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxKeyPackageText {
		return nil, fmt.Errorf("%w: key package text is %d characters, at most %d", ErrMalformed, len(s), maxKeyPackageText)
	}
	body, ok := strings.CutPrefix(s, KeyPackagePrefix)
	if !ok {
		return nil, fmt.Errorf("%w: key package text must start with %q", ErrMalformed, KeyPackagePrefix)
	}
	raw, err := kpEncoding.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("%w: key package text is not base64url: %w", ErrMalformed, err)
	}
	if len(raw) < keyPackageChecksumSize {
		return nil, fmt.Errorf("%w: key package text too short", ErrMalformed)
	}
	b, check := raw[:len(raw)-keyPackageChecksumSize], raw[len(raw)-keyPackageChecksumSize:]
	sum := sha256.Sum256(b)
	if !bytes.Equal(sum[:keyPackageChecksumSize], check) {
		return nil, ErrChecksum
	}
	return ParseKeyPackageBinary(b, now)
}

// ParseKeyPackageBinary decodes and verifies the binary encoding (for
// containers that carry key packages, such as connection packages).
func ParseKeyPackageBinary(b []byte, now time.Time) (*KeyPackage, error) {
	kp, signed, err := decodeKeyPackage(b)
	if err != nil {
		return nil, err
	}
	if err := VerifySignature(kp.Identity.SignPub, SigContextKeyPackage, signed, kp.Signature); err != nil {
		return nil, fmt.Errorf("key package: %w", err)
	}
	if !now.Before(kp.Expires) {
		return nil, fmt.Errorf("%w: key package of %s expired at %s; ask for a fresh one",
			ErrExpired, kp.Identity.Fingerprint(), kp.Expires.Format(time.RFC3339))
	}
	return kp, nil
}

// decodeKeyPackage parses the structure and returns the signed bytes; it
// does not verify.
func decodeKeyPackage(b []byte) (*KeyPackage, []byte, error) {
	r := newReader(b)
	v := r.u8()
	if r.ok && v != keyPackageVersion && v != keyPackageVersionV1 {
		return nil, nil, fmt.Errorf("%w: key package version %d, want %d", ErrMalformed, v, keyPackageVersion)
	}
	idb := r.bytes(int(r.u16()))
	nick := r.bytes(int(r.u8()))
	created, expires := r.i64(), r.i64()
	var nonce []byte
	if v == keyPackageVersion {
		nonce = r.bytes(KeyPackageNonceSize)
	}
	signedLen := len(b) - len(r.b)
	sig := r.bytes(ed25519.SignatureSize)
	if !r.done() {
		return nil, nil, fmt.Errorf("%w: key package of %d bytes is truncated or has trailing data", ErrMalformed, len(b))
	}
	pub, err := ParsePublicIdentity(idb)
	if err != nil {
		return nil, nil, fmt.Errorf("key package identity: %w", err)
	}
	if err := checkNick(string(nick)); err != nil {
		return nil, nil, fmt.Errorf("%w: key package %w", ErrMalformed, err)
	}
	if created >= expires {
		return nil, nil, fmt.Errorf("%w: key package expires before it was created", ErrMalformed)
	}
	kp := &KeyPackage{
		Identity:  *pub,
		Nick:      string(nick),
		Created:   time.Unix(created, 0).UTC(),
		Expires:   time.Unix(expires, 0).UTC(),
		Nonce:     clone(nonce),
		Signature: clone(sig),
	}
	return kp, b[:signedLen], nil
}
