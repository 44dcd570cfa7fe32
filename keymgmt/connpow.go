package keymgmt

import (
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/pow"
)

// Proof of work on request mailboxes. A request mailbox is open to write
// (its write key is in every package) and hosts only rate-limit it, so a
// responder may ask, in its connection packages, for a hashcash-style
// proof: a nonce such that
//
//	digest = SHA-256(LabelConnProof ‖ request mailbox tag (32) ‖
//	                 SHA-256(request without its nonce) ‖ nonce (8))
//
// has at least ProofBits leading zero bits. "Request without its nonce"
// is version ‖ key ID ‖ sealed establishment (layout in connreq.go), so a
// proof is bound to one sealed establishment, its package key and its
// mailbox: it cannot be moved to another request, package or mailbox. The
// ciphertext is fresh for every request (HPKE draws a new ephemeral key),
// so proofs cannot be computed ahead of the request either.
//
// Cost: the initiator computes 2^bits digests on average (geometrically
// distributed: 1 in 20 requests needs three times that), the responder
// one digest and one SHA-256 over the ~4 KB request. Measured with
// BenchmarkSolveRequestProof, BenchmarkCheckRequestProof and
// BenchmarkOpenRequest on one core of the (shared, 2-core AMD EPYC) CI
// machine, about 0.33 µs per digest: 16 bits ≈ 22 ms, 20 bits ≈ 0.35 s,
// 24 bits ≈ 5.6 s per request; a check ≈ 13 µs, against ≈ 0.4 ms for the
// HPKE open it saves on a request without a valid proof.
//
// Why not a memory-hard function (Argon2id from x/crypto): verifying one
// costs as much as one attempt (tens of milliseconds and megabytes at a
// useful setting), so a flood of bad proofs would cost the responder what
// the proofs were meant to cost the sender. Hashcash stays asymmetric; its
// weakness, that GPUs solve it far faster than phones, is bounded by the
// hosts' per-peer rate limits, which stay in place.
const (
	// LabelConnProof prefixes every proof-of-work digest.
	LabelConnProof = "meshnode/v1/conn/proof"
	// ProofNonceSize is the size of the proof nonce in a request.
	ProofNonceSize = pow.NonceSize
	// MaxProofBits caps the difficulty a package may ask for (2^32 digests
	// is over twenty minutes of one core).
	MaxProofBits = pow.MaxBits
	// DefaultAliasProofBits is the difficulty aliases ask for unless told
	// otherwise: about 22 ms for a person who asks once, a ceiling of
	// about 45 requests a second per core for a spammer.
	DefaultAliasProofBits = 16
)

// proofInput returns the digest input with the nonce left zero at its
// end, for a request of version 2.
func proofInput(ct []byte, mailbox envelope.MailboxID) []byte {
	h := sha256.New()
	h.Write(ct[:requestCiphertextHead])
	h.Write(ct[requestProofHead:])
	in := make([]byte, 0, len(LabelConnProof)+len(mailbox)+sha256.Size+ProofNonceSize)
	in = append(in, LabelConnProof...)
	in = append(in, mailbox[:]...)
	in = h.Sum(in)
	return append(in, make([]byte, ProofNonceSize)...)
}

// leadingZeros counts the leading zero bits of a digest.
func leadingZeros(d *[sha256.Size]byte) int { return pow.LeadingZeros(d) }

// solveRequestProof finds a nonce for the version-2 request ct (its nonce
// field is overwritten). Counting from zero is fine: the input is unique
// to this request, so nothing is gained by starting elsewhere.
func solveRequestProof(ctx context.Context, ct []byte, mailbox envelope.MailboxID, want uint8) error {
	in := proofInput(ct, mailbox)
	if err := pow.Solve(ctx, in, want); err != nil {
		return fmt.Errorf("keymgmt: %w", err)
	}
	copy(ct[requestCiphertextHead:requestProofHead], in[len(in)-ProofNonceSize:])
	return nil
}

// CheckRequestProof checks that the request ciphertext ct, found in
// request mailbox mailbox, carries a proof of at least want bits, and
// returns the proof's digest (unique to the request: a responder keeps it
// to drop replays of the same request before opening them). With want 0
// any request passes and the digest is zero. Errors: ErrMalformed, ErrNoProof
// (a version-1 request), ErrBadProof (too few zero bits, or the proof of
// another request, package or mailbox).
func CheckRequestProof(ct []byte, mailbox envelope.MailboxID, want uint8) ([sha256.Size]byte, error) {
	var d [sha256.Size]byte
	if _, _, err := requestParts(ct); err != nil {
		return d, err
	}
	if want == 0 {
		return d, nil
	}
	if ct[0] != connRequestVersionProof {
		return d, fmt.Errorf("%w: the package asks for %d bits and the request carries no proof", ErrNoProof, want)
	}
	in := proofInput(ct, mailbox)
	copy(in[len(in)-ProofNonceSize:], ct[requestCiphertextHead:requestProofHead])
	d = sha256.Sum256(in)
	if got := leadingZeros(&d); got < int(want) {
		return d, fmt.Errorf("%w: %d leading zero bits, the package asks for %d", ErrBadProof, got, want)
	}
	return d, nil
}
