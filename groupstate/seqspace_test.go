package groupstate

import (
	"errors"
	"testing"
	"time"
)

// An open group's sequence space is the author's key for a zero
// membership and a hash of author and membership otherwise: two
// memberships of one author, or one membership of two authors, never
// share a space, and an equivocation needs one membership.
func TestOpenSeqSpace(t *testing.T) {
	g, _ := testGroup(t)
	alice, bob := testAuthor(t), testAuthor(t)
	m1, err := NewOpenMembership()
	if err != nil {
		t.Fatal(err)
	}
	m2, _ := NewOpenMembership()
	if m1 == m2 || m1 == ([32]byte{}) {
		t.Fatal("memberships repeat or are zero")
	}
	sign := func(key []byte, ms [32]byte, text string) *Payload {
		p := textPayload(g, text)
		p.StateHead = ms
		if err := SignPayload(p, key); err != nil {
			t.Fatal(err)
		}
		return p
	}
	legacy := sign(alice, [32]byte{}, "old node")
	if OpenSeqSpace(legacy) != legacy.Author {
		t.Fatal("a zero membership is not the author's key")
	}
	a1, a2, b1 := sign(alice, m1, "first life"), sign(alice, m2, "second life"), sign(bob, m1, "bob")
	spaces := map[[32]byte]bool{}
	for _, p := range []*Payload{legacy, a1, a2, b1} {
		spaces[OpenSeqSpace(p)] = true
	}
	if len(spaces) != 4 {
		t.Fatalf("%d spaces for four memberships", len(spaces))
	}
	if OpenSeqSpace(a1) != OpenSeqSpace(sign(alice, m1, "again")) {
		t.Fatal("one membership, two spaces")
	}
	e, err := NewEquivocation(a1, a2)
	if err != nil {
		t.Fatal(err) // stateless: it looks like one
	}
	if err := e.SameOpenMembership(); !errors.Is(err, ErrEquivocationMalformed) {
		t.Fatalf("two memberships: %v", err)
	}
	e, err = NewEquivocation(a1, sign(alice, m1, "first life, other text"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SameOpenMembership(); err != nil {
		t.Fatal(err)
	}
}

// A removed membership settles once every number its removal admits has
// arrived; closed, its space refuses every number as seen and reports no
// gaps, and survives the encoding.
func TestMembershipSettled(t *testing.T) {
	var tr SeqTracker
	key := [32]byte{1}
	for _, s := range []uint64{1, 2, 3, 7} {
		if _, err := tr.Observe(key, s); err != nil {
			t.Fatal(err)
		}
	}
	rm := func(seen *SeenSet, limit uint64) *Event {
		return &Event{Kind: EventRemove, Seen: seen, SeqLimit: limit}
	}
	tests := []struct {
		name string
		ev   *Event
		want bool
	}{
		{"seen all", rm(&SeenSet{Upto: 3, Extra: []SeqRange{{7, 7}}}, 0), true},
		{"seen a number not here", rm(&SeenSet{Upto: 3, Extra: []SeqRange{{5, 5}}}, 0), false},
		{"seen beyond", rm(&SeenSet{Upto: 4}, 0), false},
		{"seen nothing", rm(&SeenSet{}, 0), true},
		{"limit below", rm(nil, 4), true},
		{"limit above a gap", rm(nil, 6), false},
		{"limit 1", rm(nil, 1), true},
		{"no limit", rm(nil, 0), false},
		{"a demotion", &Event{Kind: EventSetRole, Seen: &SeenSet{Upto: 3}}, false},
		{"nil", nil, false},
	}
	for _, tc := range tests {
		if got := MembershipSettled(&tr, key, tc.ev); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	tr.Close(key)
	if !tr.Closed(key) || tr.Closed([32]byte{2}) || len(tr.ClosedSpaces()) != 1 {
		t.Fatal("closed spaces")
	}
	for _, s := range []uint64{1, 5, 8, 1 << 62} {
		if obs, err := tr.Observe(key, s); err != nil || obs.Status != SeqDuplicate {
			t.Fatalf("number %d in a closed space: %+v %v", s, obs, err)
		}
	}
	if len(tr.Gaps()) != 0 || tr.Ranges() != 1 {
		t.Fatalf("gaps %v, %d ranges", tr.Gaps(), tr.Ranges())
	}
	b, _ := tr.MarshalBinary()
	var back SeqTracker
	if err := back.UnmarshalBinary(b); err != nil || !back.Closed(key) {
		t.Fatalf("closed space after the encoding: %v", err)
	}
}

// RemovalOf finds the event that ended a membership, past a demotion
// before it, and nothing for a membership that goes on.
func TestRemovalOf(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	bob := newPerson(t, "bob")
	m.add(t, bob, RoleWrite)
	added, _, _ := m.c.MemberSince(bob.key())
	if _, ok := m.c.RemovalOf(bob.key(), added); ok {
		t.Fatal("a live membership has a removal")
	}
	m.append(t, m.boss, &Event{Kind: EventSetRole, Target: bob.key(), Role: RoleRead, Seen: &SeenSet{Upto: 1}})
	if _, ok := m.c.RemovalOf(bob.key(), added); ok {
		t.Fatal("a demotion ended the membership")
	}
	m.append(t, m.boss, &Event{Kind: EventRemove, Target: bob.key(), Seen: &SeenSet{Upto: 2}})
	rm, ok := m.c.RemovalOf(bob.key(), added)
	if !ok || rm.Kind != EventRemove || rm.Seen.Upto != 2 {
		t.Fatalf("removal %+v %v", rm, ok)
	}
}

// The automatic manager leaves a rotation another manager's removal made
// due to that manager for AutoRotateGrace (it rotates in the same
// operation; a second rotation would fork the chain), but not one it
// caused itself, nor one of a manager gone since, nor past the grace or
// for an event dated far ahead.
func TestAutoRotationDue(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	bob, carol := newPerson(t, "bob"), newPerson(t, "carol")
	m.add(t, bob, RoleManage)
	m.add(t, carol, RoleWrite)
	rm := m.append(t, bob, &Event{Kind: EventRemove, Target: carol.key(), Seen: &SeenSet{}})
	st := m.c.State()
	boss, at := [32]byte(m.boss.id.SigningKey()), time.UnixMilli(rm.Time)
	if st.DueBy != bob.key() || st.DueAt != rm.Time {
		t.Fatalf("due by %x at %d", st.DueBy[:4], st.DueAt)
	}
	for _, tc := range []struct {
		name string
		self [32]byte
		now  time.Time
		want bool
	}{
		{"another manager's, at once", boss, at, false},
		{"another manager's, within the grace", boss, at.Add(AutoRotateGrace - time.Second), false},
		{"another manager's, after the grace", boss, at.Add(AutoRotateGrace), true},
		{"another manager's, dated far ahead", boss, at.Add(-2 * AutoRotateGrace), true},
		{"its own", bob.key(), at, true},
	} {
		if got, _ := AutoRotationDue(st, tc.self, 0, tc.now); got != tc.want {
			t.Errorf("%s: due %v, want %v", tc.name, got, tc.want)
		}
	}
	// A manager that removed itself rotates nothing: due at once.
	m.append(t, bob, &Event{Kind: EventRemove, Target: bob.key(), Seen: &SeenSet{}})
	if got, why := AutoRotationDue(m.c.State(), boss, 0, at); !got || why != RotateRemoved {
		t.Fatalf("after a manager left: due %v (%s)", got, why)
	}
}
