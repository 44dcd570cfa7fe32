package keymgmt

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"fmt"
	"sync"
)

// Suite names the HPKE ciphersuite of a profile identity. Both suites use
// HKDF-SHA256 and ChaCha20Poly1305; they differ in the KEM.
type Suite uint8

const (
	// SuiteX25519 is DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
	// ChaCha20Poly1305: the classic option (`meshnode init --classic`).
	SuiteX25519 Suite = 1
	// SuitePQ is the hybrid post-quantum KEM MLKEM768-X25519 (X-Wing,
	// draft-ietf-hpke-pq), HKDF-SHA256, ChaCha20Poly1305: the default.
	// Its public keys (1216 bytes) and encapsulations (1120 bytes) are
	// much larger.
	SuitePQ Suite = 2
)

// DefaultSuite is the suite of new profiles: the hybrid post-quantum one,
// so that what is sealed to a profile today (epoch secrets, key tree leaf
// keys and seeds, welcomes, direct messages, connection requests) stays
// closed to an attacker who records it now and has a quantum computer
// later ("harvest now, decrypt later"). X-Wing stays as strong as X25519
// if ML-KEM-768 fails. SuiteX25519 is the opt-out for constrained
// devices; groups mix both suites freely, since every seal is made to the
// recipient's own suite.
const DefaultSuite = SuitePQ

// Sizes per suite, checked exactly by every decoder.
const (
	x25519PublicSize = 32   // X25519 public key
	x25519EncSize    = 32   // DHKEM(X25519) encapsulation
	xwingPublicSize  = 1216 // ML-KEM-768 encapsulation key (1184) ‖ X25519 (32)
	xwingEncSize     = 1120 // ML-KEM-768 ciphertext (1088) ‖ X25519 (32)
	hpkePrivateSize  = 32   // X25519 scalar, or the X-Wing seed
	hpkeTagSize      = 16   // ChaCha20Poly1305 tag
)

func (s Suite) String() string {
	switch s {
	case SuiteX25519:
		return "x25519"
	case SuitePQ:
		return "mlkem768x25519"
	default:
		return fmt.Sprintf("suite(%d)", uint8(s))
	}
}

// Valid reports whether s is a suite this node speaks.
func (s Suite) Valid() bool { return s == SuiteX25519 || s == SuitePQ }

func (s Suite) check() error {
	if !s.Valid() {
		return fmt.Errorf("%w: %d", ErrUnknownSuite, uint8(s))
	}
	return nil
}

func (s Suite) kem() hpke.KEM {
	if s == SuitePQ {
		return hpke.MLKEM768X25519()
	}
	return hpke.DHKEM(ecdh.X25519())
}

// KEMID is the RFC 9180 KEM identifier of the suite (0 if unknown).
func (s Suite) KEMID() uint16 {
	if !s.Valid() {
		return 0
	}
	return s.kem().ID()
}

// SuiteForKEM returns the suite whose KEM has the RFC 9180 identifier id.
func SuiteForKEM(id uint16) (Suite, error) {
	for _, s := range []Suite{SuiteX25519, SuitePQ} {
		if s.kem().ID() == id {
			return s, nil
		}
	}
	return 0, fmt.Errorf("%w: KEM %#04x", ErrUnknownSuite, id)
}

// PublicKeySize is the size of the suite's HPKE public key (0 if unknown).
func (s Suite) PublicKeySize() int {
	switch s {
	case SuiteX25519:
		return x25519PublicSize
	case SuitePQ:
		return xwingPublicSize
	}
	return 0
}

// EncSize is the size of the suite's HPKE encapsulated key (0 if unknown).
func (s Suite) EncSize() int {
	switch s {
	case SuiteX25519:
		return x25519EncSize
	case SuitePQ:
		return xwingEncSize
	}
	return 0
}

// SealOverhead is how much longer SealTo's output is than its plaintext.
func (s Suite) SealOverhead() int { return s.EncSize() + hpkeTagSize }

// The KDF and AEAD are the same in both suites: HKDF-SHA256 because the rest
// of the protocol uses SHA-256, ChaCha20Poly1305 because it is constant time
// without AES hardware and matches the payload AEAD.
func hpkeKDF() hpke.KDF   { return hpke.HKDFSHA256() }
func hpkeAEAD() hpke.AEAD { return hpke.ChaCha20Poly1305() }

// Identity is a member's profile identity: an Ed25519 signing key (it signs
// only inside ciphertexts) and an HPKE key that receives sealed epoch secrets
// and direct messages. It is immutable and safe for concurrent use.
type Identity struct {
	sign  ed25519.PrivateKey
	suite Suite
	kem   hpke.PrivateKey
	pub   PublicIdentity
}

// PublicIdentity is the public half of an Identity, as other members see it.
type PublicIdentity struct {
	SignPub ed25519.PublicKey
	Suite   Suite
	HPKEPub []byte
}

// NewIdentity draws a fresh identity with the given HPKE suite.
func NewIdentity(suite Suite) (*Identity, error) {
	if err := suite.check(); err != nil {
		return nil, err
	}
	// ed25519.GenerateKey with a nil reader uses crypto/rand.
	_, sk, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, fmt.Errorf("keymgmt: generate signing key: %w", err)
	}
	kp, err := suite.kem().GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("keymgmt: generate %s key: %w", suite, err)
	}
	return newIdentity(sk, suite, kp), nil
}

func newIdentity(sk ed25519.PrivateKey, suite Suite, kp hpke.PrivateKey) *Identity {
	return &Identity{
		sign:  sk,
		suite: suite,
		kem:   kp,
		pub: PublicIdentity{
			SignPub: clone(sk.Public().(ed25519.PublicKey)),
			Suite:   suite,
			HPKEPub: kp.PublicKey().Bytes(),
		},
	}
}

// Suite returns the identity's HPKE suite.
func (id *Identity) Suite() Suite { return id.suite }

// Public returns a copy of the public half.
func (id *Identity) Public() *PublicIdentity {
	return &PublicIdentity{
		SignPub: clone(id.pub.SignPub),
		Suite:   id.pub.Suite,
		HPKEPub: clone(id.pub.HPKEPub),
	}
}

// Fingerprint returns the fingerprint of the identity's signing key.
func (id *Identity) Fingerprint() string { return Fingerprint(id.pub.SignPub) }

// maxContext bounds signature contexts so their length fits the one-byte
// prefix that makes them unambiguous.
const maxContext = 255

// signedMessage is len(context) ‖ context ‖ msg. The length byte makes the
// prefix unambiguous: no (context, msg) pair can produce the same bytes as a
// different pair, so a signature made for one purpose never verifies for
// another.
func signedMessage(context string, msg []byte) []byte {
	out := make([]byte, 0, 1+len(context)+len(msg))
	out = append(out, byte(len(context)))
	out = append(out, context...)
	return append(out, msg...)
}

// Sign signs msg with the identity key under context, a named
// domain-separation constant of the caller (such as SigContextKeyPackage).
// It panics if context is empty or longer than 255 bytes: contexts are
// compile-time constants, so that is a programming error.
func (id *Identity) Sign(context string, msg []byte) []byte {
	return SignWithKey(id.sign, context, msg)
}

// SigningKey returns the identity's Ed25519 public signing key.
func (id *Identity) SigningKey() ed25519.PublicKey { return clone(id.pub.SignPub) }

// SignWithKey signs like Identity.Sign with a bare Ed25519 key (epoch write
// keys, test keys), so every meshnode signature that names a context has the
// same layout: len(context) ‖ context ‖ msg. It panics on an empty or
// over-long context, a programming error.
func SignWithKey(key ed25519.PrivateKey, context string, msg []byte) []byte {
	if len(context) == 0 || len(context) > maxContext {
		panic("keymgmt: signature context must be 1..255 bytes")
	}
	return ed25519.Sign(key, signedMessage(context, msg))
}

// VerifySignature checks a signature made by Identity.Sign with the same
// context. It returns ErrInvalidKey for a key of the wrong size and
// ErrBadSignature for anything else that does not verify.
func VerifySignature(pub ed25519.PublicKey, context string, msg, sig []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: signing key is %d bytes, want %d", ErrInvalidKey, len(pub), ed25519.PublicKeySize)
	}
	if len(context) == 0 || len(context) > maxContext {
		return fmt.Errorf("%w: signature context must be 1..255 bytes", ErrBadSignature)
	}
	if len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: signature is %d bytes, want %d", ErrBadSignature, len(sig), ed25519.SignatureSize)
	}
	if !ed25519.Verify(pub, signedMessage(context, msg), sig) {
		return fmt.Errorf("%w: does not verify under %s", ErrBadSignature, Fingerprint(pub))
	}
	return nil
}

// identityVersion is the version byte of the public and private identity
// encodings.
const identityVersion = 1

// publicIdentityHeader is version + suite + signing key.
const publicIdentityHeader = 2 + ed25519.PublicKeySize

// Marshal returns the canonical encoding (see the package doc):
// version ‖ suite ‖ SignPub ‖ HPKEPub. It does not validate; encode only
// values that came from an Identity or ParsePublicIdentity.
func (p *PublicIdentity) Marshal() []byte {
	out := make([]byte, 0, publicIdentityHeader+len(p.HPKEPub))
	out = append(out, identityVersion, byte(p.Suite))
	out = append(out, p.SignPub...)
	return append(out, p.HPKEPub...)
}

// ParsePublicIdentity decodes and validates a Marshal encoding. The length
// must be exact for the suite and the HPKE key must parse.
func ParsePublicIdentity(b []byte) (*PublicIdentity, error) {
	if len(b) < publicIdentityHeader {
		return nil, fmt.Errorf("%w: public identity is %d bytes, want at least %d", ErrMalformed, len(b), publicIdentityHeader)
	}
	if b[0] != identityVersion {
		return nil, fmt.Errorf("%w: public identity version %d, want %d", ErrMalformed, b[0], identityVersion)
	}
	suite := Suite(b[1])
	if err := suite.check(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if want := publicIdentityHeader + suite.PublicKeySize(); len(b) != want {
		return nil, fmt.Errorf("%w: %s public identity is %d bytes, want %d", ErrMalformed, suite, len(b), want)
	}
	p := &PublicIdentity{
		SignPub: clone(b[2:publicIdentityHeader]),
		Suite:   suite,
		HPKEPub: clone(b[publicIdentityHeader:]),
	}
	if err := p.validateHPKE(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return p, nil
}

// Validate checks the lengths and the HPKE key of a PublicIdentity built by
// hand (ParsePublicIdentity already did this).
func (p *PublicIdentity) Validate() error {
	if len(p.SignPub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: signing key is %d bytes, want %d", ErrInvalidKey, len(p.SignPub), ed25519.PublicKeySize)
	}
	return p.validateHPKE()
}

// lowOrderProbe is a throwaway X25519 key used only to test whether a peer's
// X25519 point is of low order (ECDH with it fails); its output is never
// used.
var lowOrderProbe = sync.OnceValue(func() *ecdh.PrivateKey {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		panic("keymgmt: generate X25519 probe key: " + err.Error())
	}
	return k
})

// validateHPKE parses the HPKE key and rejects X25519 points of low order
// (also the X25519 half of an X-Wing key). HPKE would refuse to seal to
// them anyway; refusing them at parse time means a bad key package fails
// when it is read, not in the middle of a rotation.
func (p *PublicIdentity) validateHPKE() error {
	if _, err := p.hpkePublicKey(); err != nil {
		return err
	}
	point := p.HPKEPub[len(p.HPKEPub)-x25519PublicSize:]
	pub, err := ecdh.X25519().NewPublicKey(point)
	if err == nil {
		_, err = lowOrderProbe().ECDH(pub)
	}
	if err != nil {
		return fmt.Errorf("%w: %s HPKE key: %w", ErrInvalidKey, p.Suite, err)
	}
	return nil
}

// hpkePublicKey parses HPKEPub for the suite.
func (p *PublicIdentity) hpkePublicKey() (hpke.PublicKey, error) {
	if err := p.Suite.check(); err != nil {
		return nil, err
	}
	if len(p.HPKEPub) != p.Suite.PublicKeySize() {
		return nil, fmt.Errorf("%w: %s HPKE key is %d bytes, want %d", ErrInvalidKey, p.Suite, len(p.HPKEPub), p.Suite.PublicKeySize())
	}
	pk, err := p.Suite.kem().NewPublicKey(p.HPKEPub)
	if err != nil {
		return nil, fmt.Errorf("%w: %s HPKE key: %w", ErrInvalidKey, p.Suite, err)
	}
	return pk, nil
}

// Equal reports whether two public identities are the same keys.
func (p *PublicIdentity) Equal(q *PublicIdentity) bool {
	return p.Suite == q.Suite && p.SignPub.Equal(q.SignPub) && string(p.HPKEPub) == string(q.HPKEPub)
}

// Fingerprint returns the fingerprint of the signing key.
func (p *PublicIdentity) Fingerprint() string { return Fingerprint(p.SignPub) }

// privateIdentitySize is version + suite + Ed25519 seed + HPKE private key.
const privateIdentitySize = 2 + ed25519.SeedSize + hpkePrivateSize

// MarshalPrivate returns the secret encoding used inside the keystore:
// version ‖ suite ‖ Ed25519 seed ‖ HPKE private key (the X25519 scalar, or
// the 32-byte X-Wing seed from which the ML-KEM and X25519 keys expand).
// The result is secret: never log it or store it unencrypted by accident.
func (id *Identity) MarshalPrivate() ([]byte, error) {
	kb, err := id.kem.Bytes()
	if err != nil {
		return nil, fmt.Errorf("keymgmt: serialize %s private key: %w", id.suite, err)
	}
	if len(kb) != hpkePrivateSize {
		return nil, fmt.Errorf("%w: %s private key is %d bytes, want %d", ErrInvalidKey, id.suite, len(kb), hpkePrivateSize)
	}
	out := make([]byte, 0, privateIdentitySize)
	out = append(out, identityVersion, byte(id.suite))
	out = append(out, id.sign.Seed()...)
	return append(out, kb...), nil
}

// ParsePrivateIdentity decodes a MarshalPrivate encoding.
func ParsePrivateIdentity(b []byte) (*Identity, error) {
	if len(b) != privateIdentitySize {
		return nil, fmt.Errorf("%w: private identity is %d bytes, want %d", ErrMalformed, len(b), privateIdentitySize)
	}
	if b[0] != identityVersion {
		return nil, fmt.Errorf("%w: private identity version %d, want %d", ErrMalformed, b[0], identityVersion)
	}
	suite := Suite(b[1])
	if err := suite.check(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	sk := ed25519.NewKeyFromSeed(b[2 : 2+ed25519.SeedSize])
	kp, err := suite.kem().NewPrivateKey(b[2+ed25519.SeedSize:])
	if err != nil {
		return nil, fmt.Errorf("%w: %s private key: %w", ErrMalformed, suite, err)
	}
	return newIdentity(sk, suite, kp), nil
}
