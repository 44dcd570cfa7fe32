package keymgmt

import (
	"context"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"
)

// Establishment labels and limits.
const (
	// SigContextConnRequest is the signature context of establishment
	// packages.
	SigContextConnRequest = "meshnode/v1/conn-request"
	// LabelSealConnRequest is the HPKE info label of sealed establishment
	// packages.
	LabelSealConnRequest = "meshnode/v1/seal/conn-request"

	// MaxRequestInvite bounds the invite text of an establishment (a
	// connection group invite with one or two hosts is about 300 bytes).
	MaxRequestInvite = 2048
	// RequestNonceSize is the size of an establishment's replay nonce.
	RequestNonceSize = 16
	// requestPadSize is the padded plaintext size of every establishment:
	// the largest (an X-Wing identity, a 64-byte nick and a maximal
	// invite) fits, so every request envelope has the same size.
	requestPadSize = 4096
	// connRequestVersion is a request without a proof of work (the bytes
	// of requests made before proofs existed); connRequestVersionProof
	// carries one.
	connRequestVersion      = 1
	connRequestVersionProof = 2
	establishmentVersion    = 1
	requestCiphertextHead   = 1 + ConnKeyIDSize
	requestProofHead        = requestCiphertextHead + ProofNonceSize
)

// Establishment is what an initiator sends to ask for a connection: who it
// is, the nickname it asks to be shown under, and an invite to a fresh
// two-member connection group. It is signed by the initiator's identity
// and bound to the package key it is sealed to, so the recipient cannot
// forward it to someone else as if it were meant for them.
type Establishment struct {
	Initiator PublicIdentity
	Nick      string
	Invite    string
	// Time is when it was made (millisecond resolution).
	Time time.Time
	// Nonce makes every establishment unique; recipients drop repeats.
	Nonce     [RequestNonceSize]byte
	Signature []byte
}

// NewEstablishment builds and signs an establishment for the package pkg.
func (id *Identity) NewEstablishment(pkg *ConnPackage, nick, invite string, now time.Time) (*Establishment, error) {
	if err := checkNick(nick); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidParams, err)
	}
	if len(invite) == 0 || len(invite) > MaxRequestInvite {
		return nil, fmt.Errorf("%w: invite of %d bytes (1..%d)", ErrInvalidParams, len(invite), MaxRequestInvite)
	}
	e := &Establishment{Initiator: *id.Public(), Nick: nick, Invite: invite, Time: time.UnixMilli(now.UnixMilli()).UTC()}
	rand.Read(e.Nonce[:])
	e.Signature = id.Sign(SigContextConnRequest, e.signedMessage(pkg.KeyID()))
	return e, nil
}

// Establishment encoding (version 1, big-endian):
//
//	0   1   version (0x01)
//	1   2   L, then L bytes of the initiator's public identity
//	    1   N (≤ 64), then N bytes of nick (UTF-8, no control characters)
//	    2   M (1..2048), then M bytes of invite text
//	    8   time, Unix milliseconds
//	    16  nonce
//	    64  Ed25519 signature by the initiator, context
//	        SigContextConnRequest, over all preceding bytes ‖ key ID of the
//	        package it is sealed to
func (e *Establishment) body() []byte {
	idb := e.Initiator.Marshal()
	out := make([]byte, 0, 3+len(idb)+1+len(e.Nick)+2+len(e.Invite)+8+RequestNonceSize+ed25519.SignatureSize)
	out = append(out, establishmentVersion)
	out = binary.BigEndian.AppendUint16(out, uint16(len(idb)))
	out = append(out, idb...)
	out = append(out, byte(len(e.Nick)))
	out = append(out, e.Nick...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(e.Invite)))
	out = append(out, e.Invite...)
	out = binary.BigEndian.AppendUint64(out, uint64(e.Time.UnixMilli()))
	return append(out, e.Nonce[:]...)
}

func (e *Establishment) signedMessage(key ConnKeyID) []byte {
	return append(e.body(), key[:]...)
}

// Marshal returns the encoding above.
func (e *Establishment) Marshal() []byte { return append(e.body(), e.Signature...) }

// ParseEstablishment decodes an establishment and verifies its signature
// for the package key key. Errors: ErrMalformed, ErrBadSignature.
func ParseEstablishment(b []byte, key ConnKeyID) (*Establishment, error) {
	r := newReader(b)
	if v := r.u8(); r.ok && v != establishmentVersion {
		return nil, fmt.Errorf("%w: establishment version %d, want %d", ErrMalformed, v, establishmentVersion)
	}
	idb := r.bytes(int(r.u16()))
	nick := r.bytes(int(r.u8()))
	invite := r.bytes(int(r.u16()))
	ms := r.i64()
	nonce := r.bytes(RequestNonceSize)
	sig := r.bytes(ed25519.SignatureSize)
	if !r.done() {
		return nil, fmt.Errorf("%w: establishment of %d bytes is truncated or has trailing data", ErrMalformed, len(b))
	}
	pub, err := ParsePublicIdentity(idb)
	if err != nil {
		return nil, fmt.Errorf("establishment initiator: %w", err)
	}
	if err := checkNick(string(nick)); err != nil {
		return nil, fmt.Errorf("%w: establishment %w", ErrMalformed, err)
	}
	if len(invite) == 0 || len(invite) > MaxRequestInvite {
		return nil, fmt.Errorf("%w: establishment invite of %d bytes", ErrMalformed, len(invite))
	}
	e := &Establishment{Initiator: *pub, Nick: string(nick), Invite: string(invite), Time: time.UnixMilli(ms).UTC(), Signature: clone(sig)}
	copy(e.Nonce[:], nonce)
	if err := VerifySignature(pub.SignPub, SigContextConnRequest, append(clone(b[:len(b)-ed25519.SignatureSize]), key[:]...), sig); err != nil {
		return nil, fmt.Errorf("establishment: %w", err)
	}
	return e, nil
}

// SealRequest seals e to the package's HPKE key and returns the request
// ciphertext that goes into an envelope of the request mailbox. Without a
// proof of work (pkg.ProofBits == 0):
//
//	0   1   version (0x01)
//	1   16  key ID of the package
//	17  …   HPKE base mode (suite of the package, info =
//	        len ‖ LabelSealConnRequest ‖ key ID) of
//	        uint16 length ‖ establishment ‖ zeros, 4096 bytes in all
//
// With one (pkg.ProofBits > 0; see connpow.go for the proof):
//
//	0   1   version (0x02)
//	1   16  key ID of the package
//	17  8   proof of work nonce
//	25  …   sealed establishment as above
//
// Solving the proof takes 2^ProofBits hashes on average; it stops with
// ctx's error when ctx ends first. The padding gives every request of a
// suite the same size, whoever sends it. The key ID is visible to hosts;
// it only names a package the host handed out itself.
func SealRequest(ctx context.Context, pkg *ConnPackage, e *Establishment) ([]byte, error) {
	body := e.Marshal()
	if 2+len(body) > requestPadSize {
		return nil, fmt.Errorf("%w: establishment of %d bytes does not fit the %d-byte padding", ErrInvalidParams, len(body), requestPadSize)
	}
	padded := make([]byte, requestPadSize)
	binary.BigEndian.PutUint16(padded, uint16(len(body)))
	copy(padded[2:], body)
	recipient := &PublicIdentity{Suite: pkg.Suite, HPKEPub: pkg.HPKEPub}
	id := pkg.KeyID()
	sealed, err := sealLabelled(recipient, LabelSealConnRequest, id[:], padded)
	if err != nil {
		return nil, err
	}
	if pkg.ProofBits == 0 {
		out := make([]byte, 0, requestCiphertextHead+len(sealed))
		out = append(out, connRequestVersion)
		out = append(out, id[:]...)
		return append(out, sealed...), nil
	}
	out := make([]byte, requestProofHead, requestProofHead+len(sealed))
	out[0] = connRequestVersionProof
	copy(out[1:], id[:])
	out = append(out, sealed...)
	if err := solveRequestProof(ctx, out, pkg.Mailbox(), pkg.ProofBits); err != nil {
		return nil, err
	}
	return out, nil
}

// requestParts splits a request ciphertext of either version into its
// key ID and sealed part, checking only the header.
func requestParts(ct []byte) (id ConnKeyID, sealed []byte, err error) {
	if len(ct) == 0 {
		return id, nil, fmt.Errorf("%w: empty request", ErrMalformed)
	}
	head := 0
	switch ct[0] {
	case connRequestVersion:
		head = requestCiphertextHead
	case connRequestVersionProof:
		head = requestProofHead
	default:
		return id, nil, fmt.Errorf("%w: request version %d, want %d or %d", ErrMalformed, ct[0], connRequestVersion, connRequestVersionProof)
	}
	if len(ct) < head {
		return id, nil, fmt.Errorf("%w: request of %d bytes", ErrMalformed, len(ct))
	}
	copy(id[:], ct[1:requestCiphertextHead])
	return id, ct[head:], nil
}

// RequestKeyID reads the key ID of a request ciphertext, so the recipient
// finds the secret to open it with (or drops it unopened).
func RequestKeyID(ct []byte) (ConnKeyID, error) {
	id, _, err := requestParts(ct)
	return id, err
}

// OpenRequest opens a request ciphertext (either version) sealed to this
// secret and returns the verified establishment. It does not look at the
// proof of work: check it first with CheckRequestProof, which costs far
// less than opening. Errors: ErrMalformed, ErrDecrypt (not sealed to this
// key, or tampered), ErrBadSignature.
func (s *ConnSecret) OpenRequest(ct []byte) (*Establishment, error) {
	id, sealed, err := requestParts(ct)
	if err != nil {
		return nil, err
	}
	if id != s.id {
		return nil, fmt.Errorf("%w: request is for another package key", ErrDecrypt)
	}
	if want := s.suite.SealOverhead() + requestPadSize; len(sealed) != want {
		return nil, fmt.Errorf("%w: sealed request is %d bytes, want %d", ErrMalformed, len(sealed), want)
	}
	pt, err := hpke.Open(s.priv, hpkeKDF(), hpkeAEAD(), hpkeInfo(LabelSealConnRequest, id[:]), sealed)
	if err != nil {
		return nil, fmt.Errorf("%w: request not sealed to this package key, or tampered", ErrDecrypt)
	}
	n := int(binary.BigEndian.Uint16(pt))
	if 2+n > len(pt) {
		return nil, fmt.Errorf("%w: padded request announces %d bytes", ErrMalformed, n)
	}
	for _, c := range pt[2+n:] {
		if c != 0 {
			return nil, fmt.Errorf("%w: non-zero request padding", ErrMalformed)
		}
	}
	return ParseEstablishment(pt[2:2+n], id)
}
