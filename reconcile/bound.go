package reconcile

import (
	"bytes"
	"encoding/hex"

	"github.com/meshnode/meshnode/envelope"
)

// IDSize is the size of an envelope ID.
const IDSize = len(envelope.ID{})

// Bound is a position in the ascending byte order of envelope IDs: either
// a 32-byte value (an ID, or a short prefix padded with zero bytes) or
// Infinity, which lies above every ID. A range [lo, hi) holds the IDs id
// with lo <= id < hi. The zero Bound is Lowest, at or below every ID.
//
// Bounds chosen by the protocol are the shortest prefixes that separate two
// neighbouring IDs, so on the wire they usually take a few bytes.
type Bound struct {
	v   envelope.ID
	inf bool
}

// Lowest returns the bound at or below every ID (the zero value).
func Lowest() Bound { return Bound{} }

// Infinity returns the bound above every ID.
func Infinity() Bound { return Bound{inf: true} }

// BoundOf returns the bound at id: a range [BoundOf(id), hi) starts with id.
func BoundOf(id envelope.ID) Bound { return Bound{v: id} }

// IsInfinity reports whether b is Infinity.
func (b Bound) IsInfinity() bool { return b.inf }

// Value returns the 32-byte value of a finite bound (a storage seek key);
// for Infinity it returns the zero ID and false.
func (b Bound) Value() (envelope.ID, bool) {
	if b.inf {
		return envelope.ID{}, false
	}
	return b.v, true
}

// Compare returns -1, 0 or +1 as b is below, equal to or above c.
func (b Bound) Compare(c Bound) int {
	switch {
	case b.inf && c.inf:
		return 0
	case b.inf:
		return 1
	case c.inf:
		return -1
	}
	return bytes.Compare(b.v[:], c.v[:])
}

// CompareID returns -1, 0 or +1 as b is below, equal to or above id.
func (b Bound) CompareID(id envelope.ID) int {
	if b.inf {
		return 1
	}
	return bytes.Compare(b.v[:], id[:])
}

// InRange reports whether lo <= id < hi.
func InRange(lo, hi Bound, id envelope.ID) bool {
	return lo.CompareID(id) <= 0 && hi.CompareID(id) > 0
}

// String returns "inf" or the hex of the significant prefix ("" is Lowest).
func (b Bound) String() string {
	if b.inf {
		return "inf"
	}
	return hex.EncodeToString(b.v[:b.prefixLen()])
}

// prefixLen is the number of bytes of b's value up to its last non-zero
// byte: the bytes the wire carries.
func (b Bound) prefixLen() int {
	n := IDSize
	for n > 0 && b.v[n-1] == 0 {
		n--
	}
	return n
}

// Wire form of a bound: one length byte 0..IDSize followed by that many
// bytes of prefix (whose last byte is non-zero), or boundInfinity alone.
const boundInfinity = 0xff

// maxBoundLen is the largest encoding of a bound.
const maxBoundLen = 1 + IDSize

// encodedLen is the size of b on the wire.
func (b Bound) encodedLen() int {
	if b.inf {
		return 1
	}
	return 1 + b.prefixLen()
}

func appendBound(dst []byte, b Bound) []byte {
	if b.inf {
		return append(dst, boundInfinity)
	}
	n := b.prefixLen()
	dst = append(dst, byte(n))
	return append(dst, b.v[:n]...)
}

// between returns the shortest bound m with prev < m <= next, for prev <
// next: next's common prefix with prev plus one byte, padded with zeros.
// It splits a range so that prev falls below and next at or above m.
func between(prev, next envelope.ID) Bound {
	var m Bound
	for i := range IDSize {
		m.v[i] = next[i]
		if prev[i] != next[i] {
			break
		}
	}
	return m
}
