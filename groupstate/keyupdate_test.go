package groupstate

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/meshnode/meshnode/keymgmt"
)

// follow returns a member's copy of the manager's chain as it is now.
func follow(t testing.TB, c *Chain) *Chain {
	t.Helper()
	b, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	mc, err := UnmarshalChain(b)
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

// wire sends key update parts through their encoding, as payload bodies.
func wire(t testing.TB, parts []*KeyUpdate) []*KeyUpdate {
	t.Helper()
	out := make([]*KeyUpdate, len(parts))
	for i, p := range parts {
		b, err := MarshalKeyUpdate(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > DefaultKeyUpdatePartSize {
			t.Fatalf("part %d is %d bytes, more than a payload body holds (%d)", i, len(b), DefaultKeyUpdatePartSize)
		}
		if out[i], err = ParseKeyUpdate(b); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// acceptAny tries every part, as a member that fetched them all does, and
// returns the secrets from the part holding its slot.
func acceptAny(c *Chain, id *keymgmt.Identity, held uint64, parts []*KeyUpdate) (*keymgmt.EpochSecrets, error) {
	var err error
	for _, p := range parts {
		var s *keymgmt.EpochSecrets
		if s, err = c.AcceptKeyUpdate(id, held, p); err == nil {
			return s, nil
		}
		if !errors.Is(err, keymgmt.ErrNotRecipient) {
			return nil, err
		}
	}
	return nil, err
}

func TestRotationRoles(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	writer, reader, manager := newPerson(t, "writer"), newPerson(t, "reader"), newPerson(t, "manager")
	pq := newPersonSuite(t, "pq", keymgmt.SuitePQ)
	m.add(t, writer, RoleWrite)
	m.add(t, reader, RoleRead)
	m.add(t, manager, RoleManage)
	m.add(t, pq, RoleRead)
	chains := map[*person]*Chain{}
	for _, p := range []*person{writer, reader, manager, pq} {
		chains[p] = follow(t, m.c)
	}
	rot, err := m.c.Rotate(m.boss.id, m.tick(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rot.Parts) != 1 || len(rot.Parts[0].Entries) != 5 || rot.Event.Epoch != 1 {
		t.Fatalf("rotation: %d parts, event %+v", len(rot.Parts), rot.Event)
	}
	if err := m.g.AddEpoch(1, rot.Secrets); err != nil {
		t.Fatal(err)
	}
	parts := wire(t, rot.Parts)
	for p, c := range chains {
		s, err := c.AcceptKeyUpdate(p.id, 0, parts[0])
		if err != nil {
			t.Fatalf("%s: %v", p.kp.Nick, err)
		}
		canWrite := p == writer || p == manager
		if s.Read != rot.Secrets.Read || !bytes.Equal(s.WPub, rot.Secrets.WPub) || (s.Write != nil) != canWrite {
			t.Fatalf("%s got the wrong secrets (write %v)", p.kp.Nick, s.Write != nil)
		}
		if c.Head() != m.c.Head() || c.Epoch() != 1 {
			t.Fatalf("%s did not follow the rotation", p.kp.Nick)
		}
	}
	// The reader's sealed copy itself lacks W: it is not only stripped on
	// opening.
	raw, err := reader.id.UnwrapEpochSecrets(parts[0].Entries, rotationScope(m.c.GroupID(), 1), rotationInfo(m.c.GroupID(), 1, rot.Event.ID()))
	if err != nil || raw.Write != nil {
		t.Fatalf("reader's sealed copy: write present %v, %v", raw != nil && raw.Write != nil, err)
	}
	// The manager opens its own copy too (a second device of its identity).
	if s, err := follow(t, m.c).AcceptKeyUpdate(m.boss.id, 0, parts[0]); !errors.Is(err, nil) || s.Write == nil {
		t.Fatalf("manager's own copy: %v", err)
	}
}

func TestRemovedMemberCannotOpen(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	bob, mallory := newPerson(t, "bob"), newPerson(t, "mallory")
	m.add(t, bob, RoleWrite)
	m.add(t, mallory, RoleManage)
	// Mallory keeps everything: the chain (including her own removal, which
	// she sees in epoch 0's mailbox), epoch 0's secrets, her identity.
	m.append(t, m.boss, &Event{Kind: EventRemove, Target: mallory.key()})
	kept := follow(t, m.c)
	keptSecrets := m.g.Secrets[0]
	if due, why := NeedsRotation(m.c.State(), t0, 0, m.clock); !due || why != RotateRemoved {
		t.Fatalf("rotation after a remove: %v %v", due, why)
	}
	rot, err := m.c.Rotate(m.boss.id, m.tick(), 0)
	if err != nil {
		t.Fatal(err)
	}
	parts := wire(t, rot.Parts)
	if _, err := acceptAny(kept, mallory.id, 0, parts); !errors.Is(err, keymgmt.ErrNotRecipient) {
		t.Fatalf("removed member: %v", err)
	}
	// Even bypassing the state check, no entry has her slot, and none of
	// them opens for her under any slot.
	scope, info := rotationScope(m.c.GroupID(), 1), rotationInfo(m.c.GroupID(), 1, rot.Event.ID())
	if _, err := mallory.id.UnwrapEpochSecrets(parts[0].Entries, scope, info); !errors.Is(err, keymgmt.ErrNotRecipient) {
		t.Fatalf("removed member's slot: %v", err)
	}
	mine := keymgmt.RecipientSlot(scope, mallory.id.SigningKey())
	for i, e := range parts[0].Entries {
		if _, err := mallory.id.UnwrapEpochSecrets([]keymgmt.WrappedSecrets{{Slot: mine, Sealed: e.Sealed}}, scope, info); !errors.Is(err, keymgmt.ErrDecrypt) {
			t.Fatalf("entry %d opened for the removed member: %v", i, err)
		}
	}
	// A message of the new epoch does not open with what she kept.
	newKeys, _ := rot.Secrets.Derive()
	bk, _ := NewGroup("x", nil)
	bk.ID = m.c.GroupID()
	p := &Payload{GroupID: m.c.GroupID(), Epoch: 1, StateHead: rot.Event.ID(), Seq: 1, Kind: KindText, Body: []byte("after removal")}
	if err := SignPayloadAs(p, bob.id); err != nil {
		t.Fatal(err)
	}
	env, err := SealMessage(newKeys, p)
	if err != nil {
		t.Fatal(err)
	}
	oldKeys, _ := keptSecrets.Derive()
	for _, e := range []uint64{0, 1} {
		if _, err := OpenMessage(oldKeys, m.c.GroupID(), e, env); err == nil {
			t.Fatal("removed member opened a message of the new epoch")
		}
	}
	forged := *oldKeys
	forged.Mailbox = newKeys.Mailbox
	if _, err := OpenMessage(&forged, m.c.GroupID(), 1, env); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("old read key on the new mailbox: %v", err)
	}
	// Bob, still a member, opens it.
	if _, err := acceptAny(follow(t, kept), bob.id, 0, parts); err != nil {
		t.Fatalf("remaining member: %v", err)
	}
}

func TestOfflineMemberThreeRotations(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	alice := newPerson(t, "alice")
	m.add(t, alice, RoleWrite)
	c := follow(t, m.c) // alice goes offline here, at epoch 0
	g := &Group{ID: m.g.ID, Name: m.g.Name, Epoch: 0, Secrets: map[uint64]*keymgmt.EpochSecrets{0: m.g.Secrets[0]}, History: HistoryShared}
	// What each epoch's mailbox will hold: state events, then the key
	// update parts (small parts, so the rotation spans several).
	type mailbox struct {
		events []*Event
		parts  []*KeyUpdate
	}
	var boxes []mailbox
	var want []*keymgmt.EpochSecrets
	for e := range 3 {
		var box mailbox
		for range 3 {
			box.events = append(box.events, m.add(t, newPerson(t, "n"), RoleRead))
		}
		if e == 1 {
			box.events = append(box.events, m.append(t, m.boss, &Event{Kind: EventSetHosts, Hosts: []string{"/dns4/new.example/tcp/1/p2p/h"}}))
		}
		rot, err := m.c.Rotate(m.boss.id, m.tick(), 700)
		if err != nil {
			t.Fatal(err)
		}
		if len(rot.Parts) < 2 {
			t.Fatalf("rotation %d in %d parts; the test wants several", e+1, len(rot.Parts))
		}
		box.parts = wire(t, rot.Parts)
		boxes = append(boxes, box)
		want = append(want, rot.Secrets)
	}
	// Out of order first: the last rotation cannot open yet.
	if _, err := c.AcceptKeyUpdate(alice.id, 0, boxes[2].parts[0]); !errors.Is(err, ErrUnknownParent) {
		t.Fatalf("rotation 3 before 1: %v", err)
	}
	// Alice comes back: mailbox by mailbox, each part fetched once. Within
	// a mailbox the key update may arrive before the state events.
	for e, box := range boxes {
		var got *keymgmt.EpochSecrets
		for _, p := range box.parts {
			s, err := c.AcceptKeyUpdate(alice.id, g.Epoch, p)
			switch {
			case err == nil:
				got = s
			case errors.Is(err, keymgmt.ErrNotRecipient), errors.Is(err, ErrUnknownParent):
			default:
				t.Fatalf("epoch %d part %d: %v", e, p.Part, err)
			}
		}
		for _, ev := range box.events {
			if err := c.Add(ev); err != nil && !errors.Is(err, ErrReplay) {
				t.Fatalf("epoch %d: event: %v", e, err)
			}
		}
		if got == nil { // the parts came before their parents: retry
			var err error
			if got, err = acceptAny(c, alice.id, g.Epoch, box.parts); err != nil {
				t.Fatalf("epoch %d: %v", e, err)
			}
		}
		if got.Read != want[e].Read || *got.Write != *want[e].Write {
			t.Fatalf("epoch %d: wrong secrets", e+1)
		}
		if err := g.AddEpoch(uint64(e+1), got); err != nil {
			t.Fatal(err)
		}
	}
	if g.Epoch != 3 || c.Head() != m.c.Head() || len(c.State().Hosts) != 1 {
		t.Fatalf("after catching up: epoch %d, head %s want %s", g.Epoch, c.Head().Short(), m.c.Head().Short())
	}
	// Replays of the old key updates are refused.
	for e, box := range boxes {
		if _, err := c.AcceptKeyUpdate(alice.id, g.Epoch, box.parts[0]); !errors.Is(err, ErrStaleKeyUpdate) {
			t.Fatalf("replay of rotation %d: %v", e+1, err)
		}
	}
}

func TestAcceptKeyUpdateRejects(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	bob, writer := newPerson(t, "bob"), newPerson(t, "writer")
	m.add(t, bob, RoleWrite)
	m.add(t, writer, RoleWrite)
	base := follow(t, m.c)
	rot, err := m.c.Rotate(m.boss.id, m.tick(), 0)
	if err != nil {
		t.Fatal(err)
	}
	good := wire(t, rot.Parts)[0]
	other := newManaged(t, DefaultPolicy())
	otherRot, _ := other.c.Rotate(other.boss.id, other.tick(), 0)

	tampered := *good
	tampered.Entries = slices.Clone(good.Entries)
	for i := range tampered.Entries {
		tampered.Entries[i].Sealed = bytes.Clone(tampered.Entries[i].Sealed)
		tampered.Entries[i].Sealed[50] ^= 1
	}
	badSig := *good
	badSig.Rotate = good.Rotate.Clone()
	badSig.Rotate.Signature[0] ^= 1
	// A writer forges a rotation: a valid signature, but no permission.
	st := base.State()
	forgedEv := &Event{GroupID: st.GroupID, Parent: st.Head, Seq: st.Height + 1, Time: m.clock.UnixMilli(), Kind: EventRotate, Epoch: 1, WPub: [32]byte(rot.Secrets.WPub)}
	_ = SignEvent(forgedEv, writer.id)
	byWriter := *good
	byWriter.Rotate = forgedEv
	// A manager wraps secrets that do not match the rotate event's WPub.
	wrongSecrets, _ := keymgmt.NewEpochSecrets()
	after, _ := Apply(base.State(), rot.Event)
	var rs []keymgmt.RotationRecipient
	for _, mb := range after.SortedMembers() {
		rs = append(rs, keymgmt.RotationRecipient{Identity: &mb.Identity})
	}
	mismatched, _ := keymgmt.WrapEpochSecrets(wrongSecrets, rs, rotationScope(st.GroupID, 1), rotationInfo(st.GroupID, 1, rot.Event.ID()))
	wrongWPub := &KeyUpdate{Rotate: rot.Event, Part: 0, Parts: 1, Entries: mismatched}
	// ... or read-only secrets to a writer.
	readOnly, _ := keymgmt.WrapEpochSecrets(rot.Secrets.ReadOnly(), readOnlyAll(rs), rotationScope(st.GroupID, 1), rotationInfo(st.GroupID, 1, rot.Event.ID()))
	noWrite := &KeyUpdate{Rotate: rot.Event, Part: 0, Parts: 1, Entries: readOnly}

	tests := []struct {
		name string
		held uint64
		ku   *KeyUpdate
		want error
	}{
		{"stale: epoch already held", 1, good, ErrStaleKeyUpdate},
		{"stale: older epoch", 5, good, ErrStaleKeyUpdate},
		{"skips an epoch", 0, withEpoch(t, m, good, 2), ErrUnknownParent},
		{"other group", 0, otherRot.Parts[0], ErrWrongGroup},
		{"tampered copies", 0, &tampered, keymgmt.ErrDecrypt},
		{"bad event signature", 0, &badSig, ErrBadSignature},
		{"rotation by a writer", 0, &byWriter, ErrUnauthorized},
		{"WPub mismatch", 0, wrongWPub, ErrKeyUpdateInvalid},
		{"writer without W", 0, noWrite, ErrKeyUpdateInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := follow(t, base)
			s, err := c.AcceptKeyUpdate(bob.id, tc.held, tc.ku)
			if !errors.Is(err, tc.want) || s != nil {
				t.Fatalf("got %v; want %v", err, tc.want)
			}
		})
	}
	// OpenKeyUpdate against a state that is not right after the rotate.
	if _, err := OpenKeyUpdate(bob.id, base.State(), good); !errors.Is(err, ErrKeyUpdateInvalid) {
		t.Fatalf("open against the old state: %v", err)
	}
	// SealKeyUpdate refuses inconsistent input.
	for name, tc := range map[string]struct {
		st  *State
		ev  *Event
		s   *keymgmt.EpochSecrets
		max int
	}{
		"state before the rotate": {base.State(), rot.Event, rot.Secrets, 0},
		"other secrets":           {after, rot.Event, wrongSecrets, 0},
		"read-only secrets":       {after, rot.Event, rot.Secrets.ReadOnly(), 0},
		"not a rotate":            {after, base.Events()[0], rot.Secrets, 0},
		"parts too small":         {after, rot.Event, rot.Secrets, 300},
	} {
		if _, err := SealKeyUpdate(tc.st, tc.ev, tc.s, tc.max); !errors.Is(err, ErrKeyUpdateInvalid) {
			t.Errorf("SealKeyUpdate %s: %v", name, err)
		}
	}
}

func readOnlyAll(rs []keymgmt.RotationRecipient) []keymgmt.RotationRecipient {
	out := slices.Clone(rs)
	for i := range out {
		out[i].ReadOnly = true
	}
	return out
}

// withEpoch returns ku with its rotate event re-signed for another epoch.
func withEpoch(t testing.TB, m *managed, ku *KeyUpdate, epoch uint64) *KeyUpdate {
	t.Helper()
	out := *ku
	out.Rotate = ku.Rotate.Clone()
	out.Rotate.Epoch = epoch
	if err := SignEvent(out.Rotate, m.boss.id); err != nil {
		t.Fatal(err)
	}
	return &out
}

func TestSplitDetected(t *testing.T) {
	// The manager shows Alice and Bob different rotations to epoch 1 on the
	// same head; both key updates end up in epoch 0's mailbox (hosts sync
	// it), so each member meets the other's rotate event.
	m := newManaged(t, DefaultPolicy())
	alice, bob := newPerson(t, "alice"), newPerson(t, "bob")
	m.add(t, alice, RoleWrite)
	m.add(t, bob, RoleWrite)
	ca, cb := follow(t, m.c), follow(t, m.c)
	shadow := follow(t, m.c)
	rotA, err := m.c.Rotate(m.boss.id, m.tick(), 0)
	if err != nil {
		t.Fatal(err)
	}
	rotB, err := shadow.Rotate(m.boss.id, m.tick(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.AcceptKeyUpdate(alice.id, 0, rotA.Parts[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.AcceptKeyUpdate(bob.id, 0, rotB.Parts[0]); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		c  *Chain
		id *keymgmt.Identity
		ku *KeyUpdate
	}{
		"alice": {ca, alice.id, rotB.Parts[0]},
		"bob":   {cb, bob.id, rotA.Parts[0]},
	} {
		// Each holds epoch 1 already; the other rotation to epoch 1 is a
		// fork, with evidence both can show.
		var fe *ForkError
		_, err := tc.c.AcceptKeyUpdate(tc.id, 1, tc.ku)
		if !errors.Is(err, ErrFork) || !errors.As(err, &fe) || fe.Evidence.Verify() != nil {
			t.Fatalf("%s: the other rotation is not reported as a fork: %v", name, err)
		}
		if len(tc.c.Forks()) != 1 || tc.c.Epoch() != 1 {
			t.Fatalf("%s: fork not recorded, or the chain moved", name)
		}
		// A replay of the update it opened is only stale.
		if _, err := tc.c.AcceptKeyUpdate(tc.id, 1, map[bool]*KeyUpdate{true: rotA.Parts[0], false: rotB.Parts[0]}[name == "alice"]); !errors.Is(err, ErrStaleKeyUpdate) {
			t.Fatalf("%s: replay: %v", name, err)
		}
	}
	// A member that had not yet opened either sees the fork when it meets
	// the second one.
	cc := follow(t, ca)
	late, _ := NewChain(cc.Events()[0])
	for _, ev := range ca.Events()[1:3] {
		if err := late.Add(ev); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := late.AcceptKeyUpdate(alice.id, 0, rotA.Parts[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := late.AcceptKeyUpdate(bob.id, 0, rotB.Parts[0]); !errors.Is(err, ErrFork) {
		t.Fatalf("second rotation on the same head: %v", err)
	}
}

func TestSplitDetectedThroughPayloadHeads(t *testing.T) {
	// Same epoch secrets, different state events: the manager shows Alice
	// one set of hosts and Bob another, on the same head, and then rotates
	// each of them on their own branch. Each payload carries its author's
	// head; each member checks the other's.
	m := newManaged(t, DefaultPolicy())
	alice, bob := newPerson(t, "alice"), newPerson(t, "bob")
	m.add(t, alice, RoleWrite)
	m.add(t, bob, RoleWrite)
	ca, cb := follow(t, m.c), follow(t, m.c)
	shadow := follow(t, m.c)
	evA := m.append(t, m.boss, &Event{Kind: EventSetHosts, Hosts: []string{"/dns4/a.example/tcp/1/p2p/a"}})
	evB, err := shadow.Append(&Event{Kind: EventSetHosts, Hosts: []string{"/dns4/b.example/tcp/1/p2p/b"}}, m.boss.id, m.tick())
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Add(evA); err != nil {
		t.Fatal(err)
	}
	if err := cb.Add(evB); err != nil {
		t.Fatal(err)
	}
	keys, _ := m.g.CurrentKeys()
	post := func(author *person, c *Chain, epoch uint64, seq uint64) *Payload {
		head, _ := c.HeadOf(epoch)
		p := &Payload{GroupID: c.GroupID(), Epoch: epoch, StateHead: [32]byte(head), Seq: seq, Kind: KindText, Body: []byte("hi")}
		if err := SignPayloadAs(p, author.id); err != nil {
			t.Fatal(err)
		}
		env, err := SealMessage(keys, p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := OpenMessage(keys, c.GroupID(), epoch, env)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	fromA, fromB := post(alice, ca, 0, 1), post(bob, cb, 0, 1)
	// While epoch 0 is current, an unknown head may just be an event not
	// yet received.
	if err := cb.CheckHead(fromA.Epoch, EventID(fromA.StateHead)); !errors.Is(err, ErrUnknownHead) {
		t.Fatalf("bob on alice's head: %v", err)
	}
	// Once the branch event reaches Bob (the manager posted it in the
	// mailbox, or Alice re-posts it), it is a fork with evidence.
	cbCopy := follow(t, cb)
	if err := cbCopy.Add(evA); !errors.Is(err, ErrFork) {
		t.Fatalf("bob gets alice's event: %v", err)
	}
	var fe *ForkError
	if err := cbCopy.CheckHead(0, EventID(fromA.StateHead)); !errors.As(err, &fe) || !errors.Is(err, ErrSplit) {
		t.Fatalf("bob on alice's head after the fork: %v", err)
	}
	// Without the event: each branch rotates on; the old epoch closes, and
	// a head of it that is not on the chain is the word of the payload's
	// author alone, not evidence of a split (nothing the manager signed
	// shows one): the author's fault.
	rotA, _ := m.c.Rotate(m.boss.id, m.tick(), 0)
	rotB, _ := shadow.Rotate(m.boss.id, m.tick(), 0)
	if _, err := ca.AcceptKeyUpdate(alice.id, 0, rotA.Parts[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.AcceptKeyUpdate(bob.id, 0, rotB.Parts[0]); err != nil {
		t.Fatal(err)
	}
	if err := cb.CheckHead(fromA.Epoch, EventID(fromA.StateHead)); !errors.Is(err, ErrForeignHead) {
		t.Fatalf("bob on alice's head of the closed epoch: %v", err)
	}
	if err := ca.CheckHead(fromB.Epoch, EventID(fromB.StateHead)); !errors.Is(err, ErrForeignHead) {
		t.Fatalf("alice on bob's head of the closed epoch: %v", err)
	}
	// Honest members' heads pass.
	if err := ca.CheckHead(fromA.Epoch, EventID(fromA.StateHead)); err != nil {
		t.Fatal(err)
	}
}

func TestKeyUpdateParts(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	var people []*person
	for i := range 20 {
		p := newPerson(t, "p")
		people = append(people, p)
		m.add(t, p, Role(1+i%2))
	}
	chains := make([]*Chain, len(people))
	for i := range people {
		chains[i] = follow(t, m.c)
	}
	const maxPart = 1200
	rot, err := m.c.Rotate(m.boss.id, m.tick(), maxPart)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for i, p := range rot.Parts {
		b, err := MarshalKeyUpdate(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > maxPart || p.Part != i || p.Parts != len(rot.Parts) {
			t.Fatalf("part %d: %d bytes, index %d of %d", i, len(b), p.Part, p.Parts)
		}
		total += len(p.Entries)
	}
	if total != 21 || len(rot.Parts) < 3 {
		t.Fatalf("%d entries in %d parts", total, len(rot.Parts))
	}
	// Every member finds its copy in exactly one part, which opens alone.
	for i, p := range people {
		opened := 0
		for _, part := range rot.Parts {
			if _, err := chains[i].AcceptKeyUpdate(p.id, 0, part); err == nil {
				opened++
			} else if !errors.Is(err, keymgmt.ErrNotRecipient) {
				t.Fatal(err)
			}
		}
		if opened != 1 {
			t.Fatalf("member %d opened %d parts", i, opened)
		}
	}
}

func TestParseKeyUpdateRejects(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	m.add(t, newPerson(t, "bob"), RoleWrite)
	rot, err := m.c.Rotate(m.boss.id, m.tick(), 0)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := MarshalKeyUpdate(rot.Parts[0])
	evLen := len(rot.Event.marshal())
	entries := 7 + evLen // offset of the entry count
	mut := func(f func([]byte) []byte) []byte { return f(bytes.Clone(good)) }
	swapped := bytes.Clone(good)
	{
		// Swap the two entries so they are out of order.
		first := entries + 4
		n := keymgmt.SlotSize + 2 + int(good[first+keymgmt.SlotSize])<<8 | int(good[first+keymgmt.SlotSize+1])
		a, b := bytes.Clone(good[first:first+n]), bytes.Clone(good[first+n:])
		copy(swapped[first:], b)
		copy(swapped[first+len(b):], a)
	}
	tests := map[string][]byte{
		"empty":            nil,
		"version":          mut(func(b []byte) []byte { b[0] = 2; return b }),
		"part beyond":      mut(func(b []byte) []byte { b[2] = 1; return b }),
		"zero parts":       mut(func(b []byte) []byte { b[4] = 0; return b }),
		"event truncated":  mut(func(b []byte) []byte { b[6]--; return b }),
		"bad event":        mut(func(b []byte) []byte { b[7] = 9; return b }),
		"no entries":       append(bytes.Clone(good[:entries]), 0, 0, 0, 0),
		"count too high":   mut(func(b []byte) []byte { b[entries+3]++; return b }),
		"count too low":    mut(func(b []byte) []byte { b[entries+3]--; return b }),
		"entry truncated":  good[:len(good)-1],
		"trailing":         append(bytes.Clone(good), 0),
		"unsorted entries": swapped,
		"duplicate entry":  dupEntry(t, rot.Parts[0]),
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			if ku, err := ParseKeyUpdate(b); !errors.Is(err, ErrKeyUpdateMalformed) || ku != nil {
				t.Fatalf("got %v; want ErrKeyUpdateMalformed", err)
			}
		})
	}
}

// dupEntry encodes ku with its first entry twice, bypassing validation.
func dupEntry(t testing.TB, ku *KeyUpdate) []byte {
	t.Helper()
	k := *ku
	k.Entries = append([]keymgmt.WrappedSecrets{ku.Entries[0]}, ku.Entries...)
	if _, err := MarshalKeyUpdate(&k); !errors.Is(err, ErrKeyUpdateMalformed) {
		t.Fatalf("MarshalKeyUpdate accepted a duplicate entry: %v", err)
	}
	good, _ := MarshalKeyUpdate(ku)
	off := 7 + len(ku.Rotate.marshal())
	b := bytes.Clone(good[:off])
	b = append(b, 0, 0, 0, byte(len(k.Entries)))
	e := ku.Entries[0]
	enc := append(append(e.Slot[:], byte(len(e.Sealed)>>8), byte(len(e.Sealed))), e.Sealed...)
	b = append(b, enc...)
	return append(b, good[off+4:]...)
}

func FuzzParseKeyUpdate(f *testing.F) {
	m := newManaged(f, DefaultPolicy())
	m.add(f, newPerson(f, "bob"), RoleRead)
	rot, err := m.c.Rotate(m.boss.id, m.tick(), 0)
	if err != nil {
		f.Fatal(err)
	}
	b, _ := MarshalKeyUpdate(rot.Parts[0])
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
