package groupstate

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/meshnode/meshnode/keymgmt"
)

// sampleEvents returns a valid signed event of every kind (not a chain).
func sampleEvents(t testing.TB) []*Event {
	t.Helper()
	m := newManaged(t, Policy{History: HistoryFromJoin, RotateEvery: time.Hour, RotateAfter: 100})
	bob := newPerson(t, "bob")
	pq := newPersonSuite(t, "pq", keymgmt.SuitePQ)
	carl := newPerson(t, "carl")
	evs := m.c.Events()
	for _, ev := range []*Event{
		{Kind: EventAdd, KeyPackage: bob.kp.Marshal(), Role: RoleWrite, Bot: true},
		{Kind: EventAdd, KeyPackage: pq.kp.Marshal(), Role: RoleRead},
		{Kind: EventRemove, Target: pq.key()},
		{Kind: EventAdd, KeyPackage: carl.kp.Marshal(), Role: RoleWrite},
		{Kind: EventRemove, Target: carl.key(), SeqLimit: 42},
		{Kind: EventSetRole, Target: bob.key(), Role: RoleRead, SeqLimit: 5},
		{Kind: EventSetPolicy, Policy: DefaultPolicy()},
		{Kind: EventSetHosts, Hosts: []string{"/dns4/a.example/tcp/1/p2p/x", "/dns4/b.example/tcp/1/p2p/y"}},
		{Kind: EventSetHosts},
		{Kind: EventRotate, Epoch: 1, WPub: [32]byte{1, 2, 3}},
		{Kind: EventAddManager, Target: bob.key()},
		{Kind: EventTransferManager, Target: bob.key()},
		{Kind: EventRemove, Target: carl.key(), Seen: &SeenSet{Upto: 3, Extra: []SeqRange{{5, 5}, {40, 41}}}},
		{Kind: EventRemove, Target: carl.key(), Seen: &SeenSet{}},
		{Kind: EventSetRole, Target: bob.key(), Role: RoleRead, Seen: &SeenSet{Upto: 7}},
	} {
		evs = append(evs, m.next(t, m.boss, ev))
	}
	return evs
}

func TestEventRoundTrip(t *testing.T) {
	for _, ev := range sampleEvents(t) {
		t.Run(ev.Kind.String(), func(t *testing.T) {
			if err := ev.Verify(); err != nil {
				t.Fatal(err)
			}
			b, err := MarshalEvent(ev)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != ev.encodedLen() {
				t.Fatalf("encoded %d bytes, encodedLen says %d", len(b), ev.encodedLen())
			}
			got, err := ParseEvent(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, ev) {
				t.Fatalf("round trip changed the event:\n got %+v\nwant %+v", got, ev)
			}
			if got.ID() != ev.ID() {
				t.Fatal("ID changed in a round trip")
			}
		})
	}
}

func TestParseEventRejects(t *testing.T) {
	evs := sampleEvents(t)
	create, remove, limited := evs[0], evs[3], evs[5]
	cb, _ := MarshalEvent(create)
	rb, _ := MarshalEvent(remove)
	lb, _ := MarshalEvent(limited)
	if limited.SeqLimit == 0 || len(lb) != len(rb)+8 {
		t.Fatalf("sample %d is not a remove with a sequence limit", 5)
	}
	mut := func(b []byte, f func([]byte) []byte) []byte { return f(bytes.Clone(b)) }
	const kindOff, lenOff = 97, 98
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"truncated", rb[:len(rb)-1]},
		{"trailing byte", append(bytes.Clone(rb), 0)},
		{"version 2", mut(rb, func(b []byte) []byte { b[0] = 2; return b })},
		{"unknown kind", mut(rb, func(b []byte) []byte { b[kindOff] = 42; return b })},
		{"kind zero", mut(rb, func(b []byte) []byte { b[kindOff] = 0; return b })},
		{"body length too long", mut(rb, func(b []byte) []byte { b[lenOff+3]++; return b })},
		{"body length too short", mut(rb, func(b []byte) []byte { b[lenOff+3]--; return b })},
		{"remove read as set-role", mut(rb, func(b []byte) []byte { b[kindOff] = byte(EventSetRole); return b })},
		{"create without parent claims seq 2", mut(cb, func(b []byte) []byte { b[56] = 2; return b })},
		{"remove with zero parent", mut(rb, func(b []byte) []byte { clear(b[17:49]); return b })},
		{"seq 0", mut(rb, func(b []byte) []byte { clear(b[49:57]); return b })},
		{"negative time", mut(rb, func(b []byte) []byte { b[57] = 0x80; return b })},
		{"zero author", mut(rb, func(b []byte) []byte { clear(b[65:97]); return b })},
		{"remove with explicit zero limit", mut(lb, func(b []byte) []byte { clear(b[lenOff+4+32 : lenOff+4+40]); return b })},
		{"remove with a 4-byte limit", mut(lb, func(b []byte) []byte {
			b = append(b[:lenOff+4+36], b[lenOff+4+40:]...)
			b[lenOff+3] -= 4
			return b
		})},
		{"zero target", mut(rb, func(b []byte) []byte { clear(b[lenOff+4 : lenOff+4+32]); return b })},
		{"create name with control char", mut(cb, func(b []byte) []byte { b[lenOff+5] = '\n'; return b })},
		{"create bad history", mut(cb, func(b []byte) []byte { b[lenOff+4+1+len(create.Name)] = 9; return b })},
		{"create bad bot flags", mut(cb, func(b []byte) []byte { b[len(b)-65] = 0x80; return b })},
		{"too long", make([]byte, MaxEventSize+1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := ParseEvent(tc.b)
			if !errors.Is(err, ErrEventMalformed) || ev != nil {
				t.Fatalf("got %v, %v; want ErrEventMalformed", ev, err)
			}
		})
	}
}

func TestEventUnusedFieldsRejected(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	bob := newPerson(t, "bob")
	for name, ev := range map[string]*Event{
		"remove with role":        {Kind: EventRemove, Target: bob.key(), Role: RoleRead},
		"rotate with hosts":       {Kind: EventRotate, Epoch: 1, WPub: [32]byte{1}, Hosts: []string{}},
		"set-policy with name":    {Kind: EventSetPolicy, Policy: DefaultPolicy(), Name: "x"},
		"add with nick":           {Kind: EventAdd, KeyPackage: bob.kp.Marshal(), Role: RoleRead, Nick: "x"},
		"set-role without role":   {Kind: EventSetRole, Target: bob.key()},
		"rotate to epoch 0":       {Kind: EventRotate, WPub: [32]byte{1}},
		"rotate without key":      {Kind: EventRotate, Epoch: 1},
		"set-policy short period": {Kind: EventSetPolicy, Policy: Policy{History: HistoryShared, RotateEvery: time.Second}},
		"set-policy no history":   {Kind: EventSetPolicy, Policy: Policy{RotateAfter: 5}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := m.c.Append(ev, m.boss.id, m.tick()); !errors.Is(err, ErrEventMalformed) && !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("got %v, want ErrEventMalformed", err)
			}
		})
	}
}

func TestApplyFlow(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	bob, carol, dave := newPerson(t, "bob"), newPerson(t, "carol"), newPerson(t, "dave")
	st := m.c.State()
	if st.Epoch != 0 || len(st.Members) != 1 || st.Managers() != 1 || st.Name != "managed" {
		t.Fatalf("genesis state %+v", st)
	}
	if boss, _ := st.Member(m.boss.id.SigningKey()); !boss.Bot || boss.Role != RoleManage || boss.Nick != "boss" {
		t.Fatalf("creator %+v", boss)
	}
	m.add(t, bob, RoleWrite)
	m.add(t, carol, RoleRead)
	m.add(t, dave, RoleWrite)
	if st := m.c.State(); len(st.Members) != 4 || st.RotationDue != RotateNotDue {
		t.Fatalf("after adds under shared history: %d members, due %v", len(st.Members), st.RotationDue)
	}
	if got, err := m.c.State().MemberByFingerprint(bob.id.Fingerprint()); err != nil || got.Nick != "bob" {
		t.Fatalf("bob by fingerprint: %v %v", got, err)
	}
	m.append(t, m.boss, &Event{Kind: EventSetRole, Target: dave.key(), Role: RoleRead})
	if st := m.c.State(); st.RotationDue != RotateDemoted {
		t.Fatalf("demotion from write: due %v", st.RotationDue)
	}
	m.append(t, m.boss, &Event{Kind: EventRotate, Epoch: 1, WPub: [32]byte{7}})
	if st := m.c.State(); st.RotationDue != RotateNotDue || st.Epoch != 1 || st.WPub[0] != 7 || !st.RotatedAt.Equal(m.clock) {
		t.Fatalf("after rotate: %+v", st)
	}
	m.append(t, m.boss, &Event{Kind: EventAddManager, Target: bob.key()})
	m.append(t, bob, &Event{Kind: EventRemove, Target: dave.key()})
	if st := m.c.State(); st.Managers() != 2 || len(st.Members) != 3 || st.RotationDue != RotateRemoved {
		t.Fatalf("after bob removed dave: %d managers, %d members, due %v", st.Managers(), len(st.Members), st.RotationDue)
	}
	// Carol (read) leaves by removing herself.
	m.append(t, carol, &Event{Kind: EventRemove, Target: carol.key()})
	// The boss hands over to... bob is already a manager; add carol back
	// and transfer to her.
	m.add(t, carol, RoleWrite)
	m.append(t, m.boss, &Event{Kind: EventTransferManager, Target: carol.key()})
	st = m.c.State()
	if b, _ := st.Member(m.boss.id.SigningKey()); b.Role != RoleWrite {
		t.Fatalf("after transfer the boss is %v", b.Role)
	}
	if c, _ := st.Member(carol.id.SigningKey()); c.Role != RoleManage || st.Managers() != 2 {
		t.Fatalf("after transfer carol is %v, %d managers", c.Role, st.Managers())
	}
	m.append(t, carol, &Event{Kind: EventSetPolicy, Policy: Policy{History: HistoryFromJoin, RotateAfter: 10}})
	m.append(t, carol, &Event{Kind: EventSetHosts, Hosts: []string{"/dns4/h.example/tcp/1/p2p/z"}})
	st = m.c.State()
	if st.Policy.History != HistoryFromJoin || len(st.Hosts) != 1 {
		t.Fatalf("policy %+v hosts %v", st.Policy, st.Hosts)
	}
	// Under from-join an add makes a rotation due.
	m.append(t, carol, &Event{Kind: EventRotate, Epoch: 2, WPub: [32]byte{8}})
	m.append(t, carol, &Event{Kind: EventAdd, KeyPackage: dave.kp.Marshal(), Role: RoleRead})
	if st := m.c.State(); st.RotationDue != RotateAdded {
		t.Fatalf("add under from-join: due %v", st.RotationDue)
	}
	// A state replayed from scratch is the state at the head.
	replayed, err := m.c.stateAt(m.c.Head())
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := m.c.StateAt(m.c.main[len(m.c.main)-2]); again.Head != m.c.main[len(m.c.main)-2] {
		t.Fatal("StateAt of an older event")
	}
	if !reflect.DeepEqual(replayed, m.c.state) {
		t.Fatal("replayed state differs from the incrementally built one")
	}
}

func TestApplyRejects(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	bob, carol, eve, gone := newPerson(t, "bob"), newPerson(t, "carol"), newPerson(t, "eve"), newPerson(t, "gone")
	m.add(t, bob, RoleWrite)
	m.add(t, carol, RoleRead)
	m.add(t, gone, RoleManage)
	m.append(t, m.boss, &Event{Kind: EventRemove, Target: gone.key()})
	expired := keyPackageAt(t, eve.id, "eve", t0.Add(-2*time.Hour), t0.Add(-time.Hour))
	otherGroup := newManaged(t, DefaultPolicy())

	badSig := m.next(t, m.boss, &Event{Kind: EventAdd, KeyPackage: eve.kp.Marshal(), Role: RoleRead})
	badSig.Signature[0] ^= 1
	wrongSigner := m.next(t, m.boss, &Event{Kind: EventSetHosts})
	wrongSigner.Author = bob.key() // claims bob, signed by the boss
	unknownParent := m.next(t, m.boss, &Event{Kind: EventSetHosts})
	unknownParent.Parent[0] ^= 1
	_ = SignEvent(unknownParent, m.boss.id)
	badSeq := m.next(t, m.boss, &Event{Kind: EventSetHosts})
	badSeq.Seq++
	_ = SignEvent(badSeq, m.boss.id)
	wrongGroup := m.next(t, m.boss, &Event{Kind: EventSetHosts})
	wrongGroup.GroupID = otherGroup.c.GroupID()
	_ = SignEvent(wrongGroup, m.boss.id)
	secondCreate := otherGroup.c.Events()[0].Clone()
	secondCreate.GroupID = m.c.GroupID()
	_ = SignEvent(secondCreate, otherGroup.boss.id)

	tests := []struct {
		name string
		ev   *Event
		want error
	}{
		{"bad signature", badSig, ErrBadSignature},
		{"author field forged", wrongSigner, ErrBadSignature},
		{"unknown parent", unknownParent, ErrUnknownParent},
		{"seq does not follow", badSeq, ErrEventMalformed},
		{"other group", wrongGroup, ErrWrongGroup},
		{"second create", secondCreate, ErrUnauthorized},
		{"writer adds", m.next(t, bob, &Event{Kind: EventAdd, KeyPackage: eve.kp.Marshal(), Role: RoleRead}), ErrUnauthorized},
		{"writer removes another", m.next(t, bob, &Event{Kind: EventRemove, Target: carol.key()}), ErrUnauthorized},
		{"reader sets a role", m.next(t, carol, &Event{Kind: EventSetRole, Target: carol.key(), Role: RoleManage}), ErrUnauthorized},
		{"writer rotates", m.next(t, bob, &Event{Kind: EventRotate, Epoch: 1, WPub: [32]byte{1}}), ErrUnauthorized},
		{"writer sets policy", m.next(t, bob, &Event{Kind: EventSetPolicy, Policy: DefaultPolicy()}), ErrUnauthorized},
		{"writer sets hosts", m.next(t, bob, &Event{Kind: EventSetHosts}), ErrUnauthorized},
		{"reader makes itself manager", m.next(t, carol, &Event{Kind: EventAddManager, Target: carol.key()}), ErrUnauthorized},
		{"removed manager's event", m.next(t, gone, &Event{Kind: EventSetHosts}), ErrUnauthorized},
		{"never a member", m.next(t, eve, &Event{Kind: EventRemove, Target: eve.key()}), ErrUnauthorized},
		{"add a member twice", m.next(t, m.boss, &Event{Kind: EventAdd, KeyPackage: bob.kp.Marshal(), Role: RoleRead}), ErrInvalidEvent},
		{"add with expired key package", m.next(t, m.boss, &Event{Kind: EventAdd, KeyPackage: expired.Marshal(), Role: RoleRead}), keymgmt.ErrExpired},
		{"add with unparseable key package", m.next(t, m.boss, &Event{Kind: EventAdd, KeyPackage: []byte("not a key package"), Role: RoleRead}), keymgmt.ErrMalformed},
		{"add with forged key package", m.next(t, m.boss, &Event{Kind: EventAdd, KeyPackage: forgeKeyPackage(t, eve, bob), Role: RoleRead}), keymgmt.ErrBadSignature},
		{"remove a non-member", m.next(t, m.boss, &Event{Kind: EventRemove, Target: eve.key()}), ErrInvalidEvent},
		{"last manager leaves", m.next(t, m.boss, &Event{Kind: EventRemove, Target: m.boss.key()}), ErrLastManager},
		{"last manager steps down", m.next(t, m.boss, &Event{Kind: EventSetRole, Target: m.boss.key(), Role: RoleWrite}), ErrLastManager},
		{"role unchanged", m.next(t, m.boss, &Event{Kind: EventSetRole, Target: bob.key(), Role: RoleWrite}), ErrInvalidEvent},
		{"rotate skips an epoch", m.next(t, m.boss, &Event{Kind: EventRotate, Epoch: 2, WPub: [32]byte{1}}), ErrInvalidEvent},
		{"transfer to a manager", m.next(t, m.boss, &Event{Kind: EventTransferManager, Target: m.boss.key()}), ErrInvalidEvent},
		{"set role of a removed member", m.next(t, m.boss, &Event{Kind: EventSetRole, Target: gone.key(), Role: RoleRead}), ErrInvalidEvent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := m.c.State()
			ns, err := Apply(before, tc.ev)
			if !errors.Is(err, tc.want) || ns != nil {
				t.Fatalf("Apply: got %v; want %v", err, tc.want)
			}
			if !reflect.DeepEqual(before, m.c.State()) {
				t.Fatal("Apply modified its input")
			}
			head, n := m.c.Head(), m.c.Len()
			if err := m.c.Add(tc.ev); !errors.Is(err, tc.want) {
				t.Fatalf("Chain.Add: got %v; want %v", err, tc.want)
			}
			if m.c.Head() != head || m.c.Len() != n || !reflect.DeepEqual(before, m.c.State()) {
				t.Fatal("a rejected event changed the chain")
			}
		})
	}
	// The chain starts only with a create.
	if _, err := NewChain(m.c.Events()[1]); !errors.Is(err, ErrUnknownParent) {
		t.Fatalf("chain from an add: %v", err)
	}
	if _, err := Apply(nil, m.c.Events()[1]); !errors.Is(err, ErrUnknownParent) {
		t.Fatalf("Apply(nil, add): %v", err)
	}
}

// forgeKeyPackage returns victim's key package with the identity swapped
// for attacker's (its signature no longer verifies).
func forgeKeyPackage(t testing.TB, attacker, victim *person) []byte {
	t.Helper()
	kp := *victim.kp
	kp.Identity = *attacker.id.Public()
	return kp.Marshal()
}

func TestChainReplayAndOrphans(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	bob, carol := newPerson(t, "bob"), newPerson(t, "carol")
	addBob := m.add(t, bob, RoleWrite)
	if err := m.c.Add(addBob); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed event: %v", err)
	}
	if err := m.c.Add(m.c.Events()[0]); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed create: %v", err)
	}
	// A member that only has the create receives bob's add after carol's.
	addCarol := m.add(t, carol, RoleRead)
	rot := m.append(t, m.boss, &Event{Kind: EventRotate, Epoch: 1, WPub: [32]byte{3}})
	late, err := NewChain(m.c.Events()[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []*Event{rot, addCarol} {
		if err := late.Add(ev); !errors.Is(err, ErrUnknownParent) {
			t.Fatalf("orphan %s: %v", ev.Kind, err)
		}
	}
	if late.Len() != 1 || late.Epoch() != 0 {
		t.Fatal("orphans changed the chain")
	}
	if err := late.Add(addBob); err != nil {
		t.Fatal(err)
	}
	if late.Head() != m.c.Head() || late.Epoch() != 1 {
		t.Fatalf("orphans were not applied when their parent arrived: head %s, want %s", late.Head().Short(), m.c.Head().Short())
	}
	if err := late.Add(rot); !errors.Is(err, ErrReplay) {
		t.Fatalf("adopted orphan again: %v", err)
	}
}

func TestChainFork(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	bob, carol, eve := newPerson(t, "bob"), newPerson(t, "carol"), newPerson(t, "eve")
	m.add(t, bob, RoleWrite)
	base := m.c.Head()
	// The manager equivocates: two rotations to epoch 1 on one head.
	r1 := m.next(t, m.boss, &Event{Kind: EventRotate, Epoch: 1, WPub: [32]byte{1}})
	r2 := m.next(t, m.boss, &Event{Kind: EventRotate, Epoch: 1, WPub: [32]byte{2}})
	r2.Parent, r2.Seq = base, r1.Seq
	_ = SignEvent(r2, m.boss.id)
	if err := m.c.Add(r1); err != nil {
		t.Fatal(err)
	}
	err := m.c.Add(r2)
	var fe *ForkError
	if !errors.Is(err, ErrFork) || !errors.As(err, &fe) {
		t.Fatalf("second rotation on one head: %v", err)
	}
	if fe.Evidence.A.ID() != r1.ID() || fe.Evidence.B.ID() != r2.ID() || fe.Evidence.Verify() != nil {
		t.Fatalf("evidence %v", fe)
	}
	if m.c.Head() != r1.ID() || len(m.c.Forks()) != 1 {
		t.Fatal("a fork moved the head or was not recorded")
	}
	// An event on the losing branch is part of the same fork.
	onBranch := &Event{GroupID: m.c.GroupID(), Parent: r2.ID(), Seq: r2.Seq + 1, Time: r2.Time, Kind: EventAdd, KeyPackage: carol.kp.Marshal(), Role: RoleRead}
	_ = SignEvent(onBranch, m.boss.id)
	if err := m.c.Add(onBranch); !errors.As(err, &fe) || fe.Evidence.B.ID() != r2.ID() {
		t.Fatalf("event on the branch: %v", err)
	}
	// A member without manage permission cannot make fork evidence: its
	// event on an old head is simply unauthorized.
	byBob := &Event{GroupID: m.c.GroupID(), Parent: base, Seq: r1.Seq, Time: r1.Time, Kind: EventAdd, KeyPackage: eve.kp.Marshal(), Role: RoleRead}
	_ = SignEvent(byBob, bob.id)
	if err := m.c.Add(byBob); !errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrFork) {
		t.Fatalf("unauthorized event on an old head: %v", err)
	}
	// Evidence travels.
	b, err := MarshalForkEvidence(fe.Evidence)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseForkEvidence(b)
	if err != nil || got.A.ID() != fe.Evidence.A.ID() || got.B.ID() != fe.Evidence.B.ID() {
		t.Fatalf("evidence round trip: %v", err)
	}
	// The chain survives a round trip with its fork.
	cb, err := m.c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	again, err := UnmarshalChain(cb)
	if err != nil {
		t.Fatal(err)
	}
	if again.Head() != m.c.Head() || again.Len() != m.c.Len() || len(again.Forks()) != 1 || !reflect.DeepEqual(again.State(), m.c.State()) {
		t.Fatal("chain round trip changed it")
	}
	if cb2, _ := again.MarshalBinary(); !bytes.Equal(cb, cb2) {
		t.Fatal("chain encoding is not stable")
	}
}

func TestForkEvidenceRejects(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	a := m.next(t, m.boss, &Event{Kind: EventSetHosts})
	b := m.next(t, m.boss, &Event{Kind: EventSetHosts, Hosts: []string{"/x"}})
	b.Parent, b.Seq = a.Parent, a.Seq
	_ = SignEvent(b, m.boss.id)
	other := m.next(t, m.boss, &Event{Kind: EventRotate, Epoch: 1, WPub: [32]byte{1}})
	other.Parent[0] ^= 1
	_ = SignEvent(other, m.boss.id)
	forged := b.Clone()
	forged.Signature[3] ^= 1
	for name, tc := range map[string]struct {
		fe   ForkEvidence
		want error
	}{
		"same event twice":  {ForkEvidence{A: a, B: a}, ErrEvidenceMalformed},
		"different parents": {ForkEvidence{A: a, B: other}, ErrEvidenceMalformed},
		"bad signature":     {ForkEvidence{A: a, B: forged}, ErrBadSignature},
		"missing event":     {ForkEvidence{A: a}, ErrEvidenceMalformed},
	} {
		if err := tc.fe.Verify(); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	good, err := MarshalForkEvidence(ForkEvidence{A: a, B: b})
	if err != nil {
		t.Fatal(err)
	}
	for name, raw := range map[string][]byte{
		"empty":    nil,
		"version":  append([]byte{2}, good[1:]...),
		"trailing": append(bytes.Clone(good), 0),
		"short":    good[:len(good)-1],
	} {
		if _, err := ParseForkEvidence(raw); !errors.Is(err, ErrEvidenceMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestCheckHead(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	bob := newPerson(t, "bob")
	m.add(t, bob, RoleWrite)
	e0 := m.c.Head()
	r1 := m.append(t, m.boss, &Event{Kind: EventRotate, Epoch: 1, WPub: [32]byte{1}})
	// A branch the manager showed someone else: another event on e0.
	alt := &Event{GroupID: m.c.GroupID(), Parent: e0, Seq: r1.Seq, Time: r1.Time, Kind: EventSetHosts}
	_ = SignEvent(alt, m.boss.id)
	if err := m.c.Add(alt); !errors.Is(err, ErrFork) {
		t.Fatal(err)
	}
	var fe *ForkError
	if head, ok := m.c.HeadOf(0); !ok || head != e0 {
		t.Fatal("HeadOf(0)")
	}
	tests := []struct {
		name  string
		epoch uint64
		head  EventID
		want  error
	}{
		{"zero head", 1, EventID{}, nil},
		{"our head", 1, r1.ID(), nil},
		{"our head of epoch 0", 0, e0, nil},
		{"create in epoch 0", 0, m.c.Events()[0].ID(), nil},
		{"head of epoch 0 claimed for epoch 1", 1, e0, ErrHeadEpoch},
		{"branch head", 0, alt.ID(), ErrSplit},
		{"unknown head in closed epoch", 0, EventID{9}, ErrForeignHead},
		{"unknown head in current epoch", 1, EventID{9}, ErrUnknownHead},
		{"unknown head in a later epoch", 2, EventID{9}, ErrUnknownHead},
	}
	for _, tc := range tests {
		err := m.c.CheckHead(tc.epoch, tc.head)
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := m.c.CheckHead(0, alt.ID()); !errors.As(err, &fe) || fe.Evidence.A.ID() != r1.ID() || fe.Evidence.B.ID() != alt.ID() {
		t.Fatalf("split evidence: %v", err)
	}
}

func FuzzParseEvent(f *testing.F) {
	for _, ev := range sampleEvents(f) {
		b, _ := MarshalEvent(ev)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := ParseEvent(data)
		if err != nil {
			if !errors.Is(err, ErrEventMalformed) {
				t.Fatalf("unexpected error type: %v", err)
			}
			return
		}
		out, err := MarshalEvent(ev)
		if err != nil {
			t.Fatalf("parsed event does not encode: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatal("non-canonical encoding accepted")
		}
		_ = ev.Verify()
	})
}

func FuzzUnmarshalChain(f *testing.F) {
	m := newManaged(f, DefaultPolicy())
	m.add(f, newPerson(f, "bob"), RoleWrite)
	m.append(f, m.boss, &Event{Kind: EventRotate, Epoch: 1, WPub: [32]byte{1}})
	b, _ := m.c.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := UnmarshalChain(data)
		if err != nil {
			if !errors.Is(err, ErrChainMalformed) {
				t.Fatalf("unexpected error type: %v", err)
			}
			return
		}
		out, _ := c.MarshalBinary()
		if !bytes.Equal(out, data) {
			t.Fatal("non-canonical encoding accepted")
		}
	})
}

func FuzzParseForkEvidence(f *testing.F) {
	m := newManaged(f, DefaultPolicy())
	a := m.next(f, m.boss, &Event{Kind: EventSetHosts})
	b := m.next(f, m.boss, &Event{Kind: EventSetHosts, Hosts: []string{"/x"}})
	b.Parent, b.Seq = a.Parent, a.Seq
	_ = SignEvent(b, m.boss.id)
	good, err := MarshalForkEvidence(ForkEvidence{A: a, B: b})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Fuzz(func(t *testing.T, data []byte) {
		fe, err := ParseForkEvidence(data)
		if err != nil {
			return
		}
		out, err := MarshalForkEvidence(fe)
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("accepted evidence does not re-encode canonically: %v", err)
		}
	})
}

func TestRevokedAfter(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	bob, carol := newPerson(t, "bob"), newPerson(t, "carol")
	m.add(t, bob, RoleWrite)
	m.add(t, carol, RoleWrite)
	before := m.c.Head()
	m.append(t, m.boss, &Event{Kind: EventSetHosts})
	m.append(t, m.boss, &Event{Kind: EventRemove, Target: bob.key(), SeqLimit: 9})
	after := m.c.Head()
	m.append(t, m.boss, &Event{Kind: EventSetHosts, Hosts: []string{"/dns4/h.example/tcp/1/p2p/x"}})

	ev, ok := m.c.RevokedAfter(before, bob.key())
	if !ok || ev.Kind != EventRemove || ev.SeqLimit != 9 {
		t.Fatalf("removal of bob after %s: %+v, %v", before.Short(), ev, ok)
	}
	if _, ok := m.c.RevokedAfter(after, bob.key()); ok {
		t.Fatal("a removal found after the removal itself")
	}
	if _, ok := m.c.RevokedAfter(before, carol.key()); ok {
		t.Fatal("carol, never removed, has a removal")
	}
	if _, ok := m.c.RevokedAfter(EventID{1}, bob.key()); ok {
		t.Fatal("an unknown head has a removal after it")
	}
}

// A sequence limit belongs on a set-role only when it takes the write role
// away; a demotion with one is found by RevokedAfter.
func TestSetRoleSeqLimit(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	bob, rita := newPerson(t, "bob"), newPerson(t, "rita")
	m.add(t, bob, RoleWrite)
	m.add(t, rita, RoleRead)
	for name, ev := range map[string]*Event{
		"promotion with a limit":       {Kind: EventSetRole, Target: rita.key(), Role: RoleWrite, SeqLimit: 3},
		"write to manage with a limit": {Kind: EventSetRole, Target: bob.key(), Role: RoleManage, SeqLimit: 3},
	} {
		if _, err := m.c.Append(ev, m.boss.id, m.tick()); !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("%s: %v, want ErrInvalidEvent", name, err)
		}
	}
	before := m.c.Head()
	m.append(t, m.boss, &Event{Kind: EventSetRole, Target: rita.key(), Role: RoleWrite})
	if _, ok := m.c.RevokedAfter(before, rita.key()); ok {
		t.Fatal("a promotion counts as a revocation")
	}
	m.append(t, m.boss, &Event{Kind: EventSetRole, Target: bob.key(), Role: RoleRead, SeqLimit: 4})
	ev, ok := m.c.RevokedAfter(before, bob.key())
	if !ok || ev.Kind != EventSetRole || ev.SeqLimit != 4 {
		t.Fatalf("demotion of bob: %+v, %v", ev, ok)
	}
}
