package reconcile

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/meshnode/meshnode/envelope"
)

// IDSize is the size of an envelope ID.
const IDSize = len(envelope.ID{})

// Trie shape. The ID space is a trie of fan-out 16: a node at level l is
// the set of IDs whose first 4·l bits equal its prefix. Level 0 is the
// whole space. Both sides cut the space the same way, so a message names
// nodes implicitly (by their order) and never carries bounds.
const (
	// FanoutBits is the bits of ID consumed per level: 16 children.
	FanoutBits = 4
	// Fanout is the number of children of a node.
	Fanout = 1 << FanoutBits
	// MaxLevel is the deepest level a node may have (64 bits of prefix).
	MaxLevel = 64 / FanoutBits
)

// Node is one node of the ID trie: the IDs whose first 4·Level bits equal
// Prefix (right-aligned). The zero Node is the whole ID space.
type Node struct {
	Level  int
	Prefix uint64
}

// NodeOf returns the node at level holding id.
func NodeOf(id envelope.ID, level int) Node {
	if level == 0 {
		return Node{}
	}
	return Node{Level: level, Prefix: binary.BigEndian.Uint64(id[:8]) >> (64 - FanoutBits*level)}
}

// Valid reports whether n is a node of the trie.
func (n Node) Valid() bool {
	if n.Level < 0 || n.Level > MaxLevel {
		return false
	}
	return n.Level == MaxLevel || n.Prefix>>(FanoutBits*n.Level) == 0
}

// Child returns the i-th descendant of n depth levels down (0 ≤ i <
// 16^depth), in ID order.
func (n Node) Child(depth int, i uint64) Node {
	return Node{Level: n.Level + depth, Prefix: n.Prefix<<(FanoutBits*depth) | i}
}

// Contains reports whether id lies in n.
func (n Node) Contains(id envelope.ID) bool { return NodeOf(id, n.Level) == n }

// Bounds returns the first ID of n and the first ID after it; last is
// true when n reaches the end of the ID space (hi is then meaningless).
// Stores scan [lo, hi) of their ID index to list a node.
func (n Node) Bounds() (lo, hi envelope.ID, last bool) {
	if n.Level == 0 {
		return lo, hi, true
	}
	shift := 64 - FanoutBits*n.Level
	binary.BigEndian.PutUint64(lo[:8], n.Prefix<<shift)
	next, carry := bits.Add64(n.Prefix, 1, 0)
	if carry != 0 || (n.Level < MaxLevel && next>>(FanoutBits*n.Level) != 0) {
		return lo, hi, true
	}
	binary.BigEndian.PutUint64(hi[:8], next<<shift)
	return lo, hi, false
}

func (n Node) String() string {
	if n.Level == 0 {
		return "root"
	}
	return fmt.Sprintf("%0*x/%d", n.Level, n.Prefix, n.Level)
}

// childIndex returns which of the 16^depth descendants of n (at n.Level
// + depth) holds id, which n must contain.
func (n Node) childIndex(id envelope.ID, depth int) uint64 {
	c := NodeOf(id, n.Level+depth)
	return c.Prefix & (1<<(FanoutBits*depth) - 1)
}
