package groupstate

import (
	"container/heap"
	"slices"

	"github.com/meshnode/meshnode/keymgmt"
)

// The key tree layout (see the package doc, "Key tree"): where each member
// sits in a managed group's two key trees, and which nodes the next
// rotation replaces. It is a pure function of the main line of the state
// chain, kept up to date by Chain.Add, so every member and manager computes
// the same layout from the same chain and nothing about positions travels
// on the wire.
//
// Rules, applied to each main-line event:
//
//   - a member is placed in the writers' tree (write and manage roles) or
//     the readers' tree (read role), at the blank leaf with the smallest
//     index; when the tree is full it grows to twice its width and its new
//     root is marked for refresh;
//   - a removal vacates the member's leaf and marks every ancestor of it
//     for refresh (the removed member knew their keys);
//   - a role change between the trees vacates the old leaf (its ancestors
//     marked) and places the member in the other tree with its new path
//     marked too: it must not read back what that path wrapped before;
//   - an add under from-join history marks the newcomer's path as well (it
//     must not read the epoch it was added in), and records the newcomer as
//     fresh: its welcome, made after the rotation, carries its path keys,
//     so the rotation wraps nothing under its leaf;
//   - a rotate replaces every marked node (its version becomes the rotate
//     event) and clears the marks.

// Leaf is a member's place in the key trees: the tree and the leaf's node
// index.
type Leaf struct {
	Tree keymgmt.TreeID
	Node uint32
}

// treeOf is the tree a role belongs in.
func treeOf(r Role) keymgmt.TreeID {
	if r.CanWrite() {
		return keymgmt.TreeWriters
	}
	return keymgmt.TreeReaders
}

// nodeRef names a node of one of the trees.
type nodeRef struct {
	tree keymgmt.TreeID
	node uint32
}

// oneTree is the layout of one key tree.
type oneTree struct {
	// depth is -1 while the tree is empty (never held a leaf).
	depth int
	// next is the number of leaves ever used; free holds the blank ones
	// below it (a min-heap).
	next uint32
	free leafHeap
	// occ counts occupied leaves under each node; who names the member
	// at each leaf (by leaf number, node/2).
	occ []uint32
	who [][32]byte
	// refreshed is, per node, the epoch of the last rotate that replaced
	// it (0: never).
	refreshed []uint64
}

func (t *oneTree) width() uint32 {
	if t.depth < 0 {
		return 0
	}
	return 1 << t.depth
}

// A tree never needs more than 2^MaxTreeDepth leaves: a group has at most
// MaxMembers members, and a leaf is reused before the tree grows.
const _ = uint(1<<keymgmt.MaxTreeDepth - MaxMembers)

// grow doubles the tree (depth -1 → 0 → 1 …), keeping every node index.
func (t *oneTree) grow() {
	t.depth++
	n := int(keymgmt.TreeNodes(t.depth))
	t.occ = append(t.occ, make([]uint32, n-len(t.occ))...)
	if t.depth > 0 {
		// Everything below the old root is below the new one.
		t.occ[keymgmt.TreeRoot(t.depth)] = t.occ[keymgmt.TreeRoot(t.depth-1)]
	}
	t.refreshed = append(t.refreshed, make([]uint64, n-len(t.refreshed))...)
	t.who = append(t.who, make([][32]byte, int(t.width())-len(t.who))...)
}

type leafHeap []uint32

func (h leafHeap) Len() int           { return len(h) }
func (h leafHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h leafHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *leafHeap) Push(x any)        { *h = append(*h, x.(uint32)) }
func (h *leafHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// treeLayout is the layout of a chain's main line.
type treeLayout struct {
	trees [2]oneTree
	pos   map[[32]byte]Leaf
	// dirty are the nodes the next rotate replaces.
	dirty map[nodeRef]struct{}
	// fresh are members added under from-join history since the last
	// rotate (no wrap under their leaf: their welcome carries the path).
	fresh map[[32]byte]struct{}
	// revoked are members removed or moved to the readers' tree since the
	// last rotate (a manager among them forces a new tree seed).
	revoked [][32]byte
	// managers is the set of managers now, and managersAtRotate at the
	// last rotate (those since get the tree seed with the next rotation).
	managers         map[[32]byte]struct{}
	managersAtRotate map[[32]byte]struct{}
	// depthAt holds both trees' depths at each rotate, by new epoch.
	depthAt map[uint64][2]int
}

func newTreeLayout() *treeLayout {
	l := &treeLayout{
		pos:              map[[32]byte]Leaf{},
		dirty:            map[nodeRef]struct{}{},
		fresh:            map[[32]byte]struct{}{},
		managers:         map[[32]byte]struct{}{},
		managersAtRotate: map[[32]byte]struct{}{},
		depthAt:          map[uint64][2]int{},
	}
	l.trees[0].depth, l.trees[1].depth = -1, -1
	return l
}

func (l *treeLayout) depths() [2]int { return [2]int{l.trees[0].depth, l.trees[1].depth} }

// markPath marks the strict ancestors of a leaf for refresh.
func (l *treeLayout) markPath(tree keymgmt.TreeID, leaf uint32) {
	t := &l.trees[tree]
	for x := leaf; x != keymgmt.TreeRoot(t.depth); {
		x = keymgmt.NodeParent(x)
		l.dirty[nodeRef{tree, x}] = struct{}{}
	}
}

// place puts a member at the smallest blank leaf of a tree.
func (l *treeLayout) place(key [32]byte, tree keymgmt.TreeID, refresh, fresh bool) {
	t := &l.trees[tree]
	var leaf uint32
	if t.free.Len() > 0 {
		leaf = heap.Pop(&t.free).(uint32)
	} else {
		for t.next >= t.width() {
			t.grow()
			if t.depth > 0 {
				// Nobody knows the new root yet.
				l.dirty[nodeRef{tree, keymgmt.TreeRoot(t.depth)}] = struct{}{}
			}
		}
		leaf = t.next
		t.next++
	}
	node := keymgmt.LeafNode(leaf)
	t.who[leaf] = key
	for x := node; ; x = keymgmt.NodeParent(x) {
		t.occ[x]++
		if x == keymgmt.TreeRoot(t.depth) {
			break
		}
	}
	l.pos[key] = Leaf{Tree: tree, Node: node}
	if refresh {
		l.markPath(tree, node)
	}
	if fresh {
		l.fresh[key] = struct{}{}
	}
}

// vacate blanks a member's leaf and marks its ancestors.
func (l *treeLayout) vacate(key [32]byte) {
	p, ok := l.pos[key]
	if !ok {
		return
	}
	t := &l.trees[p.Tree]
	for x := p.Node; ; x = keymgmt.NodeParent(x) {
		t.occ[x]--
		if x == keymgmt.TreeRoot(t.depth) {
			break
		}
	}
	t.who[p.Node/2] = [32]byte{}
	heap.Push(&t.free, p.Node/2)
	delete(l.pos, key)
	delete(l.fresh, key)
	l.markPath(p.Tree, p.Node)
}

// apply updates the layout for a main-line event. roles holds, for each
// key the event affects, the role before it (0: not a member); after is
// the state after it.
func (l *treeLayout) apply(ev *Event, before map[[32]byte]Role, after *State) {
	if ev.Kind == EventRotate {
		for ref := range l.dirty {
			l.trees[ref.tree].refreshed[ref.node] = ev.Epoch
		}
		clear(l.dirty)
		clear(l.fresh)
		l.revoked = l.revoked[:0]
		l.managersAtRotate = maps2set(l.managers)
		l.depthAt[ev.Epoch] = l.depths()
		return
	}
	keys := make([][32]byte, 0, len(before))
	for k := range before {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [32]byte) int { return slices.Compare(a[:], b[:]) })
	for _, k := range keys {
		was := before[k]
		var now Role
		if m, ok := after.Members[k]; ok {
			now = m.Role
		}
		if now.CanManage() {
			l.managers[k] = struct{}{}
		} else {
			delete(l.managers, k)
		}
		switch {
		case was == 0 && now == 0:
			continue
		case was == 0:
			fromJoin := ev.Kind == EventAdd && after.Policy.History == HistoryFromJoin
			l.place(k, treeOf(now), fromJoin, fromJoin)
		case now == 0:
			l.vacate(k)
			l.revoked = append(l.revoked, k)
		case treeOf(was) != treeOf(now):
			l.vacate(k)
			l.place(k, treeOf(now), true, false)
			if !now.CanWrite() {
				l.revoked = append(l.revoked, k)
			}
		}
	}
}

func maps2set(m map[[32]byte]struct{}) map[[32]byte]struct{} {
	out := make(map[[32]byte]struct{}, len(m))
	for k := range m {
		out[k] = struct{}{}
	}
	return out
}

// occupied reports whether a node has a member below it (or is one).
func (l *treeLayout) occupied(tree keymgmt.TreeID, node uint32) bool {
	t := &l.trees[tree]
	return int(node) < len(t.occ) && t.occ[node] > 0
}

// sortedDirty returns the marked nodes bottom-up: by tree, level, index.
func (l *treeLayout) sortedDirty() []nodeRef {
	out := make([]nodeRef, 0, len(l.dirty))
	for r := range l.dirty {
		out = append(out, r)
	}
	slices.SortFunc(out, compareNodeRef)
	return out
}

// compareNodeRef orders nodes bottom-up: by tree, then level, then index.
func compareNodeRef(a, b nodeRef) int {
	switch {
	case a.tree != b.tree:
		return int(a.tree) - int(b.tree)
	case keymgmt.NodeLevel(a.node) != keymgmt.NodeLevel(b.node):
		return keymgmt.NodeLevel(a.node) - keymgmt.NodeLevel(b.node)
	case a.node < b.node:
		return -1
	case a.node > b.node:
		return 1
	}
	return 0
}
