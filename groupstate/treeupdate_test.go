package groupstate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/meshnode/meshnode/keymgmt"
)

// treeFixture is a tree group after its set-up and one removal, with a
// member that follows it, and the removal's part.
func treeFixture(t testing.TB) (*tgroup, *tmember, *KeyUpdate) {
	t.Helper()
	tg := newTreeGroup(t, DefaultPolicy(), treeParams())
	var ms []*tmember
	for i := range 6 {
		role := RoleWrite
		if i == 2 {
			role = RoleRead
		}
		ms = append(ms, tg.join(newPerson(t, fmt.Sprintf("m%d", i)), role))
	}
	tg.rotate()
	tg.event(&Event{Kind: EventRemove, Target: ms[4].p.key()})
	ms[4].gone = true
	// The member under test has not opened the removal's rotation yet.
	me := ms[0]
	me.gone = true
	parts := tg.rotate()
	if len(parts) != 1 || parts[0].Mode() != ModePath {
		t.Fatalf("fixture: %d parts", len(parts))
	}
	if err := me.c.Add(tg.m.c.Events()[len(tg.m.c.Events())-2]); err != nil && !errors.Is(err, ErrReplay) {
		t.Fatal(err)
	}
	return tg, me, parts[0]
}

func TestTreeKeyUpdateBadInput(t *testing.T) {
	tg, me, ku := treeFixture(t)
	good, err := MarshalKeyUpdate(ku)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := ParseKeyUpdate(good); err != nil || !equalTreeUpdates(back.Tree, ku.Tree) {
		t.Fatalf("round trip: %v", err)
	}
	// Every truncation is a clear error, never a panic.
	for n := range len(good) {
		if _, err := ParseKeyUpdate(good[:n]); !errors.Is(err, ErrKeyUpdateMalformed) {
			t.Fatalf("truncated to %d of %d bytes: %v", n, len(good), err)
		}
	}
	if _, err := ParseKeyUpdate(append(bytes.Clone(good), 0)); !errors.Is(err, ErrKeyUpdateMalformed) {
		t.Fatalf("trailing byte: %v", err)
	}
	off := 7 + len(ku.Rotate.marshal()) // the tree header: mode, depths, scope
	mutate := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	wraps := off + 8 + 2 + 4 // past header, seed seals (none) and leaf seals (none)
	if len(ku.Tree.SeedSeals) != 0 || len(ku.Tree.LeafSeals) != 0 || len(ku.Tree.Wraps) < 2 {
		t.Fatalf("fixture part: %d seed seals, %d leaf seals, %d wraps", len(ku.Tree.SeedSeals), len(ku.Tree.LeafSeals), len(ku.Tree.Wraps))
	}
	for name, b := range map[string][]byte{
		"mode":                 mutate(func(b []byte) { b[off] = 9 }),
		"depth 255":            mutate(func(b []byte) { b[off+1] = 0xff }),
		"depth 17":             mutate(func(b []byte) { b[off+2] = 18 }),
		"no writers":           mutate(func(b []byte) { b[off+1] = 0 }),
		"scope tree":           mutate(func(b []byte) { b[off+3] = 7 }),
		"wrap count 2^32-1":    mutate(func(b []byte) { binary.BigEndian.PutUint32(b[wraps:], 0xffffffff) }),
		"wrap for node 2^31":   mutate(func(b []byte) { binary.BigEndian.PutUint32(b[wraps+5:], 1<<31) }),
		"wrap under a root":    mutate(func(b []byte) { binary.BigEndian.PutUint32(b[wraps+5:], keymgmt.TreeRoot(ku.Tree.Depths[0])) }),
		"wrap in tree 9":       mutate(func(b []byte) { b[wraps+4] = 9 }),
		"wraps out of order":   mutate(func(b []byte) { b[wraps+4+77] = 0; binary.BigEndian.PutUint32(b[wraps+5+77:], 0) }),
		"leaf seals in a path": mutate(func(b []byte) { binary.BigEndian.PutUint32(b[off+10:], 1) }),
		"secrets flags":        mutate(func(b []byte) { b[wraps+4+77*len(ku.Tree.Wraps)] = 0x80 }),
	} {
		if _, err := ParseKeyUpdate(b); !errors.Is(err, ErrKeyUpdateMalformed) {
			t.Errorf("%s: %v, want ErrKeyUpdateMalformed", name, err)
		}
	}
	// Values no encoder may write.
	for name, f := range map[string]func(tu *TreeUpdate){
		"depth 2^32":   func(tu *TreeUpdate) { tu.Depths[0] = 1 << 32 },
		"depth -2":     func(tu *TreeUpdate) { tu.Depths[1] = -2 },
		"unknown node": func(tu *TreeUpdate) { tu.Wraps[0].Child = 1 << 30 },
		"short wrap":   func(tu *TreeUpdate) { tu.Wraps[0].Wrapped = tu.Wraps[0].Wrapped[:10] },
		"seal in reader": func(tu *TreeUpdate) {
			tu.SeedSeals = []TreeSeal{{Tree: keymgmt.TreeReaders, Leaf: 0, Sealed: []byte{1}}}
		},
		"scope node": func(tu *TreeUpdate) { tu.Scope = TreeScope{Tree: keymgmt.TreeWriters, Node: 1 << 20} },
	} {
		bad := *ku
		tu := *ku.Tree
		tu.Wraps = append([]TreeWrap(nil), ku.Tree.Wraps...)
		f(&tu)
		bad.Tree = &tu
		if _, err := MarshalKeyUpdate(&bad); !errors.Is(err, ErrKeyUpdateMalformed) {
			t.Errorf("%s: %v, want ErrKeyUpdateMalformed", name, err)
		}
	}

	// Well-formed but wrong: the member gets a clear error and keeps its
	// keys (it has not entered the epoch).
	held := me.g.Tree.Clone()
	open := func(tu *TreeUpdate) error {
		c := follow(t, tg.m.c)
		k := *ku
		k.Tree = tu
		_, err := c.AcceptRotation(me.p.id, me.g, &k)
		return err
	}
	myLeaf, _ := tg.m.c.TreeLeaf(me.p.id.SigningKey())
	onPath := func(w TreeWrap) bool { return w.Tree == myLeaf.Tree && keymgmt.InSubtree(myLeaf.Node, w.Child) }
	for name, f := range map[string]func(tu *TreeUpdate){
		"tampered wrap on the path": func(tu *TreeUpdate) {
			for i, w := range tu.Wraps {
				if onPath(w) {
					tu.Wraps[i].Wrapped = bytes.Clone(w.Wrapped)
					tu.Wraps[i].Wrapped[40] ^= 1
					return
				}
			}
			t.Fatal("no wrap on the member's path")
		},
		"wrap on the path left out": func(tu *TreeUpdate) {
			for i, w := range tu.Wraps {
				if onPath(w) {
					tu.Wraps = append(tu.Wraps[:i:i], tu.Wraps[i+1:]...)
					return
				}
			}
		},
		"other depths":    func(tu *TreeUpdate) { tu.Depths[0]++ },
		"no secrets":      func(tu *TreeUpdate) { tu.Writers = nil },
		"swapped secrets": func(tu *TreeUpdate) { tu.Writers = ku.Tree.Readers },
	} {
		tu := *ku.Tree
		tu.Wraps = append([]TreeWrap(nil), ku.Tree.Wraps...)
		f(&tu)
		if err := open(&tu); !errors.Is(err, ErrKeyUpdateInvalid) {
			t.Errorf("%s: %v, want ErrKeyUpdateInvalid", name, err)
		}
	}
	// A wrap for a node nobody holds is ignored; the part still opens.
	extra := *ku.Tree
	extra.Wraps = append([]TreeWrap(nil), ku.Tree.Wraps...)
	far := TreeWrap{Tree: keymgmt.TreeWriters, Child: keymgmt.LeafNode(1<<ku.Tree.Depths[0] - 1), Wrapped: make([]byte, keymgmt.TreeKeyWrapSize)}
	if !onPath(far) {
		extra.Wraps = append(extra.Wraps, far)
		slicesSortWraps(extra.Wraps)
		if err := open(&extra); err != nil {
			t.Fatalf("a wrap off the path: %v", err)
		}
	}
	if !bytes.Equal(mustPath(t, held), mustPath(t, me.g.Tree)) {
		t.Fatal("a failed open changed the member's path")
	}
	// Without a path (joined before the tree), a path update is refused.
	noTree := *me.g
	noTree.Tree = nil
	if _, err := follow(t, tg.m.c).AcceptRotation(me.p.id, &noTree, ku); !errors.Is(err, ErrKeyUpdateInvalid) {
		t.Fatalf("no path: %v", err)
	}
}

func slicesSortWraps(ws []TreeWrap) {
	for i := 1; i < len(ws); i++ {
		for j := i; j > 0 && compareNodeRef(ws[j-1].ref(), ws[j].ref()) > 0; j-- {
			ws[j-1], ws[j] = ws[j], ws[j-1]
		}
	}
}

func mustPath(t testing.TB, p *keymgmt.TreePath) []byte {
	t.Helper()
	b, err := keymgmt.MarshalTreePath(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTreeGroupRecordAndWelcome(t *testing.T) {
	tg, me, _ := treeFixture(t)
	// The manager's record keeps path and seed; a member's the path.
	for _, g := range []*Group{tg.m.g, me.g} {
		b, err := g.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var back Group
		if err := back.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(mustPath(t, back.Tree), mustPath(t, g.Tree)) || (back.TreeSeed == nil) != (g.TreeSeed == nil) {
			t.Fatal("tree lost in the group record")
		}
		for n := range len(b) {
			if err := (&Group{}).UnmarshalBinary(b[:n]); !errors.Is(err, ErrGroupMalformed) {
				t.Fatalf("truncated record: %v", err)
			}
		}
	}
	if tg.m.g.TreeSeed == nil || me.g.TreeSeed != nil {
		t.Fatal("seed held by the wrong party")
	}
	// A manager newcomer gets the seed in its welcome; a member does not.
	boss := newPerson(t, "co-manager")
	tg.event(&Event{Kind: EventAdd, KeyPackage: boss.kp.Marshal(), Role: RoleManage})
	j, envs := tg.m.welcome(t, boss)
	if j.Group.TreeSeed == nil || *j.Group.TreeSeed != *tg.m.g.TreeSeed || j.Group.Tree == nil {
		t.Fatal("a manager's welcome lacks the tree")
	}
	if len(envs) != 1 {
		t.Fatalf("welcome in %d envelopes", len(envs))
	}
	w, err := NewWelcome(tg.m.c, tg.m.g, boss.kp, tg.m.boss.id)
	if err != nil {
		t.Fatal(err)
	}
	wb, err := MarshalWelcome(w)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseWelcome(wb)
	if err != nil || back.Tree == nil || back.Seed == nil {
		t.Fatalf("welcome round trip: %v", err)
	}
	for n := range len(wb) {
		if _, err := ParseWelcome(wb[:n]); !errors.Is(err, ErrWelcomeMalformed) {
			t.Fatalf("truncated welcome: %v", err)
		}
	}
	// A path the chain does not give the newcomer is refused.
	w.Tree.Leaf += 2
	signed, _ := w.appendSigned(nil)
	copy(w.Signature[:], tg.m.boss.id.Sign(WelcomeSigContext, signed))
	if _, err := verifyWelcome(w, boss.id, boss.kp); !errors.Is(err, ErrWelcomeInvalid) {
		t.Fatalf("a welcome with another member's leaf: %v", err)
	}
}

func FuzzParseTreeKeyUpdate(f *testing.F) {
	tg, _, ku := treeFixture(f)
	b, _ := MarshalKeyUpdate(ku)
	f.Add(b)
	tg.join(newPerson(f, "late"), RoleRead)
	tg.m.c.layout.revoked = append(tg.m.c.layout.revoked, tg.m.boss.key()) // force a full rotation
	parts := tg.rotate()
	b, _ = MarshalKeyUpdate(parts[0])
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		ku, err := ParseKeyUpdate(data)
		if err != nil {
			if !errors.Is(err, ErrKeyUpdateMalformed) {
				t.Fatalf("unexpected error type: %v", err)
			}
			return
		}
		out, err := MarshalKeyUpdate(ku)
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("accepted key update does not re-encode canonically: %v", err)
		}
	})
}

// FuzzAcceptTreeRotation opens arbitrary well-formed parts as a member:
// errors, never a panic, and a part that opens gives the right secrets.
func FuzzAcceptTreeRotation(f *testing.F) {
	tg, me, ku := treeFixture(f)
	b, _ := MarshalKeyUpdate(ku)
	f.Add(b)
	want := tg.m.g.Secrets[tg.m.g.Epoch].Read
	chain, _ := tg.m.c.MarshalBinary()
	f.Fuzz(func(t *testing.T, data []byte) {
		ku, err := ParseKeyUpdate(data)
		if err != nil {
			return
		}
		c, err := UnmarshalChain(chain)
		if err != nil {
			t.Fatal(err)
		}
		g := *me.g
		k, err := c.AcceptRotation(me.p.id, &g, ku)
		if err == nil && k.Secrets.Read != want {
			t.Fatal("opened to other secrets")
		}
	})
}
