// Package pow is the hashcash-style proof of work meshnode asks for where
// writing is open to anyone: contact requests to a request mailbox
// (keymgmt) and new mailboxes on an open host under load (admission).
//
// A proof is an 8-byte nonce such that SHA-256(input ‖ nonce) has at
// least bits leading zero bits; each use binds the input to what it
// protects (a request, a host and a mailbox), so a proof cannot be moved.
// The sender computes 2^bits digests on average, the checker one.
//
// Why hashcash and not a memory-hard function: checking one costs one
// hash, so a flood of bad proofs costs the checker nothing worth having,
// where a memory-hard check costs as much as an attempt (keymgmt's
// connpow.go has the measurements).
package pow

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// NonceSize is the size of a proof nonce.
const NonceSize = 8

// MaxBits caps any difficulty (2^32 digests is over twenty minutes of one
// core).
const MaxBits = 32

// ErrTooHard: a difficulty above MaxBits.
var ErrTooHard = errors.New("pow: difficulty above the maximum")

// LeadingZeros counts the leading zero bits of a digest.
func LeadingZeros(d *[sha256.Size]byte) int {
	for i, b := range d {
		if b != 0 {
			return i*8 + bits.LeadingZeros8(b)
		}
	}
	return 8 * sha256.Size
}

// Solve finds a nonce for in, whose last NonceSize bytes are the nonce
// (overwritten with the solution). Counting from zero is fine: every use
// binds in to something unique, so nothing is gained by starting
// elsewhere. It returns ctx's error, wrapped, if ctx ends first.
func Solve(ctx context.Context, in []byte, want uint8) error {
	if want > MaxBits {
		return fmt.Errorf("%w: %d bits, at most %d", ErrTooHard, want, MaxBits)
	}
	if len(in) < NonceSize {
		return fmt.Errorf("pow: input of %d bytes has no room for a nonce", len(in))
	}
	nonce := in[len(in)-NonceSize:]
	for n := uint64(0); ; n++ {
		if n&0xffff == 0 && ctx.Err() != nil {
			return fmt.Errorf("pow: proof of %d bits not found after %d tries: %w", want, n, ctx.Err())
		}
		binary.BigEndian.PutUint64(nonce, n)
		if d := sha256.Sum256(in); LeadingZeros(&d) >= int(want) {
			return nil
		}
	}
}

// Check returns the digest of in (nonce included, at its end) and whether
// it has at least want leading zero bits.
func Check(in []byte, want uint8) ([sha256.Size]byte, bool) {
	d := sha256.Sum256(in)
	return d, LeadingZeros(&d) >= int(want)
}
