package groupstate

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/meshnode/meshnode/keymgmt"
)

// KeyUpdateMode says how a rotation distributes the new epoch's secrets.
type KeyUpdateMode uint8

const (
	// ModeDirect: the secrets are sealed with HPKE to every member (key
	// update version 1). Used below TreeMinMembers.
	ModeDirect KeyUpdateMode = 0
	// ModeFull: the managers drew a new tree seed; every member gets its
	// new leaf key by HPKE and every node key is wrapped under its
	// children (key update version 2). Used when the tree is set up, and
	// when a member who held the seed (a manager, now or since the last
	// seed) is removed or made a reader.
	ModeFull KeyUpdateMode = 1
	// ModePath: only the nodes the layout marked are replaced, each
	// wrapped under its children (key update version 2): about 2·log2 n
	// symmetric wraps for a removal, none for a periodic rotation.
	ModePath KeyUpdateMode = 2
)

// String names the mode.
func (m KeyUpdateMode) String() string {
	switch m {
	case ModeDirect:
		return "direct"
	case ModeFull:
		return "full tree"
	case ModePath:
		return "tree path"
	}
	return fmt.Sprintf("KeyUpdateMode(%d)", uint8(m))
}

// KeyUpdateTreeVersion is the version of key update parts of the tree
// modes.
const KeyUpdateTreeVersion = 2

// TreeScope is the part of the trees a key update part serves: both trees,
// or the subtree under one node. A member reads the part whose scope holds
// its leaf; it finds there everything it needs.
type TreeScope struct {
	All  bool
	Tree keymgmt.TreeID
	Node uint32
}

// holds reports whether a leaf is served by the scope.
func (s TreeScope) holds(l Leaf) bool {
	return s.All || (s.Tree == l.Tree && keymgmt.InSubtree(l.Node, s.Node))
}

// TreeWrap is a node key wrapped under its child Child's key (the wrapped
// node is Child's parent).
type TreeWrap struct {
	Tree    keymgmt.TreeID
	Child   uint32
	Wrapped []byte
}

func (w TreeWrap) ref() nodeRef { return nodeRef{w.Tree, w.Child} }

// TreeSeal is an HPKE seal to the member at a leaf: its new leaf key, or
// the tree seed for a manager.
type TreeSeal struct {
	Tree   keymgmt.TreeID
	Leaf   uint32
	Sealed []byte
}

// TreeUpdate is the tree part of a version-2 key update part.
type TreeUpdate struct {
	Mode KeyUpdateMode
	// Depths are both trees' depths at the rotation (-1: empty).
	Depths [2]int
	Scope  TreeScope
	// SeedSeals seal the tree seed to managers (writers' tree leaves).
	SeedSeals []TreeSeal
	// LeafSeals seal new leaf keys to members (ModeFull only).
	LeafSeals []TreeSeal
	// Wraps, bottom-up: by tree, then the child's level, then its index.
	Wraps []TreeWrap
	// Writers and Readers are the epoch's secrets wrapped under the
	// writers' root (with W) and the readers' root (without); nil when
	// the part does not serve that tree.
	Writers, Readers []byte
}

// Version-2 key update part encoding (integers big-endian):
//
//	1   version (0x02)
//	2   part index ‖ 2 part count
//	2   rotate event length E, then E bytes of the event
//	1   mode (1 full, 2 path)
//	1   writers' depth + 1 ‖ 1 readers' depth + 1   (0: empty tree; at most 17)
//	1   scope tree (0 writers, 1 readers, 0xff both) ‖ 4 scope node (0 for both)
//	2   S, then S × (4 leaf node ‖ 2+L sealed seed), ascending by node
//	4   L, then L × (1 tree ‖ 4 leaf node ‖ 2+L sealed leaf key), ascending
//	4   N, then N × (1 tree ‖ 4 child node ‖ 72 wrapped parent key),
//	    strictly ascending by (tree, level of the child, child)
//	1   flags (bit 0 writers' secrets, bit 1 readers' secrets), then the
//	    present ones: 2+L wrapped secrets each, writers' first
const (
	scopeAll      = 0xff
	treeFlagW     = 0x01
	treeFlagR     = 0x02
	maxTreeSealed = 2048 // a post-quantum seal of a seed is 1,177 bytes
)

func appendTreeUpdate(b []byte, t *TreeUpdate) []byte {
	b = append(b, byte(t.Mode), byte(t.Depths[0]+1), byte(t.Depths[1]+1))
	if t.Scope.All {
		b = append(b, scopeAll, 0, 0, 0, 0)
	} else {
		b = append(b, byte(t.Scope.Tree))
		b = binary.BigEndian.AppendUint32(b, t.Scope.Node)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(t.SeedSeals)))
	for _, s := range t.SeedSeals {
		b = binary.BigEndian.AppendUint32(b, s.Leaf)
		b = binary.BigEndian.AppendUint16(b, uint16(len(s.Sealed)))
		b = append(b, s.Sealed...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(t.LeafSeals)))
	for _, s := range t.LeafSeals {
		b = append(b, byte(s.Tree))
		b = binary.BigEndian.AppendUint32(b, s.Leaf)
		b = binary.BigEndian.AppendUint16(b, uint16(len(s.Sealed)))
		b = append(b, s.Sealed...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(t.Wraps)))
	for _, w := range t.Wraps {
		b = append(b, byte(w.Tree))
		b = binary.BigEndian.AppendUint32(b, w.Child)
		b = append(b, w.Wrapped...)
	}
	var flags byte
	if t.Writers != nil {
		flags |= treeFlagW
	}
	if t.Readers != nil {
		flags |= treeFlagR
	}
	b = append(b, flags)
	for _, s := range [][]byte{t.Writers, t.Readers} {
		if s != nil {
			b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
			b = append(b, s...)
		}
	}
	return b
}

// treeUpdateSize is the encoded size of t.
func treeUpdateSize(t *TreeUpdate) int {
	n := 3 + 5 + 2 + 4 + 4 + 1
	for _, s := range t.SeedSeals {
		n += 4 + 2 + len(s.Sealed)
	}
	for _, s := range t.LeafSeals {
		n += 1 + 4 + 2 + len(s.Sealed)
	}
	n += len(t.Wraps) * (1 + 4 + keymgmt.TreeKeyWrapSize)
	for _, s := range [][]byte{t.Writers, t.Readers} {
		if s != nil {
			n += 2 + len(s)
		}
	}
	return n
}

func readTreeUpdate(d *decoder) (*TreeUpdate, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: key tree: %s", ErrKeyUpdateMalformed, fmt.Sprintf(format, args...))
	}
	t := &TreeUpdate{Mode: KeyUpdateMode(d.u8())}
	t.Depths[0], t.Depths[1] = int(d.u8())-1, int(d.u8())-1
	if st := d.u8(); st == scopeAll {
		t.Scope.All = true
		if d.u32() != 0 {
			return nil, bad("a scope of both trees names a node")
		}
	} else {
		t.Scope.Tree, t.Scope.Node = keymgmt.TreeID(st), d.u32()
	}
	if !d.ok {
		return nil, bad("truncated header")
	}
	if err := t.checkHeader(); err != nil {
		return nil, err
	}
	ns := int(d.u16())
	if ns > d.remaining()/(4+2+1) {
		return nil, bad("%d seed seals do not fit the %d remaining bytes", ns, d.remaining())
	}
	t.SeedSeals = make([]TreeSeal, ns)
	for i := range t.SeedSeals {
		s := &t.SeedSeals[i]
		s.Tree, s.Leaf = keymgmt.TreeWriters, d.u32()
		s.Sealed = slices.Clone(d.take(int(d.u16())))
		if !d.ok {
			return nil, bad("seed seal %d truncated", i)
		}
	}
	nl := d.u32()
	if !d.ok || uint64(nl) > uint64(d.remaining()/(1+4+2+1)) {
		return nil, bad("%d leaf seals do not fit the %d remaining bytes", nl, d.remaining())
	}
	t.LeafSeals = make([]TreeSeal, nl)
	for i := range t.LeafSeals {
		s := &t.LeafSeals[i]
		s.Tree, s.Leaf = keymgmt.TreeID(d.u8()), d.u32()
		s.Sealed = slices.Clone(d.take(int(d.u16())))
		if !d.ok {
			return nil, bad("leaf seal %d truncated", i)
		}
	}
	nw := d.u32()
	if !d.ok || uint64(nw) > uint64(d.remaining()/(1+4+keymgmt.TreeKeyWrapSize)) {
		return nil, bad("%d wraps do not fit the %d remaining bytes", nw, d.remaining())
	}
	t.Wraps = make([]TreeWrap, nw)
	for i := range t.Wraps {
		w := &t.Wraps[i]
		w.Tree, w.Child = keymgmt.TreeID(d.u8()), d.u32()
		w.Wrapped = slices.Clone(d.take(keymgmt.TreeKeyWrapSize))
		if !d.ok {
			return nil, bad("wrap %d truncated", i)
		}
	}
	flags := d.u8()
	if !d.ok || flags&^(treeFlagW|treeFlagR) != 0 {
		return nil, bad("secrets flags %#x", flags)
	}
	if flags&treeFlagW != 0 {
		t.Writers = slices.Clone(d.take(int(d.u16())))
	}
	if flags&treeFlagR != 0 {
		t.Readers = slices.Clone(d.take(int(d.u16())))
	}
	if !d.ok {
		return nil, bad("wrapped secrets truncated")
	}
	return t, t.validate()
}

// checkHeader checks the mode, depths and scope.
func (t *TreeUpdate) checkHeader() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: key tree: %s", ErrKeyUpdateMalformed, fmt.Sprintf(format, args...))
	}
	if t.Mode != ModeFull && t.Mode != ModePath {
		return bad("mode %d", t.Mode)
	}
	for tr, d := range t.Depths {
		if d < -1 || d > keymgmt.MaxTreeDepth {
			return bad("the %s tree claims depth %d, at most %d", keymgmt.TreeID(tr), d, keymgmt.MaxTreeDepth)
		}
	}
	if t.Depths[keymgmt.TreeWriters] < 0 {
		return bad("no writers' tree (a group always has a manager)")
	}
	if !t.Scope.All {
		if !t.Scope.Tree.Valid() {
			return bad("scope in tree %d", t.Scope.Tree)
		}
		if !keymgmt.NodeInTree(t.Scope.Node, t.Depths[t.Scope.Tree]) {
			return bad("scope node %d is not in the %s tree of depth %d", t.Scope.Node, t.Scope.Tree, t.Depths[t.Scope.Tree])
		}
	}
	return nil
}

// validate checks every encoding rule of a tree update.
func (t *TreeUpdate) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: key tree: %s", ErrKeyUpdateMalformed, fmt.Sprintf(format, args...))
	}
	if err := t.checkHeader(); err != nil {
		return err
	}
	if t.Mode == ModePath && len(t.LeafSeals) > 0 {
		return bad("new leaf keys in a path update")
	}
	if len(t.SeedSeals) > 0xffff {
		return bad("%d seed seals", len(t.SeedSeals))
	}
	checkSeals := func(what string, seals []TreeSeal) error {
		for i, s := range seals {
			switch {
			case !s.Tree.Valid() || !keymgmt.IsLeaf(s.Leaf) || !keymgmt.NodeInTree(s.Leaf, t.Depths[s.Tree]):
				return bad("%s %d for node %d, not a leaf of the %s tree", what, i, s.Leaf, s.Tree)
			case !t.Scope.holds(Leaf{s.Tree, s.Leaf}):
				return bad("%s %d for a leaf outside the part's scope", what, i)
			case len(s.Sealed) == 0 || len(s.Sealed) > maxTreeSealed:
				return bad("%s %d of %d bytes", what, i, len(s.Sealed))
			case i > 0 && compareNodeRef(nodeRef{seals[i-1].Tree, seals[i-1].Leaf}, nodeRef{s.Tree, s.Leaf}) >= 0:
				return bad("%s not strictly ascending at %d", what, i)
			}
		}
		return nil
	}
	for _, s := range t.SeedSeals {
		if s.Tree != keymgmt.TreeWriters {
			return bad("a seed seal in the %s tree", s.Tree)
		}
	}
	if err := checkSeals("seed seal", t.SeedSeals); err != nil {
		return err
	}
	if err := checkSeals("leaf seal", t.LeafSeals); err != nil {
		return err
	}
	for i, w := range t.Wraps {
		d := -2
		if w.Tree.Valid() {
			d = t.Depths[w.Tree]
		}
		switch {
		case d < 0 || !keymgmt.NodeInTree(w.Child, d):
			return bad("wrap %d under node %d, which is not in the %s tree of depth %d", i, w.Child, w.Tree, d)
		case w.Child == keymgmt.TreeRoot(d):
			return bad("wrap %d under the root of the %s tree, which has no parent", i, w.Tree)
		case len(w.Wrapped) != keymgmt.TreeKeyWrapSize:
			return bad("wrap %d of %d bytes, want %d", i, len(w.Wrapped), keymgmt.TreeKeyWrapSize)
		case i > 0 && compareNodeRef(t.Wraps[i-1].ref(), w.ref()) >= 0:
			return bad("wraps not strictly ascending at %d", i)
		}
	}
	for tr, s := range [][]byte{t.Writers, t.Readers} {
		if s == nil {
			continue
		}
		switch {
		case t.Depths[tr] < 0:
			return bad("secrets for the empty %s tree", keymgmt.TreeID(tr))
		case !t.Scope.All && t.Scope.Tree != keymgmt.TreeID(tr):
			return bad("%s secrets in a part of the other tree", keymgmt.TreeID(tr))
		case len(s) != keymgmt.TreeSecretsWrapSize(tr == int(keymgmt.TreeReaders)):
			return bad("%s secrets of %d bytes", keymgmt.TreeID(tr), len(s))
		}
	}
	return nil
}

// wrapFor finds the wrap under a node, if the part has one.
func (t *TreeUpdate) wrapFor(r nodeRef) ([]byte, bool) {
	i, ok := slices.BinarySearchFunc(t.Wraps, r, func(w TreeWrap, r nodeRef) int { return compareNodeRef(w.ref(), r) })
	if !ok {
		return nil, false
	}
	return t.Wraps[i].Wrapped, true
}

// wrapsParent reports whether the part wraps a node (under either child).
func (t *TreeUpdate) wrapsParent(tree keymgmt.TreeID, node uint32) bool {
	l, r := keymgmt.NodeChildren(node)
	_, a := t.wrapFor(nodeRef{tree, l})
	_, b := t.wrapFor(nodeRef{tree, r})
	return a || b
}

// sealFor finds the seal for a leaf.
func sealFor(seals []TreeSeal, l Leaf) ([]byte, bool) {
	i, ok := slices.BinarySearchFunc(seals, nodeRef{l.Tree, l.Node}, func(s TreeSeal, r nodeRef) int {
		return compareNodeRef(nodeRef{s.Tree, s.Leaf}, r)
	})
	if !ok {
		return nil, false
	}
	return seals[i].Sealed, true
}

// equalTreeUpdates compares two tree updates (tests).
func equalTreeUpdates(a, b *TreeUpdate) bool {
	return bytes.Equal(appendTreeUpdate(nil, a), appendTreeUpdate(nil, b))
}
