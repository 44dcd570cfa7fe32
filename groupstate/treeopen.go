package groupstate

import (
	"bytes"
	"fmt"

	"github.com/meshnode/meshnode/keymgmt"
)

// openTree opens this member's share of a key tree part: its leaf and role
// at the rotation come from the chain's layout (the rotate event is in the
// chain), the part must serve that leaf (else keymgmt.ErrNotRecipient: try
// the other parts), and the path is walked from the leaf up: each node
// wrapped under the child below it is opened with that child's key, the
// others keep the key held. The root's key opens the tree's epoch
// secrets. held is the member's path before the rotation (nil: none).
func (c *Chain) openTree(id *keymgmt.Identity, held *keymgmt.TreePath, ku *KeyUpdate) (*RotatedKeys, error) {
	t := ku.Tree
	rotID := ku.Head()
	ne := ku.NewEpoch()
	e, ok := c.entries[rotID]
	if !ok || !e.onMain {
		return nil, fmt.Errorf("%w: rotation %s is not on the main line", ErrKeyUpdateInvalid, rotID.Short())
	}
	who := keymgmt.Fingerprint(id.SigningKey())
	m, ok := c.markAt([32]byte(id.SigningKey()), e.at)
	if !ok || m.role == 0 {
		return nil, fmt.Errorf("%w: %s is not a member after the rotation to epoch %d", keymgmt.ErrNotRecipient, who, ne)
	}
	if want := c.layout.depthAt[ne]; want != t.Depths {
		return nil, fmt.Errorf("%w: the key update's trees have depths %v, the chain's %v", ErrKeyUpdateInvalid, t.Depths, want)
	}
	leaf := m.leaf
	if !t.Scope.holds(leaf) {
		return nil, fmt.Errorf("%w: part %d of %d serves other members (%s is at %s leaf %d)", keymgmt.ErrNotRecipient, ku.Part+1, ku.Parts, who, leaf.Tree, leaf.Node)
	}
	if treeOf(m.role) != leaf.Tree {
		return nil, fmt.Errorf("%w: role %s in the %s tree", ErrKeyUpdateInvalid, m.role, leaf.Tree)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: key update to epoch %d, part %d of %d, for %s: "+format,
			append([]any{ErrKeyUpdateInvalid, ne, ku.Part + 1, ku.Parts, who}, args...)...)
	}
	scope := treeScope(c.group, ne, rotID)
	depth := t.Depths[leaf.Tree]
	nodes, err := keymgmt.TreePathNodes(leaf.Node, depth)
	if err != nil {
		return nil, bad("%v", err)
	}
	keys := make([]keymgmt.TreeKey, len(nodes))
	switch {
	case t.Mode == ModeFull:
		sealed, ok := sealFor(t.LeafSeals, leaf)
		if !ok {
			return nil, bad("a new tree seed but no new leaf key for %s leaf %d", leaf.Tree, leaf.Node)
		}
		if keys[0], err = id.OpenTreeLeaf(treeNodeCtx(scope, leaf.Tree, leaf.Node), sealed); err != nil {
			return nil, bad("leaf key: %w", err)
		}
	case held == nil:
		return nil, bad("this member holds no key tree path (the tree was set up without it)")
	default:
		keys[0] = held.Keys[0]
	}
	known := map[uint32]keymgmt.TreeKey{}
	if held != nil && held.Tree == leaf.Tree && t.Mode == ModePath {
		for i, x := range held.Nodes() {
			known[x] = held.Keys[i]
		}
	}
	for i := 1; i < len(nodes); i++ {
		child := nodes[i-1]
		if w, ok := t.wrapFor(nodeRef{leaf.Tree, child}); ok {
			if keys[i], err = keymgmt.UnwrapTreeKey(&keys[i-1], w, treeNodeCtx(scope, leaf.Tree, child)); err != nil {
				return nil, bad("node %d under node %d: %w", nodes[i], child, err)
			}
			continue
		}
		if t.Mode == ModeFull || t.wrapsParent(leaf.Tree, nodes[i]) {
			return nil, bad("node %d is replaced but not wrapped under node %d", nodes[i], child)
		}
		k, ok := known[nodes[i]]
		if !ok {
			return nil, bad("no key for node %d of the %s tree (not held, not wrapped)", nodes[i], leaf.Tree)
		}
		keys[i] = k
	}
	readers := leaf.Tree == keymgmt.TreeReaders
	wrapped := t.Writers
	if readers {
		wrapped = t.Readers
	}
	if wrapped == nil {
		return nil, bad("no epoch secrets for the %s tree", leaf.Tree)
	}
	s, err := keymgmt.UnwrapTreeSecrets(&keys[depth], wrapped, readers, treeNodeCtx(scope, leaf.Tree, nodes[depth]))
	if err != nil {
		return nil, bad("epoch secrets: %w", err)
	}
	if !bytes.Equal(s.WPub, ku.Rotate.WPub[:]) {
		return nil, bad("the wrapped write key is not the rotate event's")
	}
	out := &RotatedKeys{Epoch: ne, Secrets: s, Mode: t.Mode,
		Tree: &keymgmt.TreePath{Tree: leaf.Tree, Depth: depth, Leaf: leaf.Node, Keys: keys}}
	if sealed, ok := sealFor(t.SeedSeals, leaf); ok {
		if out.Seed, err = id.OpenTreeSeed(treeNodeCtx(scope, leaf.Tree, leaf.Node), sealed); err != nil {
			return nil, bad("tree seed: %w", err)
		}
		if out.Seed.Epoch > ne || (t.Mode == ModeFull && out.Seed.Epoch != ne) {
			return nil, bad("a tree seed of epoch %d", out.Seed.Epoch)
		}
	}
	return out, nil
}
