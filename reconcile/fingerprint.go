package reconcile

import (
	"crypto/sha256"
	"encoding/binary"
	"math/bits"

	"github.com/meshnode/meshnode/envelope"
)

// FingerprintSize is the size of a range fingerprint on the wire.
const FingerprintSize = 16

// FingerprintLabel prefixes the hashed (sum, count) pair, so a fingerprint
// can never be confused with another SHA-256 use. It is part of the
// protocol: changing it is a new protocol version.
const FingerprintLabel = "meshnode/v1/reconcile-fingerprint"

// Fingerprint summarises the IDs of a range:
//
//	SHA-256(FingerprintLabel ‖ sum ‖ uint64be(count))[:16]
//
// where sum is the sum of the IDs, each read as a little-endian 256-bit
// integer, modulo 2^256. See the package documentation for why this is
// safe here.
type Fingerprint [FingerprintSize]byte

// sum256 is a 256-bit integer in little-endian 64-bit limbs.
type sum256 [4]uint64

func sumOf(id envelope.ID) sum256 {
	return sum256{
		binary.LittleEndian.Uint64(id[0:]),
		binary.LittleEndian.Uint64(id[8:]),
		binary.LittleEndian.Uint64(id[16:]),
		binary.LittleEndian.Uint64(id[24:]),
	}
}

// add returns s+t mod 2^256.
func (s sum256) add(t sum256) sum256 {
	var c uint64
	s[0], c = bits.Add64(s[0], t[0], 0)
	s[1], c = bits.Add64(s[1], t[1], c)
	s[2], c = bits.Add64(s[2], t[2], c)
	s[3], _ = bits.Add64(s[3], t[3], c)
	return s
}

// sub returns s-t mod 2^256.
func (s sum256) sub(t sum256) sum256 {
	var b uint64
	s[0], b = bits.Sub64(s[0], t[0], 0)
	s[1], b = bits.Sub64(s[1], t[1], b)
	s[2], b = bits.Sub64(s[2], t[2], b)
	s[3], _ = bits.Sub64(s[3], t[3], b)
	return s
}

func (s sum256) fingerprint(count uint64) Fingerprint {
	var buf [len(FingerprintLabel) + IDSize + 8]byte
	n := copy(buf[:], FingerprintLabel)
	for i, limb := range s {
		binary.LittleEndian.PutUint64(buf[n+8*i:], limb)
	}
	binary.BigEndian.PutUint64(buf[n+IDSize:], count)
	h := sha256.Sum256(buf[:])
	var fp Fingerprint
	copy(fp[:], h[:])
	return fp
}

// Accumulator computes the fingerprint of a multiset of IDs incrementally.
// Because the sum is additive, a store can keep one per mailbox (or per
// key block) and update it on insert and delete instead of re-reading the
// range. The zero value is the empty set.
type Accumulator struct {
	sum   sum256
	count uint64
}

// Add adds id.
func (a *Accumulator) Add(id envelope.ID) {
	a.sum = a.sum.add(sumOf(id))
	a.count++
}

// Remove removes id, which must have been added.
func (a *Accumulator) Remove(id envelope.ID) {
	a.sum = a.sum.sub(sumOf(id))
	a.count--
}

// Merge adds every ID of o.
func (a *Accumulator) Merge(o Accumulator) {
	a.sum = a.sum.add(o.sum)
	a.count += o.count
}

// Count returns the number of IDs added.
func (a *Accumulator) Count() int { return int(a.count) }

// Fingerprint returns the fingerprint of the IDs added.
func (a *Accumulator) Fingerprint() Fingerprint { return a.sum.fingerprint(a.count) }
