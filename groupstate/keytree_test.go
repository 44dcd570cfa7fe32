package groupstate

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/meshnode/meshnode/keymgmt"
)

// tmember is a member following a tree group: its own chain and record,
// and every tree key and epoch secret it ever held (what it could use
// against later key updates).
type tmember struct {
	p      *person
	c      *Chain
	g      *Group
	keys   map[keymgmt.TreeKey]struct{}
	writes map[[32]byte]struct{} // write secrets it held
	gone   bool                  // removed: stops following
}

func (tm *tmember) remember() {
	if tm.g.Tree != nil {
		for _, k := range tm.g.Tree.Keys {
			tm.keys[k] = struct{}{}
		}
	}
	for _, s := range tm.g.Secrets {
		if s.Write != nil {
			tm.writes[*s.Write] = struct{}{}
		}
	}
}

// tgroup is a managed group rotated through its key tree, with members
// that follow it through welcomes, events and key updates on the wire.
type tgroup struct {
	t       testing.TB
	m       *managed
	params  RotationParams
	members []*tmember
	// updates are every rotation's parts (as parsed from the wire).
	updates [][]*KeyUpdate
}

func newTreeGroup(t testing.TB, policy Policy, p RotationParams) *tgroup {
	t.Helper()
	m := newManaged(t, policy)
	tg := &tgroup{t: t, m: m, params: p}
	boss := &tmember{p: m.boss, c: m.c, g: m.g, keys: map[keymgmt.TreeKey]struct{}{}, writes: map[[32]byte]struct{}{}}
	tg.members = append(tg.members, boss)
	return tg
}

func (tg *tgroup) member(p *person) *tmember {
	for _, tm := range tg.members {
		if tm.p == p {
			return tm
		}
	}
	tg.t.Fatalf("no member %v", p)
	return nil
}

// publish hands an event to every other following member's chain.
func (tg *tgroup) publish(ev *Event) {
	tg.t.Helper()
	for _, tm := range tg.members[1:] {
		if tm.gone {
			continue
		}
		if err := tm.c.Add(ev); err != nil && !errors.Is(err, ErrReplay) {
			tg.t.Fatalf("%s: add %s: %v", tm.p.kp.Nick, ev.Kind, err)
		}
	}
}

func (tg *tgroup) event(ev *Event) *Event {
	tg.t.Helper()
	out := tg.m.append(tg.t, tg.m.boss, ev)
	tg.publish(out)
	return out
}

// join adds p with a role (rotating first under from-join history) and
// has it open its welcome.
func (tg *tgroup) join(p *person, role Role) *tmember {
	tg.t.Helper()
	tg.event(&Event{Kind: EventAdd, KeyPackage: p.kp.Marshal(), Role: role})
	if tg.m.c.state.RotationDue != RotateNotDue {
		tg.rotate()
	}
	j, _ := tg.m.welcome(tg.t, p)
	tm := &tmember{p: p, c: j.Chain, g: j.Group, keys: map[keymgmt.TreeKey]struct{}{}, writes: map[[32]byte]struct{}{}}
	tm.remember()
	tg.members = append(tg.members, tm)
	return tm
}

// rotate rotates as the manager and has every following member open its
// part; it returns the parts.
func (tg *tgroup) rotate() []*KeyUpdate {
	tg.t.Helper()
	m := tg.m
	rot, err := m.c.RotateTree(m.boss.id, m.g.TreeSeed, m.tick(), tg.params)
	if err != nil {
		tg.t.Fatal(err)
	}
	if err := m.g.EnterRotation(rot.Keys); err != nil {
		tg.t.Fatal(err)
	}
	tg.members[0].remember()
	parts := wire(tg.t, rot.Parts)
	tg.updates = append(tg.updates, parts)
	for _, tm := range tg.members[1:] {
		if tm.gone {
			continue
		}
		if _, ok := tm.c.Member(tm.p.id.SigningKey()); !ok {
			continue
		}
		k, err := acceptParts(tm.c, tm.p.id, tm.g, parts)
		if err != nil {
			tg.t.Fatalf("%s opens the rotation to epoch %d (%s): %v", tm.p.kp.Nick, rot.Event.Epoch, rot.Keys.Mode, err)
		}
		if err := tm.g.EnterRotation(k); err != nil {
			tg.t.Fatal(err)
		}
		tm.remember()
	}
	return parts
}

// acceptParts tries every part as a member that fetched them all does.
func acceptParts(c *Chain, id *keymgmt.Identity, g *Group, parts []*KeyUpdate) (*RotatedKeys, error) {
	var err error
	for _, p := range parts {
		var k *RotatedKeys
		if k, err = c.AcceptRotation(id, g, p); err == nil {
			return k, nil
		}
		if !errors.Is(err, keymgmt.ErrNotRecipient) {
			return nil, err
		}
	}
	return nil, err
}

func (tg *tgroup) remove(p *person) {
	tg.t.Helper()
	tg.event(&Event{Kind: EventRemove, Target: p.key()})
	tg.member(p).gone = true
	tg.rotate()
}

// crack has a holder of keys try every key against every wrap of the
// given rotations, taking every key it gets into the next round, until
// nothing new opens: the keys and secrets it can reach.
func crack(g GroupID, updates [][]*KeyUpdate, held map[keymgmt.TreeKey]struct{}) (map[keymgmt.TreeKey]struct{}, []*keymgmt.EpochSecrets) {
	have := map[keymgmt.TreeKey]struct{}{}
	for k := range held {
		have[k] = struct{}{}
	}
	var secrets []*keymgmt.EpochSecrets
	for grew := true; grew; {
		grew = false
		for _, parts := range updates {
			for _, ku := range parts {
				if ku.Tree == nil {
					continue
				}
				scope := treeScope(g, ku.NewEpoch(), ku.Head())
				for _, w := range ku.Tree.Wraps {
					for k := range have {
						if got, err := keymgmt.UnwrapTreeKey(&k, w.Wrapped, treeNodeCtx(scope, w.Tree, w.Child)); err == nil {
							if _, dup := have[got]; !dup {
								have[got] = struct{}{}
								grew = true
							}
						}
					}
				}
				for tree, ws := range [][]byte{ku.Tree.Writers, ku.Tree.Readers} {
					if ws == nil {
						continue
					}
					root := keymgmt.TreeRoot(ku.Tree.Depths[tree])
					for k := range have {
						if s, err := keymgmt.UnwrapTreeSecrets(&k, ws, tree == 1, treeNodeCtx(scope, keymgmt.TreeID(tree), root)); err == nil {
							secrets = append(secrets, s)
						}
					}
				}
			}
		}
	}
	return have, secrets
}

func treeParams() RotationParams { return RotationParams{TreeMin: 2} }

func TestKeyTreeRotations(t *testing.T) {
	tg := newTreeGroup(t, DefaultPolicy(), treeParams())
	var people []*person
	for i := range 9 {
		p := newPerson(t, fmt.Sprintf("m%d", i))
		role := RoleWrite
		if i%3 == 0 {
			role = RoleRead
		}
		tg.join(p, role)
		people = append(people, p)
	}
	// The creator drew the seed: every welcome carried a path, and the
	// first rotation is a path update already (the growth of the trees
	// marked their new roots).
	parts := tg.rotate()
	if len(parts) != 1 || parts[0].Mode() != ModePath || len(parts[0].Tree.LeafSeals) != 0 || len(parts[0].Tree.SeedSeals) != 0 {
		t.Fatalf("first rotation: %d parts, mode %s", len(parts), parts[0].Mode())
	}
	if tg.m.g.TreeSeed == nil || tg.m.g.TreeSeed.Epoch != 0 {
		t.Fatalf("manager's seed: %+v", tg.m.g.TreeSeed)
	}
	// A manager without the seed (a group made before key trees) sets
	// the tree up: a new seed, every member's leaf key by HPKE.
	tg.m.g.TreeSeed = nil
	parts = tg.rotate()
	if len(parts) != 1 || parts[0].Mode() != ModeFull || len(parts[0].Tree.LeafSeals) != 10 || len(parts[0].Tree.SeedSeals) != 1 {
		t.Fatalf("set-up rotation: %d parts, mode %s", len(parts), parts[0].Mode())
	}
	if tg.m.g.TreeSeed == nil || tg.m.g.TreeSeed.Epoch != 2 {
		t.Fatalf("manager's seed after set-up: %+v", tg.m.g.TreeSeed)
	}
	// A periodic rotation replaces no node: two wraps of the secrets.
	parts = tg.rotate()
	if parts[0].Mode() != ModePath || len(parts[0].Tree.Wraps) != 0 || parts[0].Tree.Writers == nil || parts[0].Tree.Readers == nil {
		t.Fatalf("periodic rotation: %+v", parts[0].Tree)
	}
	// Newcomers under shared history get their path in the welcome and
	// follow the next rotation.
	late := newPerson(t, "late")
	tg.join(late, RoleWrite)
	tg.rotate()
	// Removals are path updates of about 2·depth wraps.
	for _, p := range people[:4] {
		tg.remove(p)
		u := tg.updates[len(tg.updates)-1]
		if u[0].Mode() != ModePath {
			t.Fatalf("removal of %s: mode %s", p.kp.Nick, u[0].Mode())
		}
		if d := max(u[0].Tree.Depths[0], u[0].Tree.Depths[1]); len(u[0].Tree.Wraps) > 2*d {
			t.Fatalf("removal: %d wraps in trees of depths %v", len(u[0].Tree.Wraps), u[0].Tree.Depths)
		}
	}
	// Every member that stayed holds the manager's current secrets.
	want := tg.m.g.Secrets[tg.m.g.Epoch]
	for _, tm := range tg.members[1:] {
		if tm.gone {
			continue
		}
		got := tm.g.Secrets[tm.g.Epoch]
		if tm.g.Epoch != tg.m.g.Epoch || got.Read != want.Read {
			t.Fatalf("%s: epoch %d", tm.p.kp.Nick, tm.g.Epoch)
		}
		if role := mustMember(t, tg.m.c, tm.p).Role; role.CanWrite() != (got.Write != nil) {
			t.Fatalf("%s (%s) holds write secret: %v", tm.p.kp.Nick, role, got.Write != nil)
		}
	}
}

func mustMember(t testing.TB, c *Chain, p *person) *Member {
	t.Helper()
	m, ok := c.Member(p.id.SigningKey())
	if !ok {
		t.Fatalf("%s is not a member", p.kp.Nick)
	}
	return m
}

// The removed member cannot derive any new key: every key it ever held,
// tried against every wrap of every later rotation (and every key that
// opens, tried again), opens nothing.
func TestKeyTreeForwardSecrecy(t *testing.T) {
	tg := newTreeGroup(t, DefaultPolicy(), treeParams())
	var people []*person
	for i := range 12 {
		p := newPerson(t, fmt.Sprintf("m%d", i))
		role := RoleWrite
		if i%4 == 0 {
			role = RoleRead
		}
		tg.join(p, role)
		people = append(people, p)
	}
	tg.rotate()
	tg.rotate()
	victims := []*person{people[5], people[0], people[7]} // writer, reader, writer
	for _, v := range victims {
		before := len(tg.updates)
		tm := tg.member(v)
		tg.remove(v)
		tg.rotate()
		tg.join(newPerson(t, "new-"+v.kp.Nick), RoleWrite) // may take its leaf
		tg.rotate()
		after := tg.updates[before:]
		got, secrets := crack(tg.m.c.GroupID(), after, tm.keys)
		if len(got) != len(tm.keys) || len(secrets) != 0 {
			t.Fatalf("%s, removed, derived %d new keys and %d epoch secrets", v.kp.Nick, len(got)-len(tm.keys), len(secrets))
		}
		// And the key updates are closed to it through the member API.
		for _, parts := range after {
			if _, err := acceptParts(follow(t, tg.m.c), v.id, tm.g, parts); err == nil {
				t.Fatalf("%s opened a key update after its removal", v.kp.Nick)
			}
		}
	}
	// A member that stayed does reach the latest secrets this way.
	stay := tg.member(people[1])
	_, secrets := crack(tg.m.c.GroupID(), tg.updates[len(tg.updates)-1:], stay.keys)
	if len(secrets) == 0 {
		t.Fatal("the crack finds nothing even for a member: it proves nothing")
	}
}

// Under from-join history the newcomer's path is replaced when it joins:
// nothing it holds opens any rotation made before.
func TestKeyTreeBackwardSecrecy(t *testing.T) {
	tg := newTreeGroup(t, Policy{History: HistoryFromJoin}, treeParams())
	for i := range 6 {
		tg.join(newPerson(t, fmt.Sprintf("m%d", i)), RoleWrite)
	}
	tg.rotate()
	for range 2 {
		tg.rotate()
	}
	before := len(tg.updates)
	newbie := newPerson(t, "newbie")
	tm := tg.join(newbie, RoleWrite)
	joinRotation := tg.updates[before]
	if joinRotation[0].Mode() != ModePath {
		t.Fatalf("from-join add: mode %s", joinRotation[0].Mode())
	}
	for _, tk := range joinRotation[0].Tree.Wraps {
		if l, _ := tg.m.c.TreeLeaf(newbie.id.SigningKey()); tk.Tree == l.Tree && tk.Child == l.Node {
			t.Fatal("the join rotation wraps under the newcomer's leaf (its welcome carries the path)")
		}
	}
	got, secrets := crack(tg.m.c.GroupID(), tg.updates[:before], tm.keys)
	if len(got) != len(tm.keys) || len(secrets) != 0 {
		t.Fatalf("the newcomer derived %d keys and %d epoch secrets of rotations before it joined", len(got)-len(tm.keys), len(secrets))
	}
	// Of the rotation that let it in, only the epoch it was welcomed to.
	_, secrets = crack(tg.m.c.GroupID(), tg.updates[before:before+1], tm.keys)
	for _, s := range secrets {
		if s.Read != tm.g.Secrets[tm.g.Epoch].Read {
			t.Fatal("the newcomer derived secrets of another epoch")
		}
	}
	if len(tm.g.Secrets) != 1 {
		t.Fatalf("newcomer holds %d epochs under from-join", len(tm.g.Secrets))
	}
	tg.rotate()
	if tm.g.Epoch != tg.m.g.Epoch {
		t.Fatal("the newcomer does not follow the next rotation")
	}
}

// A reader never holds the write secret: not in its copy, and not by
// trying every tree key it ever held against every wrap, across a reader
// promoted to writer and a writer demoted to reader.
func TestKeyTreeReaderNeverHoldsWriteSecret(t *testing.T) {
	tg := newTreeGroup(t, DefaultPolicy(), treeParams())
	var readers []*tmember
	for i := range 8 {
		role := RoleWrite
		if i%2 == 0 {
			role = RoleRead
		}
		tm := tg.join(newPerson(t, fmt.Sprintf("m%d", i)), role)
		if role == RoleRead {
			readers = append(readers, tm)
		}
	}
	tg.rotate()
	tg.rotate()
	// Demote a writer: its old path is replaced, it moves to the readers'
	// tree, and it gets no write secret from then on.
	demoted := tg.member(tg.members[2].p)
	if r := mustMember(t, tg.m.c, demoted.p).Role; r != RoleWrite {
		t.Fatalf("member 2 has role %s", r)
	}
	before := len(tg.updates)
	tg.event(&Event{Kind: EventSetRole, Target: demoted.p.key(), Role: RoleRead, Seen: &SeenSet{}})
	tg.rotate()
	tg.rotate()
	if l, _ := tg.m.c.TreeLeaf(demoted.p.id.SigningKey()); l.Tree != keymgmt.TreeReaders {
		t.Fatal("demoted member not in the readers' tree")
	}
	for _, s := range tg.updates[before:] {
		_, secrets := crack(tg.m.c.GroupID(), [][]*KeyUpdate{s}, demoted.keys)
		for _, sec := range secrets {
			if sec.Write != nil {
				t.Fatal("a demoted member derived a later write secret")
			}
		}
	}
	for _, r := range readers {
		if r.g.Tree == nil || r.g.Tree.Tree != keymgmt.TreeReaders {
			t.Fatalf("reader %s path %+v", r.p.kp.Nick, r.g.Tree)
		}
		if len(r.writes) != 0 {
			t.Fatalf("reader %s held a write secret", r.p.kp.Nick)
		}
		_, secrets := crack(tg.m.c.GroupID(), tg.updates, r.keys)
		if len(secrets) == 0 {
			t.Fatal("a reader reaches no secrets at all: the check proves nothing")
		}
		for _, s := range secrets {
			if s.Write != nil {
				t.Fatalf("reader %s derived a write secret", r.p.kp.Nick)
			}
		}
	}
	// A reader promoted to writer gets the write secret, and nothing it
	// held as a reader opens the writers' tree of earlier rotations.
	promoted := readers[0]
	held := maps2keys(promoted.keys)
	before = len(tg.updates)
	tg.event(&Event{Kind: EventSetRole, Target: promoted.p.key(), Role: RoleWrite})
	tg.rotate()
	if promoted.g.Secrets[promoted.g.Epoch].Write == nil {
		t.Fatal("promoted reader got no write secret")
	}
	_, secrets := crack(tg.m.c.GroupID(), tg.updates[:before], held)
	for _, s := range secrets {
		if s.Write != nil {
			t.Fatal("a reader's keys open an earlier writers' root")
		}
	}
}

func maps2keys(m map[keymgmt.TreeKey]struct{}) map[keymgmt.TreeKey]struct{} {
	out := map[keymgmt.TreeKey]struct{}{}
	for k := range m {
		out[k] = struct{}{}
	}
	return out
}

// Several managers rotate the same tree: a new manager gets the seed in
// the next rotation (the handover) and its rotations open for everyone;
// removing a manager (who knew the seed) draws a new one.
func TestKeyTreeManagersAndHandover(t *testing.T) {
	tg := newTreeGroup(t, DefaultPolicy(), treeParams())
	var ms []*tmember
	for i := range 6 {
		ms = append(ms, tg.join(newPerson(t, fmt.Sprintf("m%d", i)), RoleWrite))
	}
	tg.rotate()
	second := ms[0]
	tg.event(&Event{Kind: EventAddManager, Target: second.p.key()})
	parts := tg.rotate() // carries the handover
	if parts[0].Mode() != ModePath || len(parts[0].Tree.SeedSeals) != 1 {
		t.Fatalf("handover rotation: mode %s, %d seed seals", parts[0].Mode(), len(parts[0].Tree.SeedSeals))
	}
	if second.g.TreeSeed == nil || *second.g.TreeSeed != *tg.m.g.TreeSeed {
		t.Fatal("the new manager did not receive the seed")
	}
	// The second manager removes a member and rotates; the first follows
	// it as a member, and still rotates the same tree after.
	victim := ms[3]
	ev, err := second.c.Append(&Event{Kind: EventRemove, Target: victim.p.key()}, second.p.id, tg.m.tick())
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.m.c.Add(ev); err != nil {
		t.Fatal(err)
	}
	tg.publish(ev)
	victim.gone = true
	rot, err := second.c.RotateTree(second.p.id, second.g.TreeSeed, tg.m.tick(), tg.params)
	if err != nil {
		t.Fatal(err)
	}
	if rot.Keys.Mode != ModePath {
		t.Fatalf("second manager's removal: mode %s", rot.Keys.Mode)
	}
	if err := second.g.EnterRotation(rot.Keys); err != nil {
		t.Fatal(err)
	}
	parts = wire(t, rot.Parts)
	tg.updates = append(tg.updates, parts)
	for _, tm := range append([]*tmember{tg.members[0]}, tg.members[1:]...) {
		if tm.gone || tm == second {
			continue
		}
		k, err := acceptParts(tm.c, tm.p.id, tm.g, parts)
		if err != nil {
			t.Fatalf("%s opens the second manager's rotation: %v", tm.p.kp.Nick, err)
		}
		if err := tm.g.EnterRotation(k); err != nil {
			t.Fatal(err)
		}
		tm.remember()
	}
	if _, err := acceptParts(follow(t, tg.m.c), victim.p.id, victim.g, parts); err == nil {
		t.Fatal("the removed member opened the second manager's rotation")
	}
	tg.rotate() // the first manager again, on the tree the second changed
	// A manager without the seed (never handed over) can still rotate: it
	// sets up a new tree, which every member opens.
	third := ms[1]
	tg.event(&Event{Kind: EventAddManager, Target: third.p.key()})
	rot, err = third.c.RotateTree(third.p.id, nil, tg.m.tick(), tg.params)
	if err != nil {
		t.Fatal(err)
	}
	if rot.Keys.Mode != ModeFull {
		t.Fatalf("a manager without the seed: %s", rot.Keys.Mode)
	}
	if err := third.g.EnterRotation(rot.Keys); err != nil {
		t.Fatal(err)
	}
	parts = wire(t, rot.Parts)
	for _, tm := range tg.members {
		if tm.gone || tm == third {
			continue
		}
		k, err := acceptParts(tm.c, tm.p.id, tm.g, parts)
		if err != nil {
			t.Fatalf("%s opens a full rotation: %v", tm.p.kp.Nick, err)
		}
		if err := tm.g.EnterRotation(k); err != nil {
			t.Fatal(err)
		}
		if tm.p.key() == tg.m.boss.key() || tm == second {
			if tm.g.TreeSeed == nil || *tm.g.TreeSeed != *third.g.TreeSeed {
				t.Fatalf("manager %s did not get the new seed", tm.p.kp.Nick)
			}
		} else if tm.g.TreeSeed != nil {
			t.Fatalf("member %s got the seed", tm.p.kp.Nick)
		}
	}
}

func TestKeyTreeManagerRemovalDrawsNewSeed(t *testing.T) {
	tg := newTreeGroup(t, DefaultPolicy(), treeParams())
	var ms []*tmember
	for i := range 6 {
		ms = append(ms, tg.join(newPerson(t, fmt.Sprintf("m%d", i)), RoleWrite))
	}
	tg.rotate()
	ex := ms[2]
	tg.event(&Event{Kind: EventAddManager, Target: ex.p.key()})
	tg.rotate()
	if ex.g.TreeSeed == nil {
		t.Fatal("no handover")
	}
	// It steps down to write: still a writer, it keeps following.
	tg.event(&Event{Kind: EventSetRole, Target: ex.p.key(), Role: RoleWrite})
	parts := tg.rotate()
	if parts[0].Mode() != ModePath {
		t.Fatalf("after a step-down: %s", parts[0].Mode())
	}
	oldSeed := *tg.m.g.TreeSeed
	tg.remove(ex.p)
	u := tg.updates[len(tg.updates)-1]
	if u[0].Mode() != ModeFull || *tg.m.g.TreeSeed == oldSeed {
		t.Fatalf("removing a former manager: mode %s, seed replaced %v", u[0].Mode(), *tg.m.g.TreeSeed != oldSeed)
	}
	// With the old seed it derives nothing of the new tree.
	for _, tm := range tg.members[1:] {
		if tm.gone {
			continue
		}
		p, err := tg.m.c.TreePathOf(&oldSeed, tm.p.id.SigningKey())
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(p.Keys, tm.g.Tree.Root()) {
			t.Fatal("the old seed derives the new root")
		}
	}
}

// A manager without a tree rotates a group below TreeMin with direct
// seals and sets the tree up from TreeMin members on; removing a former
// manager from a small group drops the tree for direct seals.
func TestKeyTreeModeBySize(t *testing.T) {
	tg := newTreeGroup(t, DefaultPolicy(), RotationParams{TreeMin: 4})
	tg.m.g.TreeSeed = nil // a group made before key trees
	a := tg.join(newPerson(t, "a"), RoleWrite)
	if a.g.Tree != nil {
		t.Fatal("a path from a manager without the seed")
	}
	parts := tg.rotate()
	if parts[0].Mode() != ModeDirect || tg.m.g.TreeSeed != nil || a.g.Tree != nil {
		t.Fatalf("2 members: %s", parts[0].Mode())
	}
	b := tg.join(newPerson(t, "b"), RoleRead)
	c := tg.join(newPerson(t, "c"), RoleWrite)
	if parts = tg.rotate(); parts[0].Mode() != ModeFull || a.g.Tree == nil || b.g.Tree == nil {
		t.Fatalf("4 members: %s", parts[0].Mode())
	}
	tg.remove(b.p)
	if u := tg.updates[len(tg.updates)-1]; u[0].Mode() != ModePath || a.g.Tree == nil {
		t.Fatalf("a member removed, 3 left: %s", u[0].Mode())
	}
	tg.event(&Event{Kind: EventAddManager, Target: c.p.key()})
	tg.rotate()
	tg.remove(c.p)
	if u := tg.updates[len(tg.updates)-1]; u[0].Mode() != ModeDirect || a.g.Tree != nil || tg.m.g.TreeSeed != nil {
		t.Fatalf("a manager removed, 2 left: %s", u[0].Mode())
	}
}

// With an X-Wing member a group uses the tree from two members on (an
// X-Wing seal is over a kilobyte); with classic members only, from
// TreeMinMembers. Both settle on the same default (TreeMin 0).
func TestKeyTreeModeBySuite(t *testing.T) {
	for _, tc := range []struct {
		suite keymgmt.Suite
		want  KeyUpdateMode
	}{{keymgmt.SuiteX25519, ModeDirect}, {keymgmt.SuitePQ, ModeFull}} {
		tg := newTreeGroup(t, DefaultPolicy(), RotationParams{})
		tg.m.g.TreeSeed = nil // a group made before key trees
		a := tg.join(newPersonSuite(t, "a", tc.suite), RoleWrite)
		parts := tg.rotate()
		if parts[0].Mode() != tc.want {
			t.Fatalf("2 members, one %s: %s, want %s", tc.suite, parts[0].Mode(), tc.want)
		}
		if (a.g.Tree != nil) != (tc.want == ModeFull) {
			t.Fatalf("2 members, one %s: path %v", tc.suite, a.g.Tree != nil)
		}
		tg.rotate()
		if a.g.Epoch != tg.m.g.Epoch {
			t.Fatalf("%s: the member does not follow", tc.suite)
		}
	}
}

// Large rotations split into parts by subtree: each member finds
// everything it needs in one part.
func TestKeyTreeParts(t *testing.T) {
	tg := newTreeGroup(t, DefaultPolicy(), RotationParams{TreeMin: 2, MaxPart: 1200})
	var people []*person
	for i := range 24 {
		role := RoleWrite
		if i%3 == 0 {
			role = RoleRead
		}
		p := newPerson(t, fmt.Sprintf("m%d", i))
		tg.join(p, role)
		people = append(people, p)
	}
	tg.m.g.TreeSeed = nil
	parts := tg.rotate() // full: leaf seals for 25 members
	if len(parts) < 3 {
		t.Fatalf("a full rotation of 25 members in %d parts of 1200 bytes", len(parts))
	}
	for _, p := range parts {
		b, _ := MarshalKeyUpdate(p)
		if len(b) > 1200 {
			t.Fatalf("part of %d bytes", len(b))
		}
	}
	tg.remove(people[4])
	tg.rotate()
}

// A member that missed several rotations follows them in order; one
// opened out of order waits for the one before.
func TestKeyTreeCatchUpInOrder(t *testing.T) {
	tg := newTreeGroup(t, DefaultPolicy(), treeParams())
	var ms []*tmember
	for i := range 8 {
		ms = append(ms, tg.join(newPerson(t, fmt.Sprintf("m%d", i)), RoleWrite))
	}
	tg.rotate()
	late := ms[5]
	late.gone = true // offline: follows nothing
	var events []*Event
	start := len(tg.updates)
	for _, v := range []*tmember{ms[1], ms[2]} {
		events = append(events, tg.event(&Event{Kind: EventRemove, Target: v.p.key()}))
		v.gone = true
		tg.rotate()
		tg.rotate()
	}
	missed := tg.updates[start:]
	// Out of order: the last one first.
	last := missed[len(missed)-1]
	if _, err := acceptParts(late.c, late.p.id, late.g, last); !errors.Is(err, ErrUnknownParent) {
		t.Fatalf("a later rotation first: %v", err)
	}
	ei := 0
	for i, parts := range missed {
		// The removal event travels in the old epoch's mailbox before the
		// rotation that follows it.
		if i%2 == 0 {
			if err := late.c.Add(events[ei]); err != nil && !errors.Is(err, ErrReplay) {
				t.Fatal(err)
			}
			ei++
		}
		k, err := acceptParts(late.c, late.p.id, late.g, parts)
		if err != nil {
			t.Fatalf("missed rotation %d: %v", i, err)
		}
		if err := late.g.EnterRotation(k); err != nil {
			t.Fatal(err)
		}
	}
	if late.g.Epoch != tg.m.g.Epoch || late.g.Secrets[late.g.Epoch].Read != tg.m.g.Secrets[tg.m.g.Epoch].Read {
		t.Fatal("the late member did not catch up")
	}
}
