package keymgmt

import (
	"crypto/ed25519"
	"crypto/hpke"
	"fmt"
)

// HPKE info labels. Every seal prefixes the caller's info with one of them
// (length-prefixed, see hpkeInfo), so a blob sealed for one purpose never
// opens as another even if two callers chose the same info.
const (
	// LabelSeal is the info label of SealTo / Identity.Open.
	LabelSeal = "meshnode/v1/seal"
	// LabelSealEpochSecrets is the info label of SealEpochSecrets /
	// Identity.OpenEpochSecrets.
	LabelSealEpochSecrets = "meshnode/v1/seal/epoch-secrets"
)

// hpkeInfo is len(label) ‖ label ‖ info: unambiguous, so (label, info)
// pairs cannot collide.
func hpkeInfo(label string, info []byte) []byte {
	out := make([]byte, 0, 1+len(label)+len(info))
	out = append(out, byte(len(label)))
	out = append(out, label...)
	return append(out, info...)
}

// SealTo encrypts plaintext to recipient's HPKE key in single-shot base mode
// and returns enc ‖ ciphertext. info is chosen by the caller and must bind
// the context the plaintext belongs to (group ID, epoch, state head…); the
// recipient must pass the same info to open it.
//
// Base mode gives confidentiality and integrity but does not authenticate
// the sender: anyone can seal to a public key. Callers that need to know who
// sealed sign the plaintext (or the message carrying it) with Identity.Sign.
// A fresh ephemeral KEM key per call means key and nonce never repeat.
func SealTo(recipient *PublicIdentity, info, plaintext []byte) ([]byte, error) {
	return sealLabelled(recipient, LabelSeal, info, plaintext)
}

func sealLabelled(recipient *PublicIdentity, label string, info, plaintext []byte) ([]byte, error) {
	if recipient == nil {
		return nil, fmt.Errorf("%w: nil recipient", ErrInvalidKey)
	}
	pk, err := recipient.hpkePublicKey()
	if err != nil {
		return nil, err
	}
	out, err := hpke.Seal(pk, hpkeKDF(), hpkeAEAD(), hpkeInfo(label, info), plaintext)
	if err != nil {
		// Only a degenerate public key (e.g. an X25519 low-order point)
		// gets here.
		return nil, fmt.Errorf("%w: seal to %s key: %w", ErrInvalidKey, recipient.Suite, err)
	}
	return out, nil
}

// Open decrypts the output of SealTo made with the same info. Anything that
// does not open — too short for the suite, sealed to another key or suite,
// another info, tampered — is ErrDecrypt.
func (id *Identity) Open(info, sealed []byte) ([]byte, error) {
	return id.openLabelled(LabelSeal, info, sealed)
}

func (id *Identity) openLabelled(label string, info, sealed []byte) ([]byte, error) {
	if overhead := id.suite.SealOverhead(); len(sealed) < overhead {
		return nil, fmt.Errorf("%w: sealed message is %d bytes, shorter than the %d-byte %s overhead", ErrDecrypt, len(sealed), overhead, id.suite)
	}
	pt, err := hpke.Open(id.kem, hpkeKDF(), hpkeAEAD(), hpkeInfo(label, info), sealed)
	if err != nil {
		return nil, fmt.Errorf("%w: not sealed to this identity under this info, or tampered", ErrDecrypt)
	}
	return pt, nil
}

// Encoding of EpochSecrets (see the package doc).
const (
	epochSecretsVersion   = 1
	epochFlagWrite        = 0x01
	epochSecretsReadSize  = 2 + SecretSize + ed25519.PublicKeySize
	epochSecretsWriteSize = epochSecretsReadSize + SecretSize
)

// MarshalEpochSecrets returns the canonical encoding of s:
// version ‖ flags ‖ R ‖ WPub [‖ W]. WPub is always included; a writer's
// WPub is derived from W when missing. The result is secret.
func MarshalEpochSecrets(s *EpochSecrets) ([]byte, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: nil epoch secrets", ErrInvalidKey)
	}
	keys, err := s.Derive() // checks WPub against W, or WPub's length
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, epochSecretsWriteSize)
	flags := byte(0)
	if s.Write != nil {
		flags |= epochFlagWrite
	}
	out = append(out, epochSecretsVersion, flags)
	out = append(out, s.Read[:]...)
	out = append(out, keys.WritePub...)
	if s.Write != nil {
		out = append(out, s.Write[:]...)
	}
	return out, nil
}

// ParseEpochSecrets decodes a MarshalEpochSecrets encoding. The length must
// be exact for the flags, and a writer's WPub must match its W.
func ParseEpochSecrets(b []byte) (*EpochSecrets, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: epoch secrets are %d bytes", ErrMalformed, len(b))
	}
	if b[0] != epochSecretsVersion {
		return nil, fmt.Errorf("%w: epoch secrets version %d, want %d", ErrMalformed, b[0], epochSecretsVersion)
	}
	flags := b[1]
	if flags&^epochFlagWrite != 0 {
		return nil, fmt.Errorf("%w: unknown epoch secrets flags %#x", ErrMalformed, flags)
	}
	want := epochSecretsReadSize
	if flags&epochFlagWrite != 0 {
		want = epochSecretsWriteSize
	}
	if len(b) != want {
		return nil, fmt.Errorf("%w: epoch secrets are %d bytes, want %d", ErrMalformed, len(b), want)
	}
	s := &EpochSecrets{}
	copy(s.Read[:], b[2:2+SecretSize])
	s.WPub = clone(b[2+SecretSize : epochSecretsReadSize])
	if flags&epochFlagWrite != 0 {
		s.Write = new([SecretSize]byte)
		copy(s.Write[:], b[epochSecretsReadSize:])
	}
	if _, err := s.Derive(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return s, nil
}

// SealEpochSecrets seals the secrets of one epoch to a member (ARCHITECTURE
// §7: rotations and welcomes). A readOnly recipient gets R_n and WPub_n but
// never W_n. info must bind the context, e.g. group ID ‖ epoch ‖ state head,
// so a copy cannot be replayed into another group or epoch. To seal the same
// secrets to many members, use NewEpochSecretsSealer.
func SealEpochSecrets(recipient *PublicIdentity, info []byte, s *EpochSecrets, readOnly bool) ([]byte, error) {
	z, err := NewEpochSecretsSealer(s)
	if err != nil {
		return nil, err
	}
	defer z.Close()
	return z.SealTo(recipient, info, readOnly)
}

// EpochSecretsSealer seals one epoch's secrets to many members. It checks
// and encodes the secrets once, so a rotation does not re-derive the write
// key for every recipient. It holds secrets: Close it when done. It is safe
// for concurrent use.
type EpochSecretsSealer struct {
	writer []byte // full encoding; nil if the secrets are read-only
	reader []byte // encoding without W
}

// NewEpochSecretsSealer validates s (a writer's WPub must match its W; a
// missing WPub is derived) and encodes both the writer and the read-only
// forms.
func NewEpochSecretsSealer(s *EpochSecrets) (*EpochSecretsSealer, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: nil epoch secrets", ErrInvalidKey)
	}
	full, err := MarshalEpochSecrets(s)
	if err != nil {
		return nil, err
	}
	z := &EpochSecretsSealer{reader: clone(full[:epochSecretsReadSize])}
	z.reader[1] &^= epochFlagWrite
	if s.Write != nil {
		z.writer = full
	}
	return z, nil
}

// SealTo seals the secrets to recipient under info, without W_n if
// readOnly. Granting write access from read-only secrets is ErrInvalidKey.
func (z *EpochSecretsSealer) SealTo(recipient *PublicIdentity, info []byte, readOnly bool) ([]byte, error) {
	if z.reader == nil {
		return nil, fmt.Errorf("%w: epoch secrets sealer used after Close", ErrInvalidParams)
	}
	pt := z.reader
	if !readOnly {
		if z.writer == nil {
			return nil, fmt.Errorf("%w: cannot grant write access without the write secret", ErrInvalidKey)
		}
		pt = z.writer
	}
	return sealLabelled(recipient, LabelSealEpochSecrets, info, pt)
}

// Close wipes the encoded secrets (best effort: Go may have copied them).
// Call it after every SealTo has returned; later SealTo calls fail.
func (z *EpochSecretsSealer) Close() {
	clear(z.writer)
	clear(z.reader)
	z.writer, z.reader = nil, nil
}

// OpenEpochSecrets opens the output of SealEpochSecrets made with the same
// info. It returns ErrDecrypt if the blob does not open and ErrMalformed if
// it opens to something that is not valid epoch secrets.
func (id *Identity) OpenEpochSecrets(info, sealed []byte) (*EpochSecrets, error) {
	pt, err := id.openLabelled(LabelSealEpochSecrets, info, sealed)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	return ParseEpochSecrets(pt)
}
