package reconcile

import (
	"crypto/sha256"
	"encoding/binary"
	"math/bits"

	"github.com/meshnode/meshnode/envelope"
)

// FingerprintSize is the size of a node fingerprint on the wire.
const FingerprintSize = 4

// SaltSize is the size of the session salt the initiator draws.
const SaltSize = 16

// Labels of the three SHA-256 uses of a session. They are part of the
// protocol: changing one is a new protocol version.
const (
	FingerprintLabel = "meshnode/v2/reconcile-fingerprint"
	ItemLabel        = "meshnode/v2/reconcile-item"
	CheckLabel       = "meshnode/v2/reconcile-check"
)

// Fingerprint is a session's summary of the IDs of a node:
//
//	SHA-256(FingerprintLabel ‖ salt ‖ sum ‖ uint64be(count))[:4]
//
// where sum is the sum of the IDs, each read as a little-endian 256-bit
// integer, modulo 2^256 (see the package documentation).
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

func (s sum256) add(t sum256) sum256 {
	var c uint64
	s[0], c = bits.Add64(s[0], t[0], 0)
	s[1], c = bits.Add64(s[1], t[1], c)
	s[2], c = bits.Add64(s[2], t[2], c)
	s[3], _ = bits.Add64(s[3], t[3], c)
	return s
}

func (s sum256) sub(t sum256) sum256 {
	var b uint64
	s[0], b = bits.Sub64(s[0], t[0], 0)
	s[1], b = bits.Sub64(s[1], t[1], b)
	s[2], b = bits.Sub64(s[2], t[2], b)
	s[3], _ = bits.Sub64(s[3], t[3], b)
	return s
}

// Accumulator is the additive summary of a multiset of IDs: their sum
// modulo 2^256 and their count. It is what a store keeps per trie node
// and updates on insert and delete; a session hashes it with its salt
// into a Fingerprint. The zero value is the empty set.
type Accumulator struct {
	sum   sum256
	count uint64
}

// AccumulatorOf rebuilds an accumulator from a store's record: the sum
// as little-endian 64-bit limbs (limb 0 least significant) and the count.
func AccumulatorOf(limbs [4]uint64, count uint64) Accumulator {
	return Accumulator{sum: limbs, count: count}
}

// Limbs returns the sum in little-endian 64-bit limbs.
func (a Accumulator) Limbs() [4]uint64 { return a.sum }

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
func (a Accumulator) Count() int { return int(a.count) }

// hasher holds a session's salt and computes its three hashes.
type hasher struct {
	salt [SaltSize]byte
}

// fingerprint hashes an accumulator with the salt.
func (h *hasher) fingerprint(a Accumulator) Fingerprint {
	var buf [len(FingerprintLabel) + SaltSize + IDSize + 8]byte
	n := copy(buf[:], FingerprintLabel)
	n += copy(buf[n:], h.salt[:])
	for i, limb := range a.sum {
		binary.LittleEndian.PutUint64(buf[n+8*i:], limb)
	}
	binary.BigEndian.PutUint64(buf[n+IDSize:], a.count)
	sum := sha256.Sum256(buf[:])
	return Fingerprint(sum[:FingerprintSize])
}

// key is an item's session key: the first 8 bytes of
// SHA-256(ItemLabel ‖ salt ‖ id), big-endian. Cells carry it whole, ID
// lists its top listBytes bytes. Salted, it cannot be chosen in advance by
// whoever writes envelopes, so no crafted pair of IDs collides in it.
func (h *hasher) key(id envelope.ID) uint64 {
	var buf [len(ItemLabel) + SaltSize + IDSize]byte
	n := copy(buf[:], ItemLabel)
	n += copy(buf[n:], h.salt[:])
	copy(buf[n:], id[:])
	sum := sha256.Sum256(buf[:])
	return binary.BigEndian.Uint64(sum[:8])
}

// check returns a key's cell checksum and the seeds of its cell
// positions: SHA-256(CheckLabel ‖ salt ‖ uint64be(key)). A cell is pure
// (holds one key) when its checksum equals check(its key sum).
func (h *hasher) check(key uint64) (uint32, [3]uint32) {
	var buf [len(CheckLabel) + SaltSize + 8]byte
	n := copy(buf[:], CheckLabel)
	n += copy(buf[n:], h.salt[:])
	binary.BigEndian.PutUint64(buf[n:], key)
	sum := sha256.Sum256(buf[:])
	return binary.BigEndian.Uint32(sum[0:]), [3]uint32{
		binary.BigEndian.Uint32(sum[4:]), binary.BigEndian.Uint32(sum[8:]), binary.BigEndian.Uint32(sum[12:]),
	}
}

// listKey is the part of a key an ID list carries: its top listBytes bytes.
func listKey(key uint64) uint64 { return key >> (64 - 8*listBytes) }

// FingerprintOf is the fingerprint of acc in a session with salt: what
// that session's messages carry. Tools and tests use it to check or
// craft messages.
func FingerprintOf(salt [SaltSize]byte, acc Accumulator) Fingerprint {
	h := hasher{salt: salt}
	return h.fingerprint(acc)
}
