package groupstate

import (
	"crypto/hpke"
	"encoding/binary"
	"fmt"
	"slices"
)

// MaxProfileKeyLen bounds the HPKE public key in a profile (ML-KEM-1024
// with P-384, the largest KEM crypto/hpke offers, is 1665 bytes).
const MaxProfileKeyLen = 2048

// Profile is the body of a KindProfile payload: the author's HPKE public
// key, so that other members can seal direct messages and key updates to
// the author. The nickname travels in the payload's Nick field.
type Profile struct {
	// KEM is the RFC 9180 KEM identifier (0x0020 DHKEM(X25519), 0x647a
	// ML-KEM-768+X25519, ...).
	KEM uint16
	// PublicKey is the serialized HPKE public key (SerializePublicKey).
	PublicKey []byte
}

// Profile body encoding, version 1 (integers big-endian):
//
//	1   version (0x01)
//	2   KEM identifier
//	2   public key length K (1..MaxProfileKeyLen)
//	K   public key
const profileVersion = 1

// NewProfile builds a profile from an HPKE public key.
func NewProfile(pk hpke.PublicKey) *Profile {
	return &Profile{KEM: pk.KEM().ID(), PublicKey: pk.Bytes()}
}

// MarshalProfile encodes a profile after checking the key.
func MarshalProfile(p *Profile) ([]byte, error) {
	if _, err := p.HPKEPublicKey(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 5+len(p.PublicKey))
	b = append(b, profileVersion)
	b = binary.BigEndian.AppendUint16(b, p.KEM)
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.PublicKey)))
	return append(b, p.PublicKey...), nil
}

// ParseProfile decodes and checks a profile body: the KEM must be one
// crypto/hpke supports and the key must deserialize under it.
func ParseProfile(b []byte) (*Profile, error) {
	d := newDecoder(b)
	if v := d.u8(); !d.ok || v != profileVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrProfileMalformed, v, profileVersion)
	}
	p := &Profile{KEM: d.u16()}
	n := int(d.u16())
	key := d.take(n)
	if !d.done() {
		return nil, fmt.Errorf("%w: lengths do not add up to the %d-byte body", ErrProfileMalformed, len(b))
	}
	p.PublicKey = slices.Clone(key)
	if _, err := p.HPKEPublicKey(); err != nil {
		return nil, err
	}
	return p, nil
}

// HPKEPublicKey deserializes the key under its KEM.
func (p *Profile) HPKEPublicKey() (hpke.PublicKey, error) {
	if len(p.PublicKey) == 0 || len(p.PublicKey) > MaxProfileKeyLen {
		return nil, fmt.Errorf("%w: public key is %d bytes; want 1 to %d", ErrProfileMalformed, len(p.PublicKey), MaxProfileKeyLen)
	}
	kem, err := hpke.NewKEM(p.KEM)
	if err != nil {
		return nil, fmt.Errorf("%w: KEM %#04x: %w", ErrProfileMalformed, p.KEM, err)
	}
	pk, err := kem.NewPublicKey(p.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: public key does not fit KEM %#04x: %w", ErrProfileMalformed, p.KEM, err)
	}
	return pk, nil
}
