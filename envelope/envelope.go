// Package envelope defines the only thing a meshnode host ever sees: the
// Envelope, an opaque, padded ciphertext signed by the epoch's write key.
//
// # Byte layout (version 1)
//
//	offset  size  field
//	0       1     version (0x01)
//	1       32    WPub: Ed25519 public key of the epoch write key
//	33      24    nonce: XChaCha20-Poly1305 nonce of the ciphertext
//	57      4     L: ciphertext length, big-endian uint32
//	61      L     ciphertext (padded payload + 16-byte AEAD tag)
//	61+L    64    signature: Ed25519 over SigContext ‖ bytes[0:61+L]
//
// The whole encoding is at most the configured size limit (DefaultMaxSize).
// Decoding checks every length exactly before it slices anything.
//
// # Identifiers
//
// The mailbox tag is T = SHA-256(MailboxLabel ‖ WPub). It is self-certifying:
// a host that receives an envelope for mailbox T checks that SHA-256 of the
// envelope's WPub is T and that the signature verifies under WPub. Only the
// holders of the epoch write secret can therefore post, and a host needs no
// registration and learns no identity. The envelope ID is SHA-256 of the
// full encoding and is the deduplication key everywhere.
//
// The header bytes [0:61] are returned by AAD so the payload encryption can
// bind them: a host cannot move a ciphertext to another mailbox or nonce.
package envelope

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// Version is the only envelope version this code produces and accepts.
const Version = 1

// Sizes of the fixed fields of a version-1 envelope.
const (
	PublicKeySize = ed25519.PublicKeySize // 32
	NonceSize     = 24                    // XChaCha20-Poly1305
	SignatureSize = ed25519.SignatureSize // 64
	// HeaderSize is version + WPub + nonce + ciphertext length.
	HeaderSize = 1 + PublicKeySize + NonceSize + 4
	// Overhead is everything in an encoding except the ciphertext.
	Overhead = HeaderSize + SignatureSize
	// DefaultMaxSize is the default limit on a whole encoded envelope.
	DefaultMaxSize = 64 << 10
	// AbsoluteMaxSize caps any configured limit (the length field is 32-bit,
	// but no frame of ours may carry more than this).
	AbsoluteMaxSize = 4 << 20
)

// Domain-separation labels. They are part of the protocol: changing one is a
// new protocol version.
const (
	// MailboxLabel prefixes WPub when hashing it into the mailbox tag.
	MailboxLabel = "meshnode/v1/mailbox"
	// SigContext prefixes the signed bytes so an envelope signature can never
	// be confused with a signature made by the same key for another purpose.
	SigContext = "meshnode/v1/envelope-signature"
)

// MailboxID is a mailbox tag T = SHA-256(MailboxLabel ‖ WPub).
type MailboxID [32]byte

// ID is an envelope ID: SHA-256 of the encoding.
type ID [32]byte

// MailboxFor returns the mailbox tag of a write public key.
func MailboxFor(wpub ed25519.PublicKey) MailboxID {
	// One SHA-256 over a stack buffer: no hash object to allocate per
	// envelope. A key of another length than PublicKeySize (which no
	// decoded envelope has) is hashed as given.
	var buf [len(MailboxLabel) + PublicKeySize]byte
	if len(wpub) != PublicKeySize {
		return sha256.Sum256(append([]byte(MailboxLabel), wpub...))
	}
	copy(buf[:], MailboxLabel)
	copy(buf[len(MailboxLabel):], wpub)
	return sha256.Sum256(buf[:])
}

// String returns the tag in lower-case hex.
func (m MailboxID) String() string { return hex.EncodeToString(m[:]) }

// Short returns the first 8 hex digits, for logs.
func (m MailboxID) Short() string { return hex.EncodeToString(m[:4]) }

// ParseMailboxID parses the hex form of a mailbox tag.
func ParseMailboxID(s string) (MailboxID, error) {
	var m MailboxID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(m) {
		return m, fmt.Errorf("%w: mailbox must be 64 hex digits", ErrMalformed)
	}
	copy(m[:], b)
	return m, nil
}

// String returns the ID in lower-case hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 8 hex digits, for logs.
func (id ID) Short() string { return hex.EncodeToString(id[:4]) }

// ParseID parses the hex form of an envelope ID.
func ParseID(s string) (ID, error) {
	var id ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("%w: envelope ID must be 64 hex digits", ErrMalformed)
	}
	copy(id[:], b)
	return id, nil
}

// Envelope is a decoded, immutable envelope. Fields alias the encoding; do
// not modify them.
type Envelope struct {
	raw        []byte
	id         ID
	mailbox    MailboxID
	WPub       ed25519.PublicKey
	Nonce      []byte
	Ciphertext []byte
	Signature  []byte
}

// Seal builds and signs an envelope. wpriv is the epoch write key; nonce is
// the nonce the caller used to produce ciphertext (the envelope only carries
// it). maxSize bounds the encoding (0 means DefaultMaxSize).
func Seal(wpriv ed25519.PrivateKey, nonce, ciphertext []byte, maxSize int) (*Envelope, error) {
	if len(wpriv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: write key must be %d bytes", ErrMalformed, ed25519.PrivateKeySize)
	}
	if len(nonce) != NonceSize {
		return nil, fmt.Errorf("%w: nonce must be %d bytes", ErrMalformed, NonceSize)
	}
	limit, err := effectiveLimit(maxSize)
	if err != nil {
		return nil, err
	}
	total := Overhead + len(ciphertext)
	if total > limit {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, total, limit)
	}
	raw := make([]byte, HeaderSize, total)
	raw[0] = Version
	copy(raw[1:], wpriv.Public().(ed25519.PublicKey))
	copy(raw[1+PublicKeySize:], nonce)
	binary.BigEndian.PutUint32(raw[1+PublicKeySize+NonceSize:], uint32(len(ciphertext)))
	raw = append(raw, ciphertext...)
	sig := ed25519.Sign(wpriv, signedMessage(raw))
	raw = append(raw, sig...)
	return parse(raw, nil), nil
}

// Decode parses an encoding structurally (no signature check). It copies b.
// Use Open for anything that came from the network or disk and is about to
// be trusted.
func Decode(b []byte, maxSize int) (*Envelope, error) {
	if err := check(b, maxSize); err != nil {
		return nil, err
	}
	return parse(append([]byte(nil), b...), nil), nil
}

// check checks an encoding's length, version and ciphertext length.
func check(b []byte, maxSize int) error {
	limit, err := effectiveLimit(maxSize)
	if err != nil {
		return err
	}
	if len(b) > limit {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), limit)
	}
	if len(b) < Overhead {
		return fmt.Errorf("%w: %d bytes is shorter than the %d-byte minimum", ErrMalformed, len(b), Overhead)
	}
	if b[0] != Version {
		return fmt.Errorf("%w: got %d, want %d", ErrVersion, b[0], Version)
	}
	n := binary.BigEndian.Uint32(b[1+PublicKeySize+NonceSize:])
	if uint64(n) != uint64(len(b)-Overhead) {
		return fmt.Errorf("%w: ciphertext length %d does not match encoding of %d bytes", ErrMalformed, n, len(b))
	}
	return nil
}

// Open decodes and verifies the write signature. If want is non-nil the
// envelope must belong to that mailbox.
func Open(b []byte, maxSize int, want *MailboxID) (*Envelope, error) {
	e, err := Decode(b, maxSize)
	if err != nil {
		return nil, err
	}
	if want != nil && e.mailbox != *want {
		return nil, fmt.Errorf("%w: envelope is for %s, not %s", ErrWrongMailbox, e.mailbox.Short(), want.Short())
	}
	if err := e.Verify(); err != nil {
		return nil, err
	}
	return e, nil
}

// parse slices an encoding whose lengths are already known to be right.
// tag, if not nil, is the mailbox tag of the encoding's write key, already
// known to the caller (Decoder).
func parse(raw []byte, tag *MailboxID) *Envelope {
	ctEnd := len(raw) - SignatureSize
	e := &Envelope{
		raw:        raw,
		WPub:       ed25519.PublicKey(raw[1 : 1+PublicKeySize]),
		Nonce:      raw[1+PublicKeySize : 1+PublicKeySize+NonceSize],
		Ciphertext: raw[HeaderSize:ctEnd],
		Signature:  raw[ctEnd:],
	}
	e.id = sha256.Sum256(raw)
	if tag != nil {
		e.mailbox = *tag
	} else {
		e.mailbox = MailboxFor(e.WPub)
	}
	return e
}

// Verify checks the write signature.
func (e *Envelope) Verify() error {
	if !ed25519.Verify(e.WPub, signedMessage(e.raw[:len(e.raw)-SignatureSize]), e.Signature) {
		return ErrBadSignature
	}
	return nil
}

// Bytes returns the encoding. Do not modify it.
func (e *Envelope) Bytes() []byte { return e.raw }

// Size is the length of the encoding.
func (e *Envelope) Size() int { return len(e.raw) }

// ID returns SHA-256 of the encoding.
func (e *Envelope) ID() ID { return e.id }

// Mailbox returns the tag of the envelope's write key.
func (e *Envelope) Mailbox() MailboxID { return e.mailbox }

// AAD returns the header bytes that payload encryption binds as associated
// data: version, WPub, nonce and ciphertext length.
func (e *Envelope) AAD() []byte { return e.raw[:HeaderSize] }

// HeaderAAD computes the AAD for a ciphertext of length ctLen before the
// envelope exists, so a sender can encrypt with the same binding that
// receivers check with AAD.
func HeaderAAD(wpub ed25519.PublicKey, nonce []byte, ctLen int) []byte {
	h := make([]byte, HeaderSize)
	h[0] = Version
	copy(h[1:], wpub)
	copy(h[1+PublicKeySize:], nonce)
	binary.BigEndian.PutUint32(h[1+PublicKeySize+NonceSize:], uint32(ctLen))
	return h
}

func signedMessage(body []byte) []byte {
	m := make([]byte, 0, len(SigContext)+len(body))
	m = append(m, SigContext...)
	return append(m, body...)
}

func effectiveLimit(maxSize int) (int, error) {
	switch {
	case maxSize == 0:
		return DefaultMaxSize, nil
	case maxSize < Overhead+1 || maxSize > AbsoluteMaxSize:
		return 0, fmt.Errorf("%w: size limit %d outside [%d, %d]", ErrMalformed, maxSize, Overhead+1, AbsoluteMaxSize)
	}
	return maxSize, nil
}
