package groupstate

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/meshnode/meshnode/keymgmt"
)

// TreeMinMembers is the smallest group of classic (X25519) profiles for
// which a manager that holds no key tree sets one up (a full tree
// rotation: every member's leaf key by HPKE, every node key wrapped); a
// smaller one gets direct HPKE seals of the secrets (ModeDirect), which
// cost no more there. Measured with BenchmarkRotationCrossover (one member
// removed, a third read-only; load average about 2 on 2 shared cores):
// X25519 direct seals are about 60 bytes smaller at 2 and 3 members (0.50
// against 0.56 kB at 2, 0.65 against 0.71 at 3), the tree is smaller from
// 4 on (0.56 against 0.81 kB at 4, 0.87 against 2.55 at 16, 1.17 against
// 4.86 at 32) and quicker for every member at every size. An X-Wing seal
// is 1,136 bytes more than its plaintext, so with post-quantum members the
// tree wins from 2 members (0.56 against 2.67 kB at 2, 0.56 against 5.16
// at 4): a group with any X-Wing member uses TreeMinMembersPQ. A group
// keeps its tree once it has one (its creator draws the seed): a path
// update is cheaper than dropping the tree for direct seals and setting it
// up again later.
const TreeMinMembers = 4

// TreeMinMembersPQ is TreeMinMembers for a group with a post-quantum
// (X-Wing) member.
const TreeMinMembersPQ = 2

// RotationParams tune a rotation.
type RotationParams struct {
	// MaxPart is the largest key update part in bytes (0:
	// DefaultKeyUpdatePartSize).
	MaxPart int
	// TreeMin is the smallest group rotated through the key tree (0:
	// TreeMinMembers, or TreeMinMembersPQ with an X-Wing member).
	TreeMin int
}

// RotatedKeys is what a member holds after a rotation: the new epoch's
// secrets and, in the tree modes, its new path (and for a manager the tree
// seed). Group.EnterRotation records them.
type RotatedKeys struct {
	Epoch   uint64
	Secrets *keymgmt.EpochSecrets
	Mode    KeyUpdateMode
	// Tree is the member's path after the rotation (nil in direct mode:
	// the tree is not kept then).
	Tree *keymgmt.TreePath
	// Seed is the tree seed sealed to this member (a manager) in the
	// rotation, or drawn by it; nil: keep the one held (ModePath), or
	// none (the other modes).
	Seed *keymgmt.TreeSeed
}

// EnterRotation records a rotation's keys: the epoch's secrets (AddEpoch),
// the member's tree path, and the tree seed as the mode says: a direct
// rotation leaves no tree (members' paths and managers' seeds are
// dropped: the next tree rotation draws a new seed); a full one replaces
// both; a path one replaces the path and keeps the seed unless a new one
// was sealed to the member.
func (g *Group) EnterRotation(k *RotatedKeys) error {
	if k == nil {
		return fmt.Errorf("%w: no rotated keys", ErrKeyUpdateInvalid)
	}
	if err := g.AddEpoch(k.Epoch, k.Secrets); err != nil {
		return err
	}
	switch k.Mode {
	case ModeDirect:
		g.Tree, g.TreeSeed = nil, nil
	case ModeFull:
		g.Tree, g.TreeSeed = k.Tree, k.Seed
	case ModePath:
		g.Tree = k.Tree
		if k.Seed != nil {
			g.TreeSeed = k.Seed
		}
	}
	return nil
}

// treeKeys derives key tree keys from the managers' seed at the chain's
// head. While a rotation is being made, pending is its rotate event: the
// nodes it replaces (every node if full) take it as their version.
type treeKeys struct {
	c       *Chain
	seed    *keymgmt.TreeSeed
	pending EventID
	full    bool
}

// version is the ID of the rotation that last replaced a node since the
// seed was drawn (the seed's own rotation if none did).
func (k *treeKeys) version(r nodeRef) (EventID, error) {
	if !k.pending.IsZero() {
		if _, dirty := k.c.layout.dirty[r]; dirty || k.full {
			return k.pending, nil
		}
	}
	e := max(k.c.layout.trees[r.tree].refreshed[r.node], k.seed.Epoch)
	id, ok := k.c.epochRotate[e]
	if !ok {
		return EventID{}, fmt.Errorf("%w: the tree seed is of epoch %d, which this chain's main line does not have", ErrKeyUpdateInvalid, k.seed.Epoch)
	}
	return id, nil
}

// key derives a node's key: a leaf's from its member's membership, an
// internal node's from its version.
func (k *treeKeys) key(r nodeRef) (keymgmt.TreeKey, error) {
	if keymgmt.IsLeaf(r.node) {
		who := k.c.layout.trees[r.tree].who[r.node/2]
		m, ok := k.c.state.Members[who]
		if !ok {
			return keymgmt.TreeKey{}, fmt.Errorf("%w: %s leaf %d is blank", ErrKeyUpdateInvalid, r.tree, r.node)
		}
		return keymgmt.DeriveTreeLeafKey(&k.seed.Seed, MembershipKey(who, m.Added)), nil
	}
	v, err := k.version(r)
	if err != nil {
		return keymgmt.TreeKey{}, err
	}
	return keymgmt.DeriveTreeNodeKey(&k.seed.Seed, r.tree, r.node, v), nil
}

// TreeLeaf returns a member's place in the key trees at the head.
func (c *Chain) TreeLeaf(key ed25519.PublicKey) (Leaf, bool) {
	if len(key) != ed25519.PublicKeySize {
		return Leaf{}, false
	}
	l, ok := c.layout.pos[[32]byte(key)]
	return l, ok
}

// TreeDepths returns both key trees' depths at the head (-1: empty).
func (c *Chain) TreeDepths() [2]int { return c.layout.depths() }

// TreePathOf derives, from the managers' seed, the path keys of a member
// at the head: what a welcome gives a newcomer and a manager keeps after
// its own rotation.
func (c *Chain) TreePathOf(seed *keymgmt.TreeSeed, key ed25519.PublicKey) (*keymgmt.TreePath, error) {
	if seed == nil {
		return nil, fmt.Errorf("%w: no tree seed", ErrKeyUpdateInvalid)
	}
	l, ok := c.TreeLeaf(key)
	if !ok {
		return nil, fmt.Errorf("%w: %s has no leaf in the key trees", ErrKeyUpdateInvalid, keymgmt.Fingerprint(key))
	}
	tk := &treeKeys{c: c, seed: seed}
	p := &keymgmt.TreePath{Tree: l.Tree, Depth: c.layout.trees[l.Tree].depth, Leaf: l.Node}
	nodes, err := keymgmt.TreePathNodes(l.Node, p.Depth)
	if err != nil {
		return nil, err
	}
	p.Keys = make([]keymgmt.TreeKey, len(nodes))
	for i, x := range nodes {
		if p.Keys[i], err = tk.key(nodeRef{l.Tree, x}); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// wasManagerSince reports whether key had the manage role at main-line
// index at or at any main-line event after it.
func (c *Chain) wasManagerSince(key [32]byte, at int) bool {
	if m, ok := c.markAt(key, at); ok && m.role.CanManage() {
		return true
	}
	for _, m := range c.marks[key] {
		if m.at > at && m.role.CanManage() {
			return true
		}
	}
	return false
}

// RotationMode says how the next rotation of a manager holding seed (nil:
// none) distributes the secrets (see the package doc, "Key tree"). A path
// update of the nodes the layout marked, unless the tree must be set up
// afresh: the manager holds no seed (a group made before key trees, or a
// manager never handed the tree), a direct rotation dropped it, or a
// member who could know the seed — a manager at any time since it was
// drawn — was removed or made a reader since the last rotation. Then a
// full tree rotation with a new seed from treeMin members on (0:
// TreeMinMembers, or TreeMinMembersPQ when a member's profile is X-Wing,
// whose seals are large), and direct seals below.
func (c *Chain) RotationMode(seed *keymgmt.TreeSeed, treeMin int) KeyUpdateMode {
	if c.treeIntact(seed) {
		return ModePath
	}
	if treeMin <= 0 {
		treeMin = TreeMinMembers
		for _, m := range c.state.Members {
			if m.Identity.Suite == keymgmt.SuitePQ {
				treeMin = TreeMinMembersPQ
				break
			}
		}
	}
	if len(c.state.Members) < treeMin {
		return ModeDirect
	}
	return ModeFull
}

// treeIntact reports whether the tree derived from seed can be updated
// along paths: the seed is of the main line and nobody who could know it
// left the writers since the last rotation.
func (c *Chain) treeIntact(seed *keymgmt.TreeSeed) bool {
	if seed == nil || seed.Epoch > c.state.Epoch {
		return false
	}
	id, ok := c.epochRotate[seed.Epoch]
	if !ok {
		return false
	}
	at := c.entries[id].at
	for _, k := range c.layout.revoked {
		if c.wasManagerSince(k, at) {
			return false
		}
	}
	return true
}

// Binding contexts of a rotation's wraps and seals (fixed lengths): group
// ID ‖ new epoch ‖ rotate event ID, then per kind the tree and the node.
func treeScope(g GroupID, epoch uint64, rot EventID) []byte {
	b := make([]byte, 0, 16+8+32+1+4)
	b = append(b, g[:]...)
	b = binary.BigEndian.AppendUint64(b, epoch)
	return append(b, rot[:]...)
}

func treeNodeCtx(scope []byte, tree keymgmt.TreeID, node uint32) []byte {
	b := append(slices.Clip(scope), byte(tree))
	return binary.BigEndian.AppendUint32(b, node)
}

// RotateTree starts a new epoch as manager, choosing the mode with
// RotationMode: it draws the secrets, signs the rotate event extending the
// head, builds the key update parts and adds the event to the chain (only
// when everything else succeeded). In direct mode it is Rotate. seed is
// the tree seed the manager holds (Group.TreeSeed, nil if none); the
// result's Keys are what the manager records (Group.EnterRotation).
func (c *Chain) RotateTree(manager Signer, seed *keymgmt.TreeSeed, now time.Time, p RotationParams) (*Rotation, error) {
	if p.MaxPart == 0 {
		p.MaxPart = DefaultKeyUpdatePartSize
	}
	mode := c.RotationMode(seed, p.TreeMin)
	if mode == ModeDirect {
		rot, err := c.Rotate(manager, now, p.MaxPart)
		if err != nil {
			return nil, err
		}
		rot.Keys = &RotatedKeys{Epoch: rot.Event.Epoch, Secrets: rot.Secrets, Mode: ModeDirect}
		return rot, nil
	}
	s, err := keymgmt.NewEpochSecrets()
	if err != nil {
		return nil, err
	}
	ev := &Event{
		GroupID: c.group,
		Parent:  c.state.Head,
		Seq:     c.state.Height + 1,
		Time:    now.UnixMilli(),
		Kind:    EventRotate,
		Epoch:   c.state.Epoch + 1,
		WPub:    [32]byte(s.WPub),
	}
	if err := SignEvent(ev, manager); err != nil {
		return nil, err
	}
	if _, err := check(c.state, ev); err != nil {
		return nil, err
	}
	rotID := ev.ID()
	use := seed
	if mode == ModeFull {
		// A new seed: nothing a former manager knew derives the new keys.
		use = keymgmt.NewTreeSeed(ev.Epoch)
	}
	tu, err := c.buildTreeUpdate(&treeKeys{c: c, seed: use, pending: rotID, full: mode == ModeFull}, mode, ev, s, manager.SigningKey())
	if err != nil {
		return nil, err
	}
	parts, err := splitTreeUpdate(ev, tu, p.MaxPart)
	if err != nil {
		return nil, err
	}
	if err := c.Add(ev); err != nil {
		return nil, err
	}
	path, err := c.TreePathOf(use, manager.SigningKey())
	if err != nil {
		return nil, err
	}
	return &Rotation{Event: ev, Secrets: s, Parts: parts,
		Keys: &RotatedKeys{Epoch: ev.Epoch, Secrets: s, Mode: mode, Tree: path, Seed: use}}, nil
}

// buildTreeUpdate makes the whole (unsplit) tree update of a rotation.
func (c *Chain) buildTreeUpdate(tk *treeKeys, mode KeyUpdateMode, ev *Event, s *keymgmt.EpochSecrets, self ed25519.PublicKey) (*TreeUpdate, error) {
	l := c.layout
	scope := treeScope(c.group, ev.Epoch, tk.pending)
	tu := &TreeUpdate{Mode: mode, Depths: l.depths(), Scope: TreeScope{All: true}}
	fresh := func(tree keymgmt.TreeID, node uint32) bool {
		if !keymgmt.IsLeaf(node) {
			return false
		}
		_, ok := l.fresh[l.trees[tree].who[node/2]]
		return ok
	}
	var replaced []nodeRef
	if mode == ModeFull {
		for tree := range l.trees {
			for x := range keymgmt.TreeNodes(l.trees[tree].depth) {
				if !keymgmt.IsLeaf(x) && l.trees[tree].occ[x] > 0 {
					replaced = append(replaced, nodeRef{keymgmt.TreeID(tree), x})
				}
			}
		}
		slices.SortFunc(replaced, compareNodeRef)
	} else {
		replaced = l.sortedDirty()
	}
	for _, r := range replaced {
		if keymgmt.IsLeaf(r.node) || !l.occupied(r.tree, r.node) {
			continue // nobody below it needs it
		}
		kp, err := tk.key(r)
		if err != nil {
			return nil, err
		}
		left, right := keymgmt.NodeChildren(r.node)
		for _, ch := range []uint32{left, right} {
			if !l.occupied(r.tree, ch) || fresh(r.tree, ch) {
				continue
			}
			kc, err := tk.key(nodeRef{r.tree, ch})
			if err != nil {
				return nil, err
			}
			tu.Wraps = append(tu.Wraps, TreeWrap{Tree: r.tree, Child: ch, Wrapped: keymgmt.WrapTreeKey(&kc, &kp, treeNodeCtx(scope, r.tree, ch))})
		}
	}
	slices.SortFunc(tu.Wraps, func(a, b TreeWrap) int { return compareNodeRef(a.ref(), b.ref()) })
	for tree, d := range tu.Depths {
		if d < 0 {
			continue
		}
		root := keymgmt.TreeRoot(d)
		if !l.occupied(keymgmt.TreeID(tree), root) || fresh(keymgmt.TreeID(tree), root) {
			continue
		}
		kr, err := tk.key(nodeRef{keymgmt.TreeID(tree), root})
		if err != nil {
			return nil, err
		}
		readers := keymgmt.TreeID(tree) == keymgmt.TreeReaders
		w, err := keymgmt.WrapTreeSecrets(&kr, s, readers, treeNodeCtx(scope, keymgmt.TreeID(tree), root))
		if err != nil {
			return nil, err
		}
		if readers {
			tu.Readers = w
		} else {
			tu.Writers = w
		}
	}
	// HPKE seals: new leaf keys (full) and the seed to managers who need
	// it (all of them after a new seed, so the rotating manager recovers
	// it from its own key update after a crash; new managers otherwise).
	type sealJob struct {
		leaf Leaf
		who  *Member
		seed bool
	}
	var jobs []sealJob
	if mode == ModeFull {
		for tree := range l.trees {
			for i, who := range l.trees[tree].who {
				node := keymgmt.LeafNode(uint32(i))
				if !l.occupied(keymgmt.TreeID(tree), node) || fresh(keymgmt.TreeID(tree), node) {
					continue
				}
				jobs = append(jobs, sealJob{leaf: Leaf{keymgmt.TreeID(tree), node}, who: c.state.Members[who]})
			}
		}
	}
	for k := range l.managers {
		if _, ok := l.fresh[k]; ok {
			continue // its welcome carries the seed
		}
		_, had := l.managersAtRotate[k]
		if mode == ModePath && (had || ed25519.PublicKey(k[:]).Equal(self)) {
			continue
		}
		jobs = append(jobs, sealJob{leaf: l.pos[k], who: c.state.Members[k], seed: true})
	}
	sealed := make([][]byte, len(jobs))
	errs := make([]error, len(jobs))
	workers := max(1, min(runtime.GOMAXPROCS(0), len(jobs)/wrapParallelMin))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(jobs); i += workers {
				j := jobs[i]
				info := treeNodeCtx(scope, j.leaf.Tree, j.leaf.Node)
				if j.seed {
					sealed[i], errs[i] = keymgmt.SealTreeSeed(&j.who.Identity, info, tk.seed)
					continue
				}
				var lk keymgmt.TreeKey
				if lk, errs[i] = tk.key(nodeRef{j.leaf.Tree, j.leaf.Node}); errs[i] == nil {
					sealed[i], errs[i] = keymgmt.SealTreeLeaf(&j.who.Identity, info, &lk)
				}
			}
		})
	}
	wg.Wait()
	for i, j := range jobs {
		if errs[i] != nil {
			return nil, fmt.Errorf("seal to %s: %w", j.who.Fingerprint(), errs[i])
		}
		ts := TreeSeal{Tree: j.leaf.Tree, Leaf: j.leaf.Node, Sealed: sealed[i]}
		if j.seed {
			tu.SeedSeals = append(tu.SeedSeals, ts)
		} else {
			tu.LeafSeals = append(tu.LeafSeals, ts)
		}
	}
	bySeal := func(a, b TreeSeal) int { return compareNodeRef(nodeRef{a.Tree, a.Leaf}, nodeRef{b.Tree, b.Leaf}) }
	slices.SortFunc(tu.SeedSeals, bySeal)
	slices.SortFunc(tu.LeafSeals, bySeal)
	return tu, nil
}

// wrapParallelMin is the fewest HPKE seals per worker goroutine.
const wrapParallelMin = 64

// splitTreeUpdate cuts a tree update into parts of at most maxPart encoded
// bytes, each serving a subtree with everything its members need (see
// TreeScope): the wraps under nodes in the subtree or on its path to the
// root, its tree's wrapped secrets, and the seals of its leaves.
func splitTreeUpdate(ev *Event, tu *TreeUpdate, maxPart int) ([]*KeyUpdate, error) {
	header := 7 + len(ev.marshal())
	var scopes []*TreeUpdate
	var split func(sc TreeScope) error
	split = func(sc TreeScope) error {
		part := tu.restrict(sc)
		if header+treeUpdateSize(part) <= maxPart {
			if sc.All || len(part.Wraps)+len(part.LeafSeals)+len(part.SeedSeals) > 0 || part.Writers != nil || part.Readers != nil {
				scopes = append(scopes, part)
			}
			return nil
		}
		if sc.All {
			for tree, d := range tu.Depths {
				if d >= 0 {
					if err := split(TreeScope{Tree: keymgmt.TreeID(tree), Node: keymgmt.TreeRoot(d)}); err != nil {
						return err
					}
				}
			}
			return nil
		}
		if keymgmt.IsLeaf(sc.Node) {
			return fmt.Errorf("%w: parts of %d bytes cannot hold what the member at %s leaf %d needs", ErrKeyUpdateInvalid, maxPart, sc.Tree, sc.Node)
		}
		l, r := keymgmt.NodeChildren(sc.Node)
		if err := split(TreeScope{Tree: sc.Tree, Node: l}); err != nil {
			return err
		}
		return split(TreeScope{Tree: sc.Tree, Node: r})
	}
	if err := split(TreeScope{All: true}); err != nil {
		return nil, err
	}
	if len(scopes) > MaxKeyUpdateParts {
		return nil, fmt.Errorf("%w: %d parts, at most %d; use larger parts", ErrKeyUpdateInvalid, len(scopes), MaxKeyUpdateParts)
	}
	parts := make([]*KeyUpdate, len(scopes))
	for i, t := range scopes {
		parts[i] = &KeyUpdate{Rotate: ev.Clone(), Part: i, Parts: len(scopes), Tree: t}
	}
	return parts, nil
}

// restrict returns what members under a scope need of a tree update.
func (t *TreeUpdate) restrict(sc TreeScope) *TreeUpdate {
	if sc.All {
		c := *t
		c.Scope = sc
		return &c
	}
	out := &TreeUpdate{Mode: t.Mode, Depths: t.Depths, Scope: sc}
	for _, w := range t.Wraps {
		if w.Tree == sc.Tree && (keymgmt.InSubtree(w.Child, sc.Node) || keymgmt.InSubtree(sc.Node, w.Child)) {
			out.Wraps = append(out.Wraps, w)
		}
	}
	in := func(s TreeSeal) bool { return sc.holds(Leaf{s.Tree, s.Leaf}) }
	for _, s := range t.LeafSeals {
		if in(s) {
			out.LeafSeals = append(out.LeafSeals, s)
		}
	}
	for _, s := range t.SeedSeals {
		if in(s) {
			out.SeedSeals = append(out.SeedSeals, s)
		}
	}
	if sc.Tree == keymgmt.TreeWriters {
		out.Writers = t.Writers
	} else {
		out.Readers = t.Readers
	}
	return out
}
