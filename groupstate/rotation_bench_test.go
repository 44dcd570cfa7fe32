package groupstate

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/meshnode/meshnode/keymgmt"
)

// benchTree is a managed group of n members (the manager included), a
// third of them read-only, with X25519 identities, rotated through its
// key tree, and a pool of key packages for newcomers.
type benchTree struct {
	m      *managed
	people map[[32]byte]*person // every member but the manager
	order  [][32]byte           // members in the order they joined
	pool   []*person
	// lastRole is the role of the latest victim, given to the newcomer
	// that replaces it (the mix of roles stays).
	lastRole Role
	params   RotationParams
	now      time.Time
	suite    keymgmt.Suite
}

func newBenchTree(b *testing.B, n int, p RotationParams) *benchTree {
	return newBenchTreeSuite(b, n, p, keymgmt.SuiteX25519)
}

// newBenchTreeSuite is newBenchTree with every member (the manager
// included) of one key suite.
func newBenchTreeSuite(b *testing.B, n int, p RotationParams, suite keymgmt.Suite) *benchTree {
	b.Helper()
	now := time.Now()
	boss := &person{}
	var err error
	if boss.id, err = keymgmt.NewIdentity(suite); err != nil {
		b.Fatal(err)
	}
	g, c, err := NewManagedGroup("bench", nil, boss.id, "bot", true, DefaultPolicy(), now)
	if err != nil {
		b.Fatal(err)
	}
	bt := &benchTree{m: &managed{g: g, c: c, boss: boss, clock: now}, people: map[[32]byte]*person{}, params: p, now: now, suite: suite}
	for i := range n - 1 {
		role := RoleWrite
		if i%3 == 0 {
			role = RoleRead
		}
		bt.addMember(b, benchPersonSuite(b, suite), role)
	}
	bt.rotate(b) // sets the tree up (direct below TreeMin)
	return bt
}

func benchPerson(b *testing.B) *person { return benchPersonSuite(b, keymgmt.SuiteX25519) }

func benchPersonSuite(b *testing.B, suite keymgmt.Suite) *person {
	id, err := keymgmt.NewIdentity(suite)
	if err != nil {
		b.Fatal(err)
	}
	kp, err := id.NewKeyPackage("member", 24*time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	return &person{id: id, kp: kp}
}

func (bt *benchTree) tick() time.Time {
	bt.m.clock = bt.m.clock.Add(time.Millisecond)
	return bt.m.clock
}

func (bt *benchTree) event(b *testing.B, ev *Event) {
	if _, err := bt.m.c.Append(ev, bt.m.boss.id, bt.tick()); err != nil {
		b.Fatal(err)
	}
}

func (bt *benchTree) addMember(b *testing.B, p *person, role Role) {
	bt.event(b, &Event{Kind: EventAdd, KeyPackage: p.kp.Marshal(), Role: role})
	bt.people[p.key()] = p
	bt.order = append(bt.order, p.key())
}

func (bt *benchTree) newcomer(b *testing.B) *person {
	if len(bt.pool) == 0 {
		for range 64 {
			bt.pool = append(bt.pool, benchPersonSuite(b, bt.suite))
		}
	}
	p := bt.pool[len(bt.pool)-1]
	bt.pool = bt.pool[:len(bt.pool)-1]
	return p
}

// victim returns the member who joined longest ago (not the manager).
func (bt *benchTree) victim() *person {
	k := bt.order[0]
	bt.order = bt.order[1:]
	p := bt.people[k]
	delete(bt.people, k)
	bt.lastRole = RoleWrite
	if m, ok := bt.m.c.Member(p.id.SigningKey()); ok {
		bt.lastRole = m.Role
	}
	return p
}

func (bt *benchTree) rotate(b *testing.B) *Rotation {
	seed := bt.m.g.TreeSeed
	if bt.params.TreeMin > MaxMembers {
		// Direct seals asked for: a manager without a seed below TreeMin
		// (a group's creator draws one, which a path update would keep).
		seed = nil
	}
	rot, err := bt.m.c.RotateTree(bt.m.boss.id, seed, bt.tick(), bt.params)
	if err != nil {
		b.Fatal(err)
	}
	if err := bt.m.g.EnterRotation(rot.Keys); err != nil {
		b.Fatal(err)
	}
	return rot
}

// op is one measured manager operation: it changes the group, rotates and
// returns the rotation; restore (untimed) brings the group back to its
// size.
type benchOp struct {
	name    string
	run     func(b *testing.B, bt *benchTree) *Rotation
	restore func(b *testing.B, bt *benchTree)
}

var benchOps = []benchOp{
	{
		name: "remove",
		run: func(b *testing.B, bt *benchTree) *Rotation {
			bt.event(b, &Event{Kind: EventRemove, Target: bt.victim().key()})
			return bt.rotate(b)
		},
		restore: func(b *testing.B, bt *benchTree) { bt.addMember(b, bt.newcomer(b), bt.lastRole) },
	},
	{
		name: "add",
		run: func(b *testing.B, bt *benchTree) *Rotation {
			// The newcomer takes the role of the member restore removes, so
			// the mix of roles stays. From-join: the add makes the
			// rotation due.
			role := RoleWrite
			if m, ok := bt.m.c.Member(ed25519.PublicKey(bt.order[0][:])); ok {
				role = m.Role
			}
			bt.addMember(b, bt.newcomer(b), role)
			return bt.rotate(b)
		},
		restore: func(b *testing.B, bt *benchTree) {
			bt.event(b, &Event{Kind: EventRemove, Target: bt.victim().key()})
			bt.rotate(b)
		},
	},
	{
		name:    "periodic",
		run:     func(b *testing.B, bt *benchTree) *Rotation { return bt.rotate(b) },
		restore: func(*testing.B, *benchTree) {},
	},
}

// BenchmarkRotation measures the rotations of a managed group of 10 to
// 10,000 members through its key tree (ARCHITECTURE §7, issue 19): a
// removal, an add under from-join history and a periodic rotation. ns/op
// is the manager's time to append the event (if any), draw the secrets,
// sign the rotate event and build the key update. Reported with it:
//
//	wraps        symmetric wraps in the key update (node keys and the
//	             epoch secrets under the roots)
//	hpke         HPKE seals in it (tree seed handovers, new leaf keys)
//	kB           the encoded key update, all parts
//	envelopes    key update parts (one envelope each)
//	envelope-kB  the envelopes carrying it, padded and signed
//	member-µs    a member's time to check the rotate event's signature,
//	             parse every part, find its own and open it (mean of 32)
//
// Run: go test -run '^$' -bench 'BenchmarkRotation/' ./groupstate
func BenchmarkRotation(b *testing.B) {
	for _, n := range []int{10, 100, 1000, 10000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			bt := newBenchTree(b, n, RotationParams{})
			for _, op := range benchOps {
				b.Run("op="+op.name, func(b *testing.B) {
					policy := Policy{History: HistoryShared}
					if op.name == "add" {
						policy.History = HistoryFromJoin
					}
					bt.event(b, &Event{Kind: EventSetPolicy, Policy: policy})
					b.ResetTimer()
					var rot *Rotation
					for range b.N {
						rot = op.run(b, bt)
						b.StopTimer()
						op.restore(b, bt)
						b.StartTimer()
					}
					b.StopTimer()
					benchReport(b, bt, op)
					_ = rot
				})
			}
		})
	}
}

// benchReport makes one more operation and reports its key update's
// size and a member's time to open it.
func benchReport(b *testing.B, bt *benchTree, op benchOp) {
	b.Helper()
	const samples = 32
	type sample struct {
		p    *person
		held *keymgmt.TreePath
		g    *Group
	}
	var ss []sample
	for i := range samples {
		k := bt.order[len(bt.order)/2+i*(len(bt.order)/2)/samples]
		p := bt.people[k]
		held, err := bt.m.c.TreePathOf(bt.m.g.TreeSeed, p.id.SigningKey())
		if err != nil {
			b.Fatal(err)
		}
		ss = append(ss, sample{p: p, held: held})
	}
	rot := op.run(b, bt)
	keys, err := bt.m.g.Keys(rot.Event.Epoch - 1)
	if err != nil {
		b.Fatal(err)
	}
	var wires [][]byte
	total, envBytes, wraps, hpke := 0, 0, 0, 0
	for i, part := range rot.Parts {
		w, err := MarshalKeyUpdate(part)
		if err != nil {
			b.Fatal(err)
		}
		wires = append(wires, w)
		total += len(w)
		if t := part.Tree; t != nil {
			wraps += len(t.Wraps)
			hpke += len(t.SeedSeals) + len(t.LeafSeals)
			if t.Writers != nil {
				wraps++
			}
			if t.Readers != nil {
				wraps++
			}
		} else {
			hpke += len(part.Entries)
		}
		p := &Payload{GroupID: bt.m.c.GroupID(), Epoch: rot.Event.Epoch - 1, StateHead: [32]byte(rot.Event.Parent),
			Seq: uint64(i + 1), Kind: KindKeyUpdate, Nick: "bot", Body: w}
		if err := SignPayloadAs(p, bt.m.boss.id); err != nil {
			b.Fatal(err)
		}
		env, err := SealMessage(keys, p)
		if err != nil {
			b.Fatal(err)
		}
		envBytes += env.Size()
	}
	var perMember time.Duration
	if rot.Keys.Mode != ModeDirect {
		var start time.Time
		for s := -1; s < samples; s++ { // s = -1 warms up, untimed
			if s == 0 {
				start = time.Now()
			}
			me := ss[max(s, 0)]
			opened := false
			for _, w := range wires {
				ku, err := ParseKeyUpdate(w)
				if err != nil {
					b.Fatal(err)
				}
				if err := ku.Rotate.Verify(); err != nil {
					b.Fatal(err)
				}
				if _, err := bt.m.c.openTree(me.p.id, me.held, ku); err == nil {
					opened = true
					break
				} else if !errors.Is(err, keymgmt.ErrNotRecipient) {
					b.Fatal(err)
				}
			}
			if !opened {
				b.Fatal("member found no part")
			}
		}
		perMember = time.Since(start) / samples
	}
	op.restore(b, bt)
	b.ReportMetric(float64(wraps), "wraps")
	b.ReportMetric(float64(hpke), "hpke")
	b.ReportMetric(float64(total)/1e3, "kB")
	b.ReportMetric(float64(len(rot.Parts)), "envelopes")
	b.ReportMetric(float64(envBytes)/1e3, "envelope-kB")
	b.ReportMetric(float64(perMember.Nanoseconds())/1e3, "member-µs")
}

// BenchmarkRotationCrossover compares, for small groups, the removal of
// one member with direct HPKE seals and through the key tree (X25519, a
// third read-only): the sizes where the tree starts to pay set
// TreeMinMembers. ns/op is the manager's time; kB the key update;
// member-µs a member's time to open its copy.
//
// Run: go test -run '^$' -bench 'BenchmarkRotationCrossover' ./groupstate
func BenchmarkRotationCrossover(b *testing.B) {
	for _, suite := range []keymgmt.Suite{keymgmt.SuiteX25519, keymgmt.SuitePQ} {
		for _, n := range []int{2, 3, 4, 5, 6, 8, 12, 16, 32} {
			for _, mode := range []string{"direct", "tree"} {
				benchCrossover(b, suite, n, mode)
			}
		}
	}
}

func benchCrossover(b *testing.B, suite keymgmt.Suite, n int, mode string) {
	b.Run(fmt.Sprintf("suite=%s/members=%d/mode=%s", suite, n, mode), func(b *testing.B) {
		p := RotationParams{TreeMin: 1 << 20} // never the tree
		if mode == "tree" {
			p.TreeMin = 1
		}
		bt := newBenchTreeSuite(b, n+1, p, suite) // n after the removal
		var rot *Rotation
		for range b.N {
			rot = benchOps[0].run(b, bt)
			b.StopTimer()
			benchOps[0].restore(b, bt)
			b.StartTimer()
		}
		b.StopTimer()
		total := 0
		for _, part := range rot.Parts {
			w, _ := MarshalKeyUpdate(part)
			total += len(w)
		}
		// A member's open: HPKE (direct) or its path (tree).
		me := bt.people[bt.order[len(bt.order)-1]] // stays
		var held *keymgmt.TreePath
		if mode == "tree" {
			held, _ = bt.m.c.TreePathOf(bt.m.g.TreeSeed, me.id.SigningKey())
		}
		rot = benchOps[0].run(b, bt)
		st, err := bt.m.c.StateAt(rot.Event.ID())
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		const reps = 50
		for range reps {
			for _, part := range rot.Parts {
				var err error
				if part.Tree != nil {
					_, err = bt.m.c.openTree(me.id, held, part)
				} else {
					_, err = OpenKeyUpdate(me.id, st, part)
				}
				if err != nil && !errors.Is(err, keymgmt.ErrNotRecipient) {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(total)/1e3, "kB")
		b.ReportMetric(float64(time.Since(start).Nanoseconds())/reps/1e3, "member-µs")
	})
}

// BenchmarkRotationNewSeed measures the costliest tree rotation: a
// manager who knew the tree seed is removed, so the rotation draws a new
// seed and seals every member's new leaf key with HPKE (ModeFull), in
// both suites. Metrics as BenchmarkRotation's; a manager is promoted and
// handed the seed before each measured removal (untimed).
//
// Run: go test -run '^$' -bench 'BenchmarkRotationNewSeed' -benchtime=1x ./groupstate
func BenchmarkRotationNewSeed(b *testing.B) {
	for _, suite := range []keymgmt.Suite{keymgmt.SuiteX25519, keymgmt.SuitePQ} {
		for _, n := range []int{100, 1000, 10000} {
			b.Run(fmt.Sprintf("suite=%s/members=%d", suite, n), func(b *testing.B) {
				bt := newBenchTreeSuite(b, n, RotationParams{}, suite)
				op := benchOp{
					name: "remove-manager",
					run: func(b *testing.B, bt *benchTree) *Rotation {
						bt.event(b, &Event{Kind: EventRemove, Target: bt.victim().key()})
						rot := bt.rotate(b)
						if rot.Keys.Mode != ModeFull {
							b.Fatalf("removing a manager: %s", rot.Keys.Mode)
						}
						return rot
					},
					restore: func(b *testing.B, bt *benchTree) {
						bt.addMember(b, bt.newcomer(b), RoleWrite)
						bt.promoteOldest(b)
					},
				}
				bt.promoteOldest(b)
				b.ResetTimer()
				for range b.N {
					op.run(b, bt)
					b.StopTimer()
					op.restore(b, bt)
					b.StartTimer()
				}
				b.StopTimer()
				benchReport(b, bt, op)
			})
		}
	}
}

// promoteOldest makes the member victim() picks next a manager and hands
// it the tree seed (a rotation), so that its removal draws a new seed.
func (bt *benchTree) promoteOldest(b *testing.B) {
	k := bt.order[0]
	if m, ok := bt.m.c.Member(ed25519.PublicKey(k[:])); !ok || !m.Role.CanWrite() {
		// A reader: move a writer to the front.
		for i, o := range bt.order {
			if m, ok := bt.m.c.Member(ed25519.PublicKey(o[:])); ok && m.Role.CanWrite() {
				bt.order[0], bt.order[i] = bt.order[i], bt.order[0]
				break
			}
		}
		k = bt.order[0]
	}
	bt.event(b, &Event{Kind: EventAddManager, Target: k})
	bt.rotate(b)
}
