package keymgmt

import (
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/meshnode/meshnode/envelope"
)

// Connection package labels and limits (ARCHITECTURE §8).
const (
	// SigContextConnPackage is the signature context of connection
	// packages published under a user ID.
	SigContextConnPackage = "meshnode/v1/conn-package"
	// LabelConnKeyID prefixes a package's HPKE key when hashing it into
	// the key ID that names it inside requests.
	LabelConnKeyID = "meshnode/v1/conn/key-id"

	// ConnKeyIDSize is the size of a package key ID.
	ConnKeyIDSize = 16
	// MailboxSeedSize is the size of the request mailbox write key seed.
	MailboxSeedSize = ed25519.SeedSize
	// connPackageVersion is written when no proof of work is asked for
	// (the bytes are those of packages made before proofs existed);
	// connPackageVersionProof adds the proof difficulty.
	connPackageVersion      = 1
	connPackageVersionProof = 2
	// MaxConnPackageSize bounds a connection package encoding (an X-Wing
	// user ID package is about 2.5 KB).
	MaxConnPackageSize = 4096
)

// ConnKeyID names a package's HPKE key: SHA-256(LabelConnKeyID ‖ suite ‖
// HPKE public key)[:16].
type ConnKeyID [ConnKeyIDSize]byte

func connKeyID(suite Suite, pub []byte) ConnKeyID {
	h := sha256.New()
	h.Write([]byte(LabelConnKeyID))
	h.Write([]byte{byte(suite)})
	h.Write(pub)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	var id ConnKeyID
	copy(id[:], sum[:])
	return id
}

// ConnPackage is what a member publishes under a directory name so that
// others can ask to connect: a fresh HPKE key, a validity period, and the
// write key of the name's request mailbox (publishing it is what makes the
// mailbox open to write while hosts still check write signatures). Under a
// user ID the package carries and is signed by the identity; under an
// alias it carries no identity and no signature, so aliases cannot be
// linked to each other or to the user by their packages.
type ConnPackage struct {
	Kind    NameKind
	Suite   Suite
	HPKEPub []byte
	Created time.Time
	Expires time.Time
	// MailboxSeed is the Ed25519 seed of the request mailbox write key.
	MailboxSeed [MailboxSeedSize]byte
	// ProofBits is the proof of work a request must carry (see
	// SealRequest and CheckRequestProof): 0 asks for none, otherwise
	// 1..MaxProofBits leading zero bits.
	ProofBits uint8
	// Identity and Signature are set for NameUserID packages only.
	Identity  *PublicIdentity
	Signature []byte
}

// ConnSecret is the private half of a connection package's HPKE key,
// kept by the publisher to open requests. It is immutable.
type ConnSecret struct {
	suite Suite
	priv  hpke.PrivateKey
	id    ConnKeyID
}

// NewConnPackage draws a fresh HPKE key of the given suite and builds a
// package valid from created to expires (one-second resolution). signer
// is required for NameUserID packages and must be nil for aliases.
// proofBits is the proof of work requests must carry (0: none).
func NewConnPackage(kind NameKind, signer *Identity, suite Suite, mailboxSeed [MailboxSeedSize]byte, proofBits uint8, created, expires time.Time) (*ConnPackage, *ConnSecret, error) {
	if err := suite.check(); err != nil {
		return nil, nil, err
	}
	if proofBits > MaxProofBits {
		return nil, nil, fmt.Errorf("%w: proof of work of %d bits, at most %d", ErrInvalidParams, proofBits, MaxProofBits)
	}
	created, expires = time.Unix(created.Unix(), 0).UTC(), time.Unix(expires.Unix(), 0).UTC()
	if !created.Before(expires) {
		return nil, nil, fmt.Errorf("%w: connection package expires before it is created", ErrInvalidParams)
	}
	switch {
	case kind == NameUserID && signer == nil:
		return nil, nil, fmt.Errorf("%w: a user ID package must be signed by the identity", ErrInvalidParams)
	case kind == NameAlias && signer != nil:
		return nil, nil, fmt.Errorf("%w: an alias package must not carry the identity", ErrInvalidParams)
	case kind != NameUserID && kind != NameAlias:
		return nil, nil, fmt.Errorf("%w: name kind %d", ErrInvalidParams, kind)
	}
	// A fresh KEM key per package: a package is handed out to one
	// initiator (the last one may be handed out more than once), and its
	// secret is deleted when it expires.
	kp, err := suite.kem().GenerateKey()
	if err != nil {
		return nil, nil, fmt.Errorf("keymgmt: generate %s key: %w", suite, err)
	}
	pkg := &ConnPackage{
		Kind: kind, Suite: suite, HPKEPub: kp.PublicKey().Bytes(),
		Created: created, Expires: expires, MailboxSeed: mailboxSeed, ProofBits: proofBits,
	}
	if signer != nil {
		pkg.Identity = signer.Public()
		pkg.Signature = signer.Sign(SigContextConnPackage, pkg.signedBytes())
	}
	return pkg, &ConnSecret{suite: suite, priv: kp, id: connKeyID(suite, pkg.HPKEPub)}, nil
}

// Connection package encoding (versions 1 and 2, big-endian):
//
//	0   1   version (0x01; 0x02 when requests must carry a proof of work)
//	1   1   kind (1 alias, 2 user ID)
//	2   1   suite
//	3   N   HPKE public key (N fixed by the suite)
//	    8   created, Unix seconds
//	    8   expires, Unix seconds (after created)
//	    32  request mailbox write key seed
//	version 2 only:
//	    1   proof of work difficulty in bits (1..MaxProofBits)
//	user ID packages only:
//	    2   L, then L bytes of public identity
//	    64  Ed25519 signature by that identity, context
//	        SigContextConnPackage, over all preceding bytes
func (p *ConnPackage) signedBytes() []byte {
	out := make([]byte, 0, 3+len(p.HPKEPub)+16+MailboxSeedSize+2+publicIdentityHeader+xwingPublicSize+ed25519.SignatureSize)
	version := byte(connPackageVersion)
	if p.ProofBits > 0 {
		version = connPackageVersionProof
	}
	out = append(out, version, byte(p.Kind), byte(p.Suite))
	out = append(out, p.HPKEPub...)
	out = binary.BigEndian.AppendUint64(out, uint64(p.Created.Unix()))
	out = binary.BigEndian.AppendUint64(out, uint64(p.Expires.Unix()))
	out = append(out, p.MailboxSeed[:]...)
	if p.ProofBits > 0 {
		out = append(out, p.ProofBits)
	}
	if p.Kind == NameUserID && p.Identity != nil {
		idb := p.Identity.Marshal()
		out = binary.BigEndian.AppendUint16(out, uint16(len(idb)))
		out = append(out, idb...)
	}
	return out
}

// Marshal returns the encoding above.
func (p *ConnPackage) Marshal() []byte {
	return append(p.signedBytes(), p.Signature...)
}

// ParseConnPackage decodes a connection package and, for a user ID
// package, verifies its signature. It does not check the validity period
// (see CheckFor). Errors: ErrMalformed, ErrBadSignature.
func ParseConnPackage(b []byte) (*ConnPackage, error) {
	if len(b) > MaxConnPackageSize {
		return nil, fmt.Errorf("%w: connection package of %d bytes, at most %d", ErrMalformed, len(b), MaxConnPackageSize)
	}
	r := newReader(b)
	version := r.u8()
	if r.ok && version != connPackageVersion && version != connPackageVersionProof {
		return nil, fmt.Errorf("%w: connection package version %d, want %d or %d", ErrMalformed, version, connPackageVersion, connPackageVersionProof)
	}
	kind, suite := NameKind(r.u8()), Suite(r.u8())
	if !r.ok {
		return nil, fmt.Errorf("%w: connection package truncated", ErrMalformed)
	}
	if kind != NameAlias && kind != NameUserID {
		return nil, fmt.Errorf("%w: connection package kind %d", ErrMalformed, kind)
	}
	if err := suite.check(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	p := &ConnPackage{Kind: kind, Suite: suite, HPKEPub: clone(r.bytes(suite.PublicKeySize()))}
	created, expires := r.i64(), r.i64()
	copy(p.MailboxSeed[:], r.bytes(MailboxSeedSize))
	if version == connPackageVersionProof {
		// Version 2 exists only to carry a difficulty: zero would have
		// been written as version 1, so it is not canonical.
		if p.ProofBits = r.u8(); r.ok && (p.ProofBits == 0 || p.ProofBits > MaxProofBits) {
			return nil, fmt.Errorf("%w: connection package asks for a %d-bit proof of work (1..%d)", ErrMalformed, p.ProofBits, MaxProofBits)
		}
	}
	var signedLen int
	if kind == NameUserID {
		idb := r.bytes(int(r.u16()))
		signedLen = len(b) - len(r.b)
		p.Signature = clone(r.bytes(ed25519.SignatureSize))
		if r.ok {
			pub, err := ParsePublicIdentity(idb)
			if err != nil {
				return nil, fmt.Errorf("connection package identity: %w", err)
			}
			p.Identity = pub
		}
	}
	if !r.done() {
		return nil, fmt.Errorf("%w: connection package of %d bytes is truncated or has trailing data", ErrMalformed, len(b))
	}
	if created >= expires {
		return nil, fmt.Errorf("%w: connection package expires before it was created", ErrMalformed)
	}
	p.Created, p.Expires = time.Unix(created, 0).UTC(), time.Unix(expires, 0).UTC()
	probe := PublicIdentity{SignPub: make(ed25519.PublicKey, ed25519.PublicKeySize), Suite: suite, HPKEPub: p.HPKEPub}
	if err := probe.validateHPKE(); err != nil {
		return nil, fmt.Errorf("%w: connection package key: %w", ErrMalformed, err)
	}
	if kind == NameUserID {
		if err := VerifySignature(p.Identity.SignPub, SigContextConnPackage, b[:signedLen], p.Signature); err != nil {
			return nil, fmt.Errorf("connection package: %w", err)
		}
	}
	return p, nil
}

// CheckFor checks that the package may be used to reach name at now: same
// kind, signed by the identity the user ID names, and not expired.
// Errors: ErrBadSignature (a user ID package of another identity: a
// forgery or a host that mixed up names), ErrExpired.
func (p *ConnPackage) CheckFor(name Name, now time.Time) error {
	if p.Kind != name.Kind {
		return fmt.Errorf("%w: a %s package was published under %s %q", ErrBadSignature, p.Kind, name.Kind, name.Canonical)
	}
	if p.Kind == NameUserID && (p.Identity == nil || p.Identity.Fingerprint() != name.Canonical) {
		return fmt.Errorf("%w: the package under user ID %s is not signed by that identity", ErrBadSignature, name.Canonical)
	}
	if !now.Before(p.Expires) {
		return fmt.Errorf("%w: the connection package for %s expired at %s; the owner's node publishes fresh ones while it runs",
			ErrExpired, name.Canonical, p.Expires.Format(time.RFC3339))
	}
	return nil
}

// KeyID names the package's HPKE key.
func (p *ConnPackage) KeyID() ConnKeyID { return connKeyID(p.Suite, p.HPKEPub) }

// MailboxKey is the request mailbox write key.
func (p *ConnPackage) MailboxKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(p.MailboxSeed[:])
}

// Mailbox is the request mailbox tag, SHA-256(MailboxLabel ‖ WPub) as for
// every mailbox.
func (p *ConnPackage) Mailbox() envelope.MailboxID {
	return envelope.MailboxFor(p.MailboxKey().Public().(ed25519.PublicKey))
}

// RequestMailbox is the mailbox tag of a request mailbox write key seed.
func RequestMailbox(seed [MailboxSeedSize]byte) envelope.MailboxID {
	return envelope.MailboxFor(ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey))
}

// KeyID names the secret's HPKE key (the same as its package's KeyID).
func (s *ConnSecret) KeyID() ConnKeyID { return s.id }

// Suite is the secret's HPKE suite.
func (s *ConnSecret) Suite() Suite { return s.suite }

// MarshalPrivate returns suite ‖ 32-byte HPKE private key, for the
// member's encrypted database. The result is secret.
func (s *ConnSecret) MarshalPrivate() ([]byte, error) {
	kb, err := s.priv.Bytes()
	if err != nil {
		return nil, fmt.Errorf("keymgmt: serialize %s private key: %w", s.suite, err)
	}
	return append([]byte{byte(s.suite)}, kb...), nil
}

// ParseConnSecret decodes MarshalPrivate.
func ParseConnSecret(b []byte) (*ConnSecret, error) {
	if len(b) != 1+hpkePrivateSize {
		return nil, fmt.Errorf("%w: connection secret is %d bytes, want %d", ErrMalformed, len(b), 1+hpkePrivateSize)
	}
	suite := Suite(b[0])
	if err := suite.check(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	kp, err := suite.kem().NewPrivateKey(b[1:])
	if err != nil {
		return nil, fmt.Errorf("%w: %s private key: %w", ErrMalformed, suite, err)
	}
	return &ConnSecret{suite: suite, priv: kp, id: connKeyID(suite, kp.PublicKey().Bytes())}, nil
}
