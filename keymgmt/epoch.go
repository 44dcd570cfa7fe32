package keymgmt

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"fmt"

	"github.com/meshnode/meshnode/envelope"
)

// HKDF labels for epoch keys. Each derived key has its own label so that no
// two purposes ever share key material; the labels are part of the protocol.
const (
	// LabelReadKey derives K_n, the XChaCha20-Poly1305 key that encrypts the
	// epoch's payloads, from the read secret R_n.
	LabelReadKey = "meshnode/v1/epoch/read-key"
	// LabelWriteKey derives the Ed25519 seed of the epoch write keypair from
	// the write secret W_n.
	LabelWriteKey = "meshnode/v1/epoch/write-key"
)

// SecretSize is the size of the read and write secrets R_n and W_n.
const SecretSize = 32

// EpochSecrets are what a member holds for one epoch. Writers hold Write;
// read-only members have Write == nil and get WPub from the group instead
// (they need it to find the mailbox and to check envelope signatures).
type EpochSecrets struct {
	Read  [SecretSize]byte
	Write *[SecretSize]byte
	WPub  ed25519.PublicKey
}

// EpochKeys are the keys derived from EpochSecrets.
type EpochKeys struct {
	// ReadKey is K_n (XChaCha20-Poly1305).
	ReadKey [32]byte
	// WritePriv is nil for read-only members.
	WritePriv ed25519.PrivateKey
	WritePub  ed25519.PublicKey
	// Mailbox is T_n = SHA-256(label ‖ WPub_n).
	Mailbox envelope.MailboxID
}

// CanWrite reports whether these keys can sign envelopes.
func (k *EpochKeys) CanWrite() bool { return k.WritePriv != nil }

// NewEpochSecrets draws fresh R_n and W_n from crypto/rand.
func NewEpochSecrets() (*EpochSecrets, error) {
	s := &EpochSecrets{Write: new([SecretSize]byte)}
	rand.Read(s.Read[:])
	rand.Read(s.Write[:])
	keys, err := s.Derive()
	if err != nil {
		return nil, err
	}
	s.WPub = keys.WritePub
	return s, nil
}

// ReadOnly returns a copy of the secrets without the write secret.
func (s *EpochSecrets) ReadOnly() *EpochSecrets {
	return &EpochSecrets{Read: s.Read, WPub: append(ed25519.PublicKey(nil), s.WPub...)}
}

// Derive computes K_n, the write keypair (if the write secret is held) and
// the mailbox tag. For a writer, a WPub that disagrees with the write secret
// is an error, so a tampered welcome cannot point a member at a mailbox it
// cannot post to.
func (s *EpochSecrets) Derive() (*EpochKeys, error) {
	var k EpochKeys
	rk, err := hkdf.Key(sha256.New, s.Read[:], nil, LabelReadKey, 32)
	if err != nil {
		return nil, fmt.Errorf("keymgmt: derive read key: %w", err)
	}
	copy(k.ReadKey[:], rk)
	switch {
	case s.Write != nil:
		seed, err := hkdf.Key(sha256.New, s.Write[:], nil, LabelWriteKey, ed25519.SeedSize)
		if err != nil {
			return nil, fmt.Errorf("keymgmt: derive write key: %w", err)
		}
		k.WritePriv = ed25519.NewKeyFromSeed(seed)
		k.WritePub = k.WritePriv.Public().(ed25519.PublicKey)
		if s.WPub != nil && !k.WritePub.Equal(s.WPub) {
			return nil, fmt.Errorf("%w: write public key does not match the write secret", ErrInvalidKey)
		}
	case len(s.WPub) == ed25519.PublicKeySize:
		k.WritePub = append(ed25519.PublicKey(nil), s.WPub...)
	default:
		return nil, fmt.Errorf("%w: epoch has neither a write secret nor a write public key", ErrInvalidKey)
	}
	k.Mailbox = envelope.MailboxFor(k.WritePub)
	return &k, nil
}
