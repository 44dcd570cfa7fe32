package groupstate

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// payloadBy signs a payload of m's group by p, naming head in epoch.
func (m *managed) payloadBy(t testing.TB, p *person, epoch uint64, head EventID, seq uint64, kind Kind, body string) *Payload {
	t.Helper()
	pl := &Payload{GroupID: m.c.GroupID(), Epoch: epoch, StateHead: head, Seq: seq, Sent: m.clock.UnixMilli(), Kind: kind, Body: []byte(body)}
	if err := SignPayloadAs(pl, p.id); err != nil {
		t.Fatal(err)
	}
	return pl
}

func TestSeenSet(t *testing.T) {
	s := NewSeenSet([]SeqRange{{1, 7}, {9, 9}, {40, 41}})
	if s.Upto != 7 || len(s.Extra) != 2 {
		t.Fatalf("set %+v", s)
	}
	for seq, want := range map[uint64]bool{0: false, 1: true, 7: true, 8: false, 9: true, 10: false, 39: false, 40: true, 41: true, 42: false} {
		if s.Contains(seq) != want {
			t.Errorf("Contains(%d) = %v", seq, !want)
		}
	}
	if s.String() != "1–7, 9, 40–41" || s.Highest() != 41 {
		t.Fatalf("%s, highest %d", s, s.Highest())
	}
	// A tracker that never saw 1: no prefix.
	if s := NewSeenSet([]SeqRange{{3, 4}}); s.Upto != 0 || s.Contains(1) || !s.Contains(4) {
		t.Fatalf("%+v", s)
	}
	if s := NewSeenSet(nil); s.Contains(1) || s.String() != "none" {
		t.Fatalf("%+v", s)
	}
	// More ranges than fit keep the lowest.
	var many []SeqRange
	for i := range uint64(MaxSeenExtra + 10) {
		many = append(many, SeqRange{10 + 3*i, 10 + 3*i})
	}
	cut := NewSeenSet(many)
	if len(cut.Extra) != MaxSeenExtra || !cut.Contains(10) || cut.Contains(many[len(many)-1].First) {
		t.Fatalf("cut set: %d ranges", len(cut.Extra))
	}
	b, err := MarshalSeenSet(cut)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseSeenSet(b)
	if err != nil || !got.Equal(cut) {
		t.Fatalf("round trip: %v", err)
	}
	for name, bad := range map[string]SeenSet{
		"adjacent to the prefix": {Upto: 3, Extra: []SeqRange{{4, 5}}},
		"overlapping":            {Upto: 3, Extra: []SeqRange{{5, 8}, {8, 9}}},
		"touching":               {Extra: []SeqRange{{5, 8}, {9, 9}}},
		"empty range":            {Extra: []SeqRange{{5, 4}}},
		"descending":             {Extra: []SeqRange{{9, 9}, {5, 5}}},
		"zero":                   {Extra: []SeqRange{{0, 1}}},
		"after the largest":      {Upto: ^uint64(0), Extra: []SeqRange{{1, 1}}},
		"past the largest":       {Extra: []SeqRange{{5, ^uint64(0)}, {7, 8}}},
	} {
		if _, err := MarshalSeenSet(bad); !errors.Is(err, ErrEventMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzParseSeenSet(f *testing.F) {
	b, _ := MarshalSeenSet(SeenSet{Upto: 3, Extra: []SeqRange{{5, 5}, {40, 41}}})
	f.Add(b)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSeenSet(data)
		if err != nil {
			return
		}
		out, err := MarshalSeenSet(s)
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("accepted seen set does not re-encode canonically: %v", err)
		}
		for _, r := range s.Extra {
			if !s.Contains(r.First) || !s.Contains(r.Last) || s.Contains(r.Last+1) {
				t.Fatalf("%s: range %v", s, r)
			}
		}
	})
}

// Version-2 events carry a seen set; only they are version 2, and a
// version-1 remove still parses with its sequence limit.
func TestEventVersions(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	bob := newPerson(t, "bob")
	m.add(t, bob, RoleWrite)
	v1 := m.next(t, m.boss, &Event{Kind: EventRemove, Target: bob.key(), SeqLimit: 4})
	v2 := m.next(t, m.boss, &Event{Kind: EventRemove, Target: bob.key(), Seen: &SeenSet{Upto: 3}})
	b1, _ := MarshalEvent(v1)
	b2, _ := MarshalEvent(v2)
	if b1[0] != EventVersion || b2[0] != EventVersionSeen || v1.Version() != 1 || v2.Version() != 2 {
		t.Fatalf("versions %d %d", b1[0], b2[0])
	}
	for _, b := range [][]byte{b1, b2} {
		if _, err := ParseEvent(b); err != nil {
			t.Fatal(err)
		}
	}
	// A version-2 byte on an event without a seen set, and a version-1
	// byte on one with it, are refused.
	plain := m.next(t, m.boss, &Event{Kind: EventRemove, Target: bob.key()})
	pb, _ := MarshalEvent(plain)
	pb[0] = EventVersionSeen
	if _, err := ParseEvent(pb); !errors.Is(err, ErrEventMalformed) {
		t.Fatalf("version 2 without a seen set: %v", err)
	}
	b2[0] = EventVersion
	if _, err := ParseEvent(b2); !errors.Is(err, ErrEventMalformed) {
		t.Fatalf("version 1 with a seen set: %v", err)
	}
	both := &Event{Kind: EventRemove, Target: bob.key(), SeqLimit: 4, Seen: &SeenSet{Upto: 3}}
	if _, err := m.c.Append(both, m.boss.id, m.tick()); !errors.Is(err, ErrEventMalformed) {
		t.Fatalf("limit and seen set: %v", err)
	}
	// A seen set on a promotion is refused like a limit.
	rita := newPerson(t, "rita")
	m.add(t, rita, RoleRead)
	if _, err := m.c.Append(&Event{Kind: EventSetRole, Target: rita.key(), Role: RoleWrite, Seen: &SeenSet{}}, m.boss.id, m.tick()); !errors.Is(err, ErrInvalidEvent) {
		t.Fatalf("promotion with a seen set: %v", err)
	}
	for _, tc := range []struct {
		ev   *Event
		seq  uint64
		want bool
	}{
		{v1, 3, true}, {v1, 4, false},
		{v2, 3, true}, {v2, 4, false},
		{&Event{Kind: EventRemove, Seen: &SeenSet{Upto: 2, Extra: []SeqRange{{40, 40}}}}, 7, false},
		{&Event{Kind: EventRemove, Seen: &SeenSet{Upto: 2, Extra: []SeqRange{{40, 40}}}}, 40, true},
		{plain, 1000, true},
	} {
		if got := tc.ev.Admits(tc.seq); got != tc.want {
			t.Errorf("%+v admits %d: %v", tc.ev.Seen, tc.seq, got)
		}
	}
}

// The removal's seen set decides exactly which of the removed member's
// payloads under an old head are admitted: a number it skipped is refused
// even below the highest it used (the back-fill of issue 13).
func TestAdmitAfterRemoval(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	bob, carol := newPerson(t, "bob"), newPerson(t, "carol")
	m.add(t, bob, RoleWrite)
	m.add(t, carol, RoleWrite)
	pre := m.c.Head()
	// Carol posted 1, 2 and 40 before her removal.
	m.append(t, m.boss, &Event{Kind: EventRemove, Target: carol.key(), Seen: &SeenSet{Upto: 2, Extra: []SeqRange{{40, 40}}}})
	post := m.c.Head()
	for _, tc := range []struct {
		name string
		head EventID
		seq  uint64
		want error
	}{
		{"seen before", pre, 2, nil},
		{"seen, skipping", pre, 40, nil},
		{"back-fill below the highest", pre, 7, ErrRevoked},
		{"after the highest", pre, 41, ErrRevoked},
		{"under the removal's head", post, 1, ErrNotMember},
		{"unknown head", EventID{7}, 1, ErrUnknownHead},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := m.payloadBy(t, carol, 0, tc.head, tc.seq, KindText, "hi")
			ms, err := m.c.AdmitPayload(p, EventID{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("%v, want %v", err, tc.want)
			}
			if err == nil && ms.Role != RoleWrite {
				t.Fatalf("role %s", ms.Role)
			}
		})
	}
	// Bob is unaffected; his membership is his add.
	ms, err := m.c.AdmitPayload(m.payloadBy(t, bob, 0, post, 99, KindText, "hi"), EventID{})
	if err != nil {
		t.Fatal(err)
	}
	added, key, _ := m.c.MemberSince(bob.key())
	if ms.Added != added || ms.Key != key || ms.Joined.IsZero() {
		t.Fatalf("membership %+v", ms)
	}
	// A closed epoch: after a rotation an unknown head of epoch 0 is the
	// author's fault.
	if _, err := m.c.Rotate(m.boss.id, m.tick(), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := m.c.AdmitPayload(m.payloadBy(t, bob, 0, EventID{7}, 1, KindText, "hi"), EventID{}); !errors.Is(err, ErrForeignHead) || errors.Is(err, ErrSplit) {
		t.Fatalf("unknown head of a closed epoch: %v", err)
	}
}

// A demotion's seen set bounds what the member wrote; its requests and
// other control payloads are not held to it.
func TestAdmitAfterDemotion(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	bob := newPerson(t, "bob")
	m.add(t, bob, RoleWrite)
	pre := m.c.Head()
	m.append(t, m.boss, &Event{Kind: EventSetRole, Target: bob.key(), Role: RoleRead, Seen: &SeenSet{Upto: 3}})
	post := m.c.Head()
	if _, err := m.c.AdmitPayload(m.payloadBy(t, bob, 0, pre, 3, KindText, "x"), EventID{}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.c.AdmitPayload(m.payloadBy(t, bob, 0, pre, 4, KindText, "x"), EventID{}); !errors.Is(err, ErrRevoked) {
		t.Fatalf("text past the demotion: %v", err)
	}
	if _, err := m.c.AdmitPayload(m.payloadBy(t, bob, 0, post, 5, KindText, "x"), EventID{}); !errors.Is(err, ErrNotWriter) {
		t.Fatalf("text as a reader: %v", err)
	}
	if _, err := m.c.AdmitPayload(m.payloadBy(t, bob, 0, pre, 6, KindRequest, "x"), EventID{}); err != nil {
		t.Fatalf("a request is judged by AuthorizeRequest: %v", err)
	}
}

// A member who leaves (or is removed) and is added again has a second
// membership: a sequence space of its own.
func TestRejoinMembership(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	bob := newPerson(t, "bob")
	first := m.add(t, bob, RoleWrite)
	h1 := m.c.Head()
	m.append(t, m.boss, &Event{Kind: EventRemove, Target: bob.key(), Seen: &SeenSet{Upto: 2}})
	bob.kp = keyPackageAt(t, bob.id, "bob", t0.Add(-time.Hour), t0.Add(24*time.Hour))
	second := m.add(t, bob, RoleWrite)
	h2 := m.c.Head()
	a1, err := m.c.AdmitPayload(m.payloadBy(t, bob, 0, h1, 1, KindText, "x"), EventID{})
	if err != nil {
		t.Fatal(err)
	}
	a2, err := m.c.AdmitPayload(m.payloadBy(t, bob, 0, h2, 1, KindText, "x"), EventID{})
	if err != nil {
		t.Fatal(err)
	}
	if a1.Added != first.ID() || a2.Added != second.ID() || a1.Key == a2.Key {
		t.Fatalf("memberships %s %s", a1.Added.Short(), a2.Added.Short())
	}
	// The first membership's removal still bounds it.
	if _, err := m.c.AdmitPayload(m.payloadBy(t, bob, 0, h1, 3, KindText, "x"), EventID{}); !errors.Is(err, ErrRevoked) {
		t.Fatalf("first membership past its removal: %v", err)
	}
	ms := m.c.Memberships()
	if ms[a1.Key] != bob.key() || ms[a2.Key] != bob.key() {
		t.Fatal("Memberships does not name both of bob's")
	}
	if ev, ok := m.c.RevocationOf(bob.key(), first.ID()); !ok || ev.Kind != EventRemove {
		t.Fatal("no revocation of the first membership")
	}
	if _, ok := m.c.RevocationOf(bob.key(), second.ID()); ok {
		t.Fatal("the second membership is revoked")
	}
	// Reloading the chain rebuilds the same memberships.
	b, _ := m.c.MarshalBinary()
	c2, err := UnmarshalChain(b)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c2.AdmitPayload(m.payloadBy(t, bob, 0, h2, 1, KindText, "x"), EventID{}); err != nil || got.Key != a2.Key {
		t.Fatalf("after reload: %v", err)
	}
}

// A state event posted under its own head is judged at its parent: a
// leaver's own removal is admitted, the state after it would not be.
func TestJudgedAtOwnEvent(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	bob := newPerson(t, "bob")
	m.add(t, bob, RoleWrite)
	leave := m.append(t, bob, &Event{Kind: EventRemove, Target: bob.key(), Seen: &SeenSet{Upto: 1}})
	b, _ := MarshalEvent(leave)
	p := m.payloadBy(t, bob, 0, leave.ID(), 1, KindStateEvent, "")
	p.Body = b
	if err := SignPayloadAs(p, bob.id); err != nil {
		t.Fatal(err)
	}
	if _, err := m.c.AdmitPayload(p, JudgedAt(p, leave.ID(), leave.Parent)); err != nil {
		t.Fatalf("leaver's own removal: %v", err)
	}
	if _, err := m.c.AdmitPayload(p, EventID{}); !errors.Is(err, ErrNotMember) {
		t.Fatalf("judged at its head: %v", err)
	}
}

// A head on a branch is admitted with the manager-signed evidence, and a
// branch cannot bring back a removed member past its seen set.
func TestAdmitBranchHead(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	carol := newPerson(t, "carol")
	m.add(t, carol, RoleWrite)
	fork := m.c.Head()
	alt := m.next(t, m.boss, &Event{Kind: EventSetHosts})
	m.append(t, m.boss, &Event{Kind: EventRemove, Target: carol.key(), Seen: &SeenSet{Upto: 1}})
	if err := m.c.Add(alt); !errors.Is(err, ErrFork) {
		t.Fatalf("branch event: %v", err)
	}
	ms, err := m.c.AdmitPayload(m.payloadBy(t, carol, 0, alt.ID(), 1, KindText, "x"), EventID{})
	if err != nil || ms.Split == nil || !errors.Is(ms.Split, ErrSplit) {
		t.Fatalf("branch head: %+v %v", ms, err)
	}
	if _, err := m.c.AdmitPayload(m.payloadBy(t, carol, 0, alt.ID(), 2, KindText, "x"), EventID{}); !errors.Is(err, ErrRevoked) {
		t.Fatalf("removed member under a branch head: %v", err)
	}
	if fork == m.c.Head() {
		t.Fatal("the removal did not move the head")
	}
}

func TestSentTime(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	joined := now.Add(-time.Hour)
	for _, tc := range []struct {
		sent time.Time
		want TimeFlag
	}{
		{now, TimeOK},
		{now.Add(MaxClockSkew), TimeOK},
		{now.Add(MaxClockSkew + time.Second), TimeFuture},
		{time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC), TimeFuture},
		{joined.Add(-MaxClockSkew), TimeOK},
		{joined.Add(-MaxClockSkew - time.Second), TimeBeforeJoin},
		{time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), TimeBeforeJoin},
	} {
		if got := CheckSentTime(tc.sent, now, joined); got != tc.want {
			t.Errorf("sent %s: %s, want %s", tc.sent, got, tc.want)
		}
	}
	if CheckSentTime(time.Unix(0, 0), now, time.Time{}) != TimeOK {
		t.Error("no lower bound: an old time is not flagged")
	}
	lower := now.Add(-time.Minute)
	for _, tc := range []struct{ sent, want time.Time }{
		{now.Add(-time.Second), now.Add(-time.Second)},
		{now.Add(time.Hour), now},
		{now.Add(-time.Hour), lower},
	} {
		if got := OrderTime(tc.sent, lower, now); !got.Equal(tc.want) {
			t.Errorf("order of %s: %s, want %s", tc.sent, got, tc.want)
		}
	}
	if got := OrderTime(now.Add(-time.Hour), now.Add(time.Hour), now); !got.Equal(now) {
		t.Errorf("a lower bound past the reception: %s", got)
	}
}

// The chain keeps at most MaxOrphans events whose parent is unknown, and
// says which it holds.
func TestHoldsOrphan(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	ev := m.next(t, m.boss, &Event{Kind: EventSetHosts})
	ev.Parent = EventID{1}
	if err := SignEvent(ev, m.boss.id); err != nil {
		t.Fatal(err)
	}
	if err := m.c.Add(ev); !errors.Is(err, ErrUnknownParent) || !m.c.HoldsOrphan(ev) {
		t.Fatalf("orphan: %v, held %v", err, m.c.HoldsOrphan(ev))
	}
	for i := range MaxOrphans {
		o := ev.Clone()
		o.Parent = EventID{2, byte(i), byte(i >> 8)}
		if err := SignEvent(o, m.boss.id); err != nil {
			t.Fatal(err)
		}
		_ = m.c.Add(o)
	}
	last := ev.Clone()
	last.Parent = EventID{3}
	if err := SignEvent(last, m.boss.id); err != nil {
		t.Fatal(err)
	}
	if err := m.c.Add(last); !errors.Is(err, ErrUnknownParent) || m.c.HoldsOrphan(last) {
		t.Fatalf("an orphan past the bound: %v, held %v", err, m.c.HoldsOrphan(last))
	}
}
