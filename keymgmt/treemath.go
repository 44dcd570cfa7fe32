package keymgmt

import (
	"fmt"
	"math/bits"
)

// Key tree arithmetic (see the package doc, "Key tree"). Nodes of a tree of
// depth d (2^d leaves) are numbered in order, as MLS does (RFC 9420,
// appendix C): leaves have even indices (leaf i is node 2i), a node's level
// is the number of trailing one bits of its index, and the root is node
// 2^d − 1. Growing a tree from depth d to d+1 keeps every node's index: the
// old root becomes the left child of the new root 2^(d+1) − 1, so a member's
// stored path stays valid and only gains a node on top.

// MaxTreeDepth bounds the depth of a key tree: 2^16 leaves, as many as a
// managed group has members (groupstate.MaxMembers). Every decoder refuses
// a deeper tree, so a claimed depth of 2^32 never allocates anything.
const MaxTreeDepth = 16

// TreeID names one of a managed group's two key trees.
type TreeID uint8

const (
	// TreeWriters holds the members with the write role (managers
	// included). Its root key wraps the epoch's writer secrets (R, W).
	TreeWriters TreeID = 0
	// TreeReaders holds the read-only members. Its root key wraps the
	// epoch's reader secrets (R and WPub, never W).
	TreeReaders TreeID = 1
)

// Valid reports whether t names a tree.
func (t TreeID) Valid() bool { return t == TreeWriters || t == TreeReaders }

// String returns "writers" or "readers".
func (t TreeID) String() string {
	switch t {
	case TreeWriters:
		return "writers"
	case TreeReaders:
		return "readers"
	}
	return fmt.Sprintf("tree(%d)", uint8(t))
}

// NodeLevel returns a node's level: 0 for leaves, the depth for a root.
func NodeLevel(x uint32) int { return bits.TrailingZeros32(^x) }

// IsLeaf reports whether x is a leaf node.
func IsLeaf(x uint32) bool { return x&1 == 0 }

// LeafNode returns the node index of leaf i.
func LeafNode(i uint32) uint32 { return 2 * i }

// TreeRoot returns the root node of a tree of the given depth.
func TreeRoot(depth int) uint32 { return 1<<depth - 1 }

// TreeNodes returns the number of nodes of a tree of the given depth.
func TreeNodes(depth int) uint32 { return 1<<(depth+1) - 1 }

// NodeInTree reports whether x is a node of a tree of the given depth.
func NodeInTree(x uint32, depth int) bool {
	return depth >= 0 && depth <= MaxTreeDepth && x < TreeNodes(depth)
}

// NodeParent returns the parent of x in any tree deep enough to hold x
// below its root (the index does not depend on the depth).
func NodeParent(x uint32) uint32 {
	k := NodeLevel(x)
	if x>>(k+1)&1 == 0 {
		return x + 1<<k // a left child
	}
	return x - 1<<k
}

// NodeSibling returns the other child of x's parent.
func NodeSibling(x uint32) uint32 {
	p := NodeParent(x)
	if x < p {
		return p + (p - x)
	}
	return p - (x - p)
}

// NodeChildren returns the children of an internal node (level > 0).
func NodeChildren(x uint32) (left, right uint32) {
	k := NodeLevel(x)
	return x - 1<<(k-1), x + 1<<(k-1)
}

// InSubtree reports whether x is sub or one of its descendants.
func InSubtree(x, sub uint32) bool {
	half := uint32(1)<<NodeLevel(sub) - 1
	return x >= sub-half && x <= sub+half
}

// TreePathNodes returns the nodes from leaf up to the root of a tree of the
// given depth, leaf first (depth+1 nodes). The leaf must be a leaf of that
// tree.
func TreePathNodes(leaf uint32, depth int) ([]uint32, error) {
	if !IsLeaf(leaf) || !NodeInTree(leaf, depth) {
		return nil, fmt.Errorf("%w: node %d is not a leaf of a tree of depth %d", ErrInvalidParams, leaf, depth)
	}
	out := make([]uint32, depth+1)
	out[0] = leaf
	for i := 1; i <= depth; i++ {
		out[i] = NodeParent(out[i-1])
	}
	return out, nil
}
