package groupstate

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/meshnode/meshnode/keymgmt"
)

// Memberships and the admission of a managed group's payloads
// (ARCHITECTURE §7, §11).
//
// A member's membership is the event that added it (the create for the
// creator). A member who is removed (or leaves) and added again has a new
// membership, and its sequence numbers start again from 1: each
// membership is a sequence space of its own (MembershipKey), so nothing a
// rejoiner sends is taken for a replay of what it sent before.
//
// A payload belongs to the membership its author had at the state head
// the payload names. AdmitPayload judges it there: the author must have
// been a member (ErrNotMember) with the role the kind needs (ErrNotWriter),
// and if a later main-line event removed it or took its write role away,
// only the sequence numbers that event's author had seen are admitted
// (Event.Admits, ErrRevoked) — whatever number, head or time the payload
// claims. A head this chain does not hold is judged by CheckHead: a branch
// we hold is a split with the manager's signed evidence; an unknown head
// of a closed epoch is the author's fault (ErrForeignHead); an unknown
// head of the current epoch may be an event not received yet
// (ErrUnknownHead: the caller waits for the chain to grow).

// MembershipLabel prefixes the hash that names a membership's sequence
// space.
const MembershipLabel = "meshnode/v1/membership"

// MembershipKey is the key of the sequence space of the membership of
// author that added marks: SHA-256(MembershipLabel ‖ author ‖ added). The
// node's SeqTracker of a managed group is keyed by it.
func MembershipKey(author [32]byte, added EventID) [32]byte {
	h := sha256.New()
	h.Write([]byte(MembershipLabel))
	h.Write(author[:])
	h.Write(added[:])
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// NeedsWrite reports whether a payload kind needs the write role: what
// members say to the group (text, direct, profile, and the replies,
// reactions, edits and deletes of refs.go). Key updates, state
// events and requests are authorized by the chain itself
// (AcceptKeyUpdate, Chain.Add, AuthorizeRequest).
func (k Kind) NeedsWrite() bool {
	return k == KindText || k == KindDirect || k == KindProfile || k.IsRef() || k == KindFile
}

// memberMark is one main-line event that changed a member's membership or
// role: the role after it (0: not a member) and the membership it is part
// of.
type memberMark struct {
	at    int // index of the event in the main line
	role  Role
	added EventID
	// leaf is the member's place in the key trees after the event (when
	// role is not 0).
	leaf Leaf
}

// affected lists the keys of the members whose membership or role ev
// changes (eff is what check prepared).
func affected(ev *Event, eff effect) [][32]byte {
	switch ev.Kind {
	case EventAdd:
		return [][32]byte{[32]byte(eff.added.Identity.SignPub)}
	case EventRemove, EventSetRole, EventAddManager:
		return [][32]byte{ev.Target}
	case EventTransferManager:
		return [][32]byte{ev.Target, ev.Author}
	case EventCreate:
		return [][32]byte{ev.Author}
	}
	return nil
}

// markMain records, for each key, the main-line event id (just recorded)
// and the role it left the member with.
func (c *Chain) markMain(id EventID, keys ...[32]byte) {
	at := c.entries[id].at
	for _, k := range keys {
		m := memberMark{at: at}
		if mb, ok := c.state.Members[k]; ok {
			m.role, m.added, m.leaf = mb.Role, mb.Added, c.layout.pos[k]
		} else if prev := c.marks[k]; len(prev) > 0 {
			m.added = prev[len(prev)-1].added // the membership a removal ended
		}
		c.marks[k] = append(c.marks[k], m)
	}
}

// markAt returns the mark in effect for key at main-line index at.
func (c *Chain) markAt(key [32]byte, at int) (memberMark, bool) {
	ms := c.marks[key]
	i := sort.Search(len(ms), func(i int) bool { return ms[i].at > at })
	if i == 0 {
		return memberMark{}, false
	}
	return ms[i-1], true
}

// revokedAfter returns the first main-line event after index at that
// removed key or took its write role away (Event.Revokes), or nil.
func (c *Chain) revokedAfter(at int, key [32]byte) *Event {
	ms := c.marks[key]
	for i := sort.Search(len(ms), func(i int) bool { return ms[i].at > at }); i < len(ms); i++ {
		if ev := c.entries[c.main[ms[i].at]].ev; ev.Revokes() && ev.Target == key {
			return ev
		}
	}
	return nil
}

// Membership is what a managed group's chain says about a payload's
// author (AdmitPayload).
type Membership struct {
	// Added is the event that added the author for the membership the
	// payload belongs to (the create for the creator); Key its sequence
	// space (MembershipKey).
	Added EventID
	Key   [32]byte
	// Role is the author's role at the state the payload is judged in.
	Role Role
	// Joined is the time of Added (the manager's clock): the author
	// cannot have sent the payload before it.
	Joined time.Time
	// Split is set when the payload names a head on a branch this chain
	// holds: the manager-signed evidence of a split, to report.
	Split *ForkError
}

// JudgedAt returns the state head a payload is judged at: the head it
// names, except for a state-event payload naming the very event it
// carries (a manager posts an event under the head it makes), which is
// judged at the event's parent — the state its author wrote in. The
// event's ID is evID (zero when the payload carries no event).
func JudgedAt(p *Payload, evID, evParent EventID) EventID {
	head := EventID(p.StateHead)
	if p.Kind == KindStateEvent && !evID.IsZero() && head == evID && !evParent.IsZero() {
		return evParent
	}
	return head
}

// AdmitPayload decides whether a payload of this chain's group may be
// shown (or its body acted upon), and to which membership of its author
// it belongs. at is where it is judged (JudgedAt; the payload's head for
// every kind but state events). The payload must be opened and verified
// (OpenMessage). Errors:
//
//   - ErrPayloadMalformed: no state head;
//   - the errors of CheckHead: ErrUnknownHead (wait for the chain to
//     grow), ErrForeignHead and ErrHeadEpoch (the author's fault);
//   - ErrNotMember: the author was not a member at that state;
//   - ErrRevoked: a later event removed the author (or took its write
//     role away, for a kind that needs it) and its author had not seen
//     this sequence number;
//   - ErrNotWriter: the kind needs the write role, and the author had
//     only the read role.
//
// A head on a branch is admitted as its state says, with the split's
// evidence in Membership.Split; revocations on the main line after the
// point where the branch leaves it still apply, so a branch cannot bring
// back a removed member.
func (c *Chain) AdmitPayload(p *Payload, at EventID) (*Membership, error) {
	head := EventID(p.StateHead)
	if head.IsZero() {
		return nil, fmt.Errorf("%w: a payload of a managed group without a state head", ErrPayloadMalformed)
	}
	var split *ForkError
	if err := c.CheckHead(p.Epoch, head); err != nil {
		if !errors.As(err, &split) {
			return nil, err
		}
	}
	if at.IsZero() {
		at = head
	}
	e, ok := c.entries[at]
	if !ok {
		return nil, fmt.Errorf("%w: head %s for epoch %d", ErrUnknownHead, at.Short(), p.Epoch)
	}
	author := p.Author
	who := keymgmt.Fingerprint(author[:])
	var ms Membership
	ms.Split = split
	anchor := e.at // the main-line index revocations are counted from
	if e.onMain {
		m, ok := c.markAt(author, e.at)
		if !ok || m.role == 0 {
			return nil, fmt.Errorf("%w: %s is not a member of %q at state %s", ErrNotMember, who, c.state.Name, at.Short())
		}
		ms.Role, ms.Added = m.role, m.added
	} else {
		st, err := c.stateAt(at)
		if err != nil {
			return nil, err
		}
		mb, ok := st.Members[author]
		if !ok {
			return nil, fmt.Errorf("%w: %s is not a member of %q at state %s (a branch)", ErrNotMember, who, c.state.Name, at.Short())
		}
		ms.Role, ms.Added = mb.Role, mb.Added
		if anchor, err = c.mainAncestor(at); err != nil {
			return nil, err
		}
	}
	ms.Key = MembershipKey(author, ms.Added)
	if a, ok := c.entries[ms.Added]; ok {
		ms.Joined = a.ev.TimeValue()
	}
	if rv := c.revokedAfter(anchor, author); rv != nil && !rv.Admits(p.Seq) && (rv.Kind == EventRemove || p.Kind.NeedsWrite()) {
		what := "removed from"
		if rv.Kind == EventSetRole {
			what = "made a reader in"
		}
		seen := "before the sequence limit " + fmt.Sprint(rv.SeqLimit)
		if rv.Seen != nil {
			seen = "among the messages its author had seen (" + rv.Seen.String() + ")"
		}
		return &ms, fmt.Errorf("%w: %s was %s %q by %s at %s; its message %d is not %s",
			ErrRevoked, who, what, c.state.Name, fingerprintOf(rv), rv.ID().Short(), p.Seq, seen)
	}
	if p.Kind.NeedsWrite() && !ms.Role.CanWrite() {
		return &ms, fmt.Errorf("%w: %s has the role %s in %q at state %s, and posted a %s", ErrNotWriter, who, ms.Role, c.state.Name, at.Short(), p.Kind)
	}
	return &ms, nil
}

// mainAncestor returns the main-line index of the latest main-line
// ancestor of a branch event.
func (c *Chain) mainAncestor(id EventID) (int, error) {
	for cur := id; ; {
		e, ok := c.entries[cur]
		if !ok {
			return 0, fmt.Errorf("%w: event %s", ErrUnknownParent, cur.Short())
		}
		if e.onMain {
			return e.at, nil
		}
		cur = e.ev.Parent
	}
}

// MemberSince returns the membership of key at the head: the event that
// added it and its sequence space.
func (c *Chain) MemberSince(key [32]byte) (added EventID, seqKey [32]byte, ok bool) {
	mb, ok := c.state.Members[key]
	if !ok {
		return EventID{}, [32]byte{}, false
	}
	return mb.Added, MembershipKey(key, mb.Added), true
}

// Memberships returns every membership the main line records: sequence
// space key → member key. It names the authors of a managed group's
// sequence spaces (a tracker's gaps, for instance).
func (c *Chain) Memberships() map[[32]byte][32]byte {
	out := map[[32]byte][32]byte{}
	for k, ms := range c.marks {
		for _, m := range ms {
			if !m.added.IsZero() {
				out[MembershipKey(k, m.added)] = k
			}
		}
	}
	return out
}

// RevocationOf returns the first main-line event that removed key from
// the membership added by added or took its write role away (Event.Revokes),
// if there is one.
func (c *Chain) RevocationOf(key [32]byte, added EventID) (*Event, bool) {
	for _, m := range c.marks[key] {
		if m.added != added {
			continue
		}
		if ev := c.entries[c.main[m.at]].ev; ev.Revokes() && ev.Target == key {
			return ev.Clone(), true
		}
	}
	return nil, false
}

// RemovalOf returns the main-line event that ended the membership of key
// added by added (an EventRemove), if there is one: a demotion before it
// does not end it.
func (c *Chain) RemovalOf(key [32]byte, added EventID) (*Event, bool) {
	for _, m := range c.marks[key] {
		if m.added != added {
			continue
		}
		if ev := c.entries[c.main[m.at]].ev; ev.Kind == EventRemove && ev.Target == key {
			return ev.Clone(), true
		}
	}
	return nil, false
}

// RevokedKey returns the sequence space of the membership that a
// main-line event removing its target or taking its write role away
// (Event.Revokes) ended or restricted.
func (c *Chain) RevokedKey(id EventID) ([32]byte, bool) {
	e, ok := c.entries[id]
	if !ok || !e.onMain || !e.ev.Revokes() {
		return [32]byte{}, false
	}
	m, ok := c.markAt(e.ev.Target, e.at)
	if !ok || m.added.IsZero() {
		return [32]byte{}, false
	}
	return MembershipKey(e.ev.Target, m.added), true
}

// Created returns the time of the chain's create event: no member posted
// before it.
func (c *Chain) Created() time.Time { return c.entries[c.main[0]].ev.TimeValue() }

// EverMember reports whether the main line ever made key a member (it may
// have left since). An author the chain never knew is anybody with the
// group's write key and a fresh identity: what it is blamed for cannot
// be told apart from what a thousand such identities are blamed for.
func (c *Chain) EverMember(key [32]byte) bool { return len(c.marks[key]) > 0 }
