package keymgmt

import (
	"bytes"
	"errors"
	"testing"
)

func TestTreeMath(t *testing.T) {
	for depth := 0; depth <= 6; depth++ {
		root := TreeRoot(depth)
		if NodeLevel(root) != depth {
			t.Fatalf("depth %d: root %d has level %d", depth, root, NodeLevel(root))
		}
		for x := range TreeNodes(depth) {
			if !NodeInTree(x, depth) {
				t.Fatalf("node %d not in tree of depth %d", x, depth)
			}
			if !InSubtree(x, root) {
				t.Fatalf("node %d not under root %d", x, root)
			}
			if x == root {
				continue
			}
			p := NodeParent(x)
			if NodeLevel(p) != NodeLevel(x)+1 {
				t.Fatalf("parent %d of %d: levels %d, %d", p, x, NodeLevel(p), NodeLevel(x))
			}
			l, r := NodeChildren(p)
			if x != l && x != r {
				t.Fatalf("node %d is not a child of its parent %d (%d, %d)", x, p, l, r)
			}
			if s := NodeSibling(x); s == x || NodeParent(s) != p {
				t.Fatalf("sibling %d of %d", s, x)
			}
			if !InSubtree(x, p) || InSubtree(p, x) {
				t.Fatalf("subtree relation of %d and %d", x, p)
			}
		}
		if NodeInTree(TreeNodes(depth), depth) {
			t.Fatalf("node %d in tree of depth %d", TreeNodes(depth), depth)
		}
	}
	// Growing keeps indices: the old root's parent is the new root.
	for d := range 10 {
		if NodeParent(TreeRoot(d)) != TreeRoot(d+1) {
			t.Fatalf("root of depth %d does not hang under the root of depth %d", d, d+1)
		}
	}
	path, err := TreePathNodes(LeafNode(5), 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint32{10, 9, 11, 7}; !equalU32(path, want) {
		t.Fatalf("path of leaf 5 in depth 3: %v, want %v", path, want)
	}
	for _, bad := range []struct {
		node  uint32
		depth int
	}{{1, 3}, {16, 3}, {0, MaxTreeDepth + 1}, {0, -1}, {1 << 31, MaxTreeDepth}} {
		if _, err := TreePathNodes(bad.node, bad.depth); err == nil {
			t.Fatalf("path of node %d in depth %d accepted", bad.node, bad.depth)
		}
	}
}

func equalU32(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestTreeKeyDerivation(t *testing.T) {
	seed := NewTreeSeed(3)
	other := NewTreeSeed(3)
	v1, v2 := [32]byte{1}, [32]byte{2}
	k := DeriveTreeNodeKey(&seed.Seed, TreeWriters, 5, v1)
	if k != DeriveTreeNodeKey(&seed.Seed, TreeWriters, 5, v1) {
		t.Fatal("derivation is not deterministic")
	}
	for _, o := range []TreeKey{
		DeriveTreeNodeKey(&seed.Seed, TreeReaders, 5, v1),
		DeriveTreeNodeKey(&seed.Seed, TreeWriters, 3, v1),
		DeriveTreeNodeKey(&seed.Seed, TreeWriters, 5, v2),
		DeriveTreeNodeKey(&other.Seed, TreeWriters, 5, v1),
		DeriveTreeLeafKey(&seed.Seed, v1),
	} {
		if o == k {
			t.Fatal("two derivation inputs gave one key")
		}
	}
}

func TestTreeWraps(t *testing.T) {
	seed := NewTreeSeed(1)
	under := DeriveTreeNodeKey(&seed.Seed, TreeWriters, 0, [32]byte{})
	key := DeriveTreeNodeKey(&seed.Seed, TreeWriters, 1, [32]byte{})
	ctx := []byte("group|epoch|rotation|tree|node")
	w := WrapTreeKey(&under, &key, ctx)
	if len(w) != TreeKeyWrapSize {
		t.Fatalf("wrap of %d bytes, want %d", len(w), TreeKeyWrapSize)
	}
	if w2 := WrapTreeKey(&under, &key, ctx); bytes.Equal(w[:24], w2[:24]) {
		t.Fatal("two wraps share a nonce")
	}
	got, err := UnwrapTreeKey(&under, w, ctx)
	if err != nil || got != key {
		t.Fatalf("unwrap: %v", err)
	}
	wrong := key
	for name, try := range map[string]func() error{
		"other key":  func() error { _, err := UnwrapTreeKey(&wrong, w, ctx); return err },
		"other ctx":  func() error { _, err := UnwrapTreeKey(&under, w, []byte("elsewhere")); return err },
		"truncated":  func() error { _, err := UnwrapTreeKey(&under, w[:len(w)-1], ctx); return err },
		"extended":   func() error { _, err := UnwrapTreeKey(&under, append(w, 0), ctx); return err },
		"empty":      func() error { _, err := UnwrapTreeKey(&under, nil, ctx); return err },
		"as secrets": func() error { _, err := UnwrapTreeSecrets(&under, w, true, ctx); return err },
		"tampered": func() error {
			bad := bytes.Clone(w)
			bad[30] ^= 1
			_, err := UnwrapTreeKey(&under, bad, ctx)
			return err
		},
	} {
		if err := try(); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: %v, want ErrDecrypt", name, err)
		}
	}

	s, err := NewEpochSecrets()
	if err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{false, true} {
		ws, err := WrapTreeSecrets(&key, s, ro, ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) != TreeSecretsWrapSize(ro) {
			t.Fatalf("readOnly=%v: %d bytes, want %d", ro, len(ws), TreeSecretsWrapSize(ro))
		}
		got, err := UnwrapTreeSecrets(&key, ws, ro, ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got.Read != s.Read || (got.Write != nil) == ro {
			t.Fatalf("readOnly=%v: got %+v", ro, got)
		}
		if _, err := UnwrapTreeSecrets(&key, ws, !ro, ctx); err == nil {
			t.Fatal("secrets opened as the other form")
		}
		if _, err := UnwrapTreeKey(&key, ws, ctx); err == nil {
			t.Fatal("secrets opened as a key")
		}
	}
	if _, err := WrapTreeSecrets(&key, s.ReadOnly(), false, ctx); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("writer secrets from read-only ones: %v", err)
	}
}

func TestTreeSeals(t *testing.T) {
	for _, suite := range []Suite{SuiteX25519, SuitePQ} {
		id, err := NewIdentity(suite)
		if err != nil {
			t.Fatal(err)
		}
		other, err := NewIdentity(suite)
		if err != nil {
			t.Fatal(err)
		}
		info := []byte("group|epoch|rotation|leaf")
		leaf := TreeKey{7}
		sealed, err := SealTreeLeaf(id.Public(), info, &leaf)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := id.OpenTreeLeaf(info, sealed); err != nil || got != leaf {
			t.Fatalf("%s: open leaf: %v", suite, err)
		}
		if _, err := other.OpenTreeLeaf(info, sealed); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("%s: another identity opened a leaf: %v", suite, err)
		}
		if _, err := id.OpenTreeSeed(info, sealed); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("%s: a leaf opened as a seed: %v", suite, err)
		}
		if _, err := id.OpenEpochSecrets(info, sealed); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("%s: a leaf opened as epoch secrets: %v", suite, err)
		}
		seed := NewTreeSeed(9)
		ss, err := SealTreeSeed(id.Public(), info, seed)
		if err != nil {
			t.Fatal(err)
		}
		got, err := id.OpenTreeSeed(info, ss)
		if err != nil || *got != *seed {
			t.Fatalf("%s: open seed: %v", suite, err)
		}
		if _, err := id.OpenTreeSeed([]byte("other"), ss); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("%s: seed opened under another info: %v", suite, err)
		}
	}
}

func TestTreeEncodings(t *testing.T) {
	seed := NewTreeSeed(42)
	got, err := ParseTreeSeed(MarshalTreeSeed(seed))
	if err != nil || *got != *seed {
		t.Fatalf("seed round trip: %v", err)
	}
	p := &TreePath{Tree: TreeReaders, Depth: 3, Leaf: 6, Keys: make([]TreeKey, 4)}
	for i := range p.Keys {
		p.Keys[i][0] = byte(i + 1)
	}
	b, err := MarshalTreePath(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != TreePathSize(3) {
		t.Fatalf("path of %d bytes, want %d", len(b), TreePathSize(3))
	}
	q, err := ParseTreePath(b)
	if err != nil {
		t.Fatal(err)
	}
	if q.Tree != p.Tree || q.Depth != p.Depth || q.Leaf != p.Leaf || q.Keys[3] != p.Keys[3] {
		t.Fatalf("path round trip: %+v", q)
	}
	if q.Root() != p.Keys[3] || len(q.Nodes()) != 4 {
		t.Fatal("root or nodes")
	}
	bad := map[string][]byte{
		"empty":         nil,
		"truncated":     b[:len(b)-1],
		"trailing":      append(bytes.Clone(b), 0),
		"version":       append([]byte{9}, b[1:]...),
		"tree":          append([]byte{1, 7}, b[2:]...),
		"not a leaf":    append(append([]byte{1, 1, 3}, 0, 0, 0, 7), b[7:]...),
		"outside":       append(append([]byte{1, 1, 3}, 0, 0, 0, 16), b[7:]...),
		"depth 255":     append([]byte{1, 1, 255, 0, 0, 0, 0}, make([]byte, 32)...),
		"depth 17 full": append([]byte{1, 1, 17, 0, 0, 0, 0}, make([]byte, 18*32)...),
	}
	for name, in := range bad {
		if _, err := ParseTreePath(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	for _, in := range [][]byte{nil, MarshalTreeSeed(seed)[:40], append(MarshalTreeSeed(seed), 1), append([]byte{2}, MarshalTreeSeed(seed)[1:]...)} {
		if _, err := ParseTreeSeed(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("seed %x: %v", in, err)
		}
	}
}

func FuzzParseTreePath(f *testing.F) {
	p := &TreePath{Tree: TreeWriters, Depth: 2, Leaf: 4, Keys: make([]TreeKey, 3)}
	b, _ := MarshalTreePath(p)
	f.Add(b)
	f.Add([]byte{1, 0, 255, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := ParseTreePath(in)
		if err != nil {
			return
		}
		out, err := MarshalTreePath(p)
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("accepted a non-canonical path: %v", err)
		}
	})
}

func FuzzParseTreeSeed(f *testing.F) {
	f.Add(MarshalTreeSeed(NewTreeSeed(1)))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := ParseTreeSeed(in)
		if err == nil && !bytes.Equal(MarshalTreeSeed(s), in) {
			t.Fatal("accepted a non-canonical seed")
		}
	})
}

func FuzzUnwrapTree(f *testing.F) {
	k := TreeKey{1}
	f.Add(WrapTreeKey(&k, &k, []byte("c")), []byte("c"))
	s, _ := NewEpochSecrets()
	ws, _ := WrapTreeSecrets(&k, s, false, []byte("c"))
	f.Add(ws, []byte("c"))
	f.Fuzz(func(t *testing.T, in, ctx []byte) {
		_, _ = UnwrapTreeKey(&k, in, ctx)
		_, _ = UnwrapTreeSecrets(&k, in, false, ctx)
		_, _ = UnwrapTreeSecrets(&k, in, true, ctx)
	})
}
