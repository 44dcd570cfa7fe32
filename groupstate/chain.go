package groupstate

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/meshnode/meshnode/keymgmt"
)

// Chain limits.
const (
	// MaxChainEvents bounds the events a chain holds (main line and
	// branches).
	MaxChainEvents = 1 << 20
	// MaxOrphans bounds the events kept while their parent is unknown.
	MaxOrphans = 1024
)

// Chain is a member's copy of a managed group's state chain: every event
// it has accepted, the main line from the create to the head, the state at
// the head, and the forks it has seen. The main line is the first valid
// branch seen; a later event that extends anything but the head is a fork.
// Events whose parent is unknown are kept (up to MaxOrphans) and applied
// when the parent arrives.
//
// A Chain is not safe for concurrent use; its owner (the node's group
// loop) serialises access.
type Chain struct {
	group    GroupID
	entries  map[EventID]*chainEntry
	children map[EventID][]EventID
	main     []EventID
	// order is every accepted event in the order it was accepted, for
	// MarshalBinary.
	order []EventID
	state *State
	// epochWPub and epochHead are the write key and the latest main-line
	// event of every epoch.
	epochWPub map[uint64]ed25519.PublicKey
	epochHead map[uint64]EventID
	forks     []ForkEvidence
	orphans   map[EventID][]*Event
	nOrphans  int
	// marks are, per member key, the main-line events that changed its
	// membership or role, in main-line order (membership.go).
	marks map[[32]byte][]memberMark
	// layout is the key tree layout of the main line (treelayout.go);
	// epochRotate the main-line event that started each epoch (the
	// create for epoch 0).
	layout      *treeLayout
	epochRotate map[uint64]EventID
}

type chainEntry struct {
	ev     *Event
	epoch  uint64 // epoch of the state after ev
	onMain bool
	at     int // index in main (main-line events only)
}

// NewChain starts a chain with a create event (verified like Apply).
func NewChain(create *Event) (*Chain, error) {
	if create == nil || create.Kind != EventCreate {
		return nil, fmt.Errorf("%w: a chain starts with a create event", ErrUnknownParent)
	}
	st, err := Apply(nil, create)
	if err != nil {
		return nil, err
	}
	c := &Chain{
		group:       create.GroupID,
		entries:     map[EventID]*chainEntry{},
		children:    map[EventID][]EventID{},
		state:       st,
		epochWPub:   map[uint64]ed25519.PublicKey{0: slices.Clone(st.WPub)},
		epochHead:   map[uint64]EventID{0: st.Head},
		orphans:     map[EventID][]*Event{},
		marks:       map[[32]byte][]memberMark{},
		layout:      newTreeLayout(),
		epochRotate: map[uint64]EventID{0: st.Head},
	}
	c.record(st.Head, create.Clone(), 0, true)
	c.layout.apply(create, map[[32]byte]Role{create.Author: 0}, st)
	c.markMain(st.Head, create.Author)
	return c, nil
}

func (c *Chain) record(id EventID, ev *Event, epoch uint64, onMain bool) {
	c.entries[id] = &chainEntry{ev: ev, epoch: epoch, onMain: onMain, at: len(c.main)}
	c.children[ev.Parent] = append(c.children[ev.Parent], id)
	c.order = append(c.order, id)
	if onMain {
		c.main = append(c.main, id)
		c.epochHead[epoch] = id
		if ev.Kind == EventRotate {
			c.epochWPub[epoch] = slices.Clone(ev.WPub[:])
			c.epochRotate[epoch] = id
		}
	}
}

// GroupID returns the chain's group.
func (c *Chain) GroupID() GroupID { return c.group }

// Head returns the ID of the main line's latest event.
func (c *Chain) Head() EventID { return c.state.Head }

// Epoch returns the epoch of the state at the head.
func (c *Chain) Epoch() uint64 { return c.state.Epoch }

// Len returns the number of accepted events (main line and branches).
func (c *Chain) Len() int { return len(c.entries) }

// State returns a copy of the state at the head.
func (c *Chain) State() *State { return c.state.Clone() }

// Hosts returns the hosts of the state at the head (State copies the
// whole roster).
func (c *Chain) Hosts() []string { return slices.Clone(c.state.Hosts) }

// Policy returns the policy of the state at the head.
func (c *Chain) Policy() Policy { return c.state.Policy }

// Member returns a member of the state at the head.
func (c *Chain) Member(key ed25519.PublicKey) (*Member, bool) { return c.state.Member(key) }

// HeadOf returns the latest main-line event of an epoch: the state head a
// member puts in payloads of that epoch (for a key update posted in the old
// epoch's mailbox, the head before the rotate).
func (c *Chain) HeadOf(epoch uint64) (EventID, bool) {
	id, ok := c.epochHead[epoch]
	return id, ok
}

// WPubOf returns the write public key the main line gives an epoch.
func (c *Chain) WPubOf(epoch uint64) (ed25519.PublicKey, bool) {
	k, ok := c.epochWPub[epoch]
	return slices.Clone(k), ok
}

// Event returns an accepted event by ID.
func (c *Chain) Event(id EventID) (*Event, bool) {
	e, ok := c.entries[id]
	if !ok {
		return nil, false
	}
	return e.ev.Clone(), true
}

// Events returns the main line, create first (what a welcome carries).
func (c *Chain) Events() []*Event {
	out := make([]*Event, len(c.main))
	for i, id := range c.main {
		out[i] = c.entries[id].ev.Clone()
	}
	return out
}

// RevokedAfter returns the first main-line event after head that removed
// the member with key, or took its write role away with a seen set or
// sequence limit (Event.Revokes), if there is one. A payload naming head
// whose author has lost since the role it needs is judged by it
// (Event.Admits). A head not on the main line has nothing after it.
func (c *Chain) RevokedAfter(head EventID, key [32]byte) (*Event, bool) {
	e, ok := c.entries[head]
	if !ok || !e.onMain {
		return nil, false
	}
	ev := c.revokedAfter(e.at, key)
	if ev == nil {
		return nil, false
	}
	return ev.Clone(), true
}

// Forks returns the fork evidence seen so far.
func (c *Chain) Forks() []ForkEvidence { return slices.Clone(c.forks) }

// Add verifies and applies ev. It returns nil when ev extended the head
// (the head moves), ErrReplay for an event already held, ErrUnknownParent
// when ev's parent is unknown (ev is kept and applied when the parent
// arrives), a *ForkError (ErrFork) when ev is a valid event extending an
// older event — equivocation by its author, with the evidence — and the
// errors of Apply (ErrBadSignature, ErrUnauthorized, ErrInvalidEvent...)
// otherwise; rejected events change nothing. Orphans applied as a result of
// ev are handled the same way; their forks are recorded in Forks.
func (c *Chain) Add(ev *Event) error {
	err := c.add(ev)
	if err == nil || isFork(err) {
		c.adoptOrphans(ev.ID())
	}
	return err
}

func isFork(err error) bool {
	var fe *ForkError
	return errors.As(err, &fe)
}

func (c *Chain) add(ev *Event) error {
	if ev == nil {
		return fmt.Errorf("%w: nil event", ErrEventMalformed)
	}
	if ev.GroupID != c.group {
		return fmt.Errorf("%w: event names group %s, the chain is group %s", ErrWrongGroup, ev.GroupID.Short(), c.group.Short())
	}
	if err := ev.Verify(); err != nil {
		return err
	}
	id := ev.ID()
	if _, ok := c.entries[id]; ok {
		return fmt.Errorf("%w: %s event %s", ErrReplay, ev.Kind, id.Short())
	}
	if ev.Kind == EventCreate {
		return fmt.Errorf("%w: a second create event for group %s", ErrUnauthorized, c.group.Short())
	}
	if len(c.entries) >= MaxChainEvents {
		return fmt.Errorf("%w: the chain holds the maximum of %d events", ErrInvalidEvent, MaxChainEvents)
	}
	if _, ok := c.entries[ev.Parent]; !ok {
		c.keepOrphan(id, ev)
		return fmt.Errorf("%w: %s event %s extends %s; kept until it arrives", ErrUnknownParent, ev.Kind, id.Short(), ev.Parent.Short())
	}
	if ev.Parent == c.state.Head {
		eff, err := check(c.state, ev)
		if err != nil {
			return err
		}
		keys := affected(ev, eff)
		before := make(map[[32]byte]Role, len(keys))
		for _, k := range keys {
			if m, ok := c.state.Members[k]; ok {
				before[k] = m.Role
			} else {
				before[k] = 0
			}
		}
		// The head state is only ever modified here, after check accepted
		// the event, so a rejected event leaves it unchanged. State()
		// hands out copies.
		mutate(c.state, ev, eff)
		c.record(id, ev.Clone(), c.state.Epoch, true)
		c.layout.apply(ev, before, c.state)
		c.markMain(id, keys...)
		return nil
	}
	// ev extends an older event: a fork if its author was entitled to it
	// in the state it extends.
	st, err := c.stateAt(ev.Parent)
	if err != nil {
		return err
	}
	ns, err := applyVerified(st, ev)
	if err != nil {
		return err
	}
	siblings := c.children[ev.Parent]
	c.record(id, ev.Clone(), ns.Epoch, false)
	if len(siblings) == 0 {
		// ev continues a branch already reported: the evidence is where
		// that branch leaves the main line.
		fe, err := c.branchEvidence(id)
		if err != nil {
			return err
		}
		return &ForkError{Evidence: fe, err: ErrFork}
	}
	fe := ForkEvidence{A: c.entries[siblings[0]].ev.Clone(), B: ev.Clone()}
	c.forks = append(c.forks, fe)
	return &ForkError{Evidence: fe, err: ErrFork}
}

// keepOrphan stores an event whose parent is unknown, if there is room.
func (c *Chain) keepOrphan(id EventID, ev *Event) {
	if c.nOrphans >= MaxOrphans {
		return
	}
	for _, o := range c.orphans[ev.Parent] {
		if o.ID() == id {
			return
		}
	}
	c.orphans[ev.Parent] = append(c.orphans[ev.Parent], ev.Clone())
	c.nOrphans++
}

// HoldsOrphan reports whether an event whose parent is unknown is kept
// (Add keeps at most MaxOrphans).
func (c *Chain) HoldsOrphan(ev *Event) bool {
	id := ev.ID()
	for _, o := range c.orphans[ev.Parent] {
		if o.ID() == id {
			return true
		}
	}
	return false
}

// adoptOrphans applies the orphans waiting for id, and theirs in turn.
func (c *Chain) adoptOrphans(id EventID) {
	queue := []EventID{id}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		waiting := c.orphans[p]
		delete(c.orphans, p)
		c.nOrphans -= len(waiting)
		for _, ev := range waiting {
			if err := c.add(ev); err == nil || isFork(err) {
				queue = append(queue, ev.ID())
			}
		}
	}
}

// StateAt returns the state after an accepted event (main line or branch)
// by replaying its ancestry from the create: a copy the caller may keep.
func (c *Chain) StateAt(id EventID) (*State, error) {
	if id == c.state.Head {
		return c.state.Clone(), nil
	}
	return c.stateAt(id)
}

// stateAt replays the ancestry of id. The result is fresh.
func (c *Chain) stateAt(id EventID) (*State, error) {
	if id == c.state.Head {
		return c.state.Clone(), nil
	}
	var path []*Event
	for cur := id; ; {
		e, ok := c.entries[cur]
		if !ok {
			return nil, fmt.Errorf("%w: event %s", ErrUnknownParent, cur.Short())
		}
		path = append(path, e.ev)
		if e.ev.Kind == EventCreate {
			break
		}
		cur = e.ev.Parent
	}
	slices.Reverse(path)
	st := genesis(path[0])
	for _, ev := range path[1:] {
		// Every event in the chain was checked when it was accepted, so
		// replaying it cannot fail; check again anyway rather than trust it.
		eff, err := check(st, ev)
		if err != nil {
			return nil, fmt.Errorf("groupstate: replay of %s: %w", ev.ID().Short(), err)
		}
		mutate(st, ev, eff)
	}
	return st, nil
}

// CheckHead compares the state head a member put in a payload of an epoch
// with this chain. nil means consistent (or no claim: a zero head). Errors:
//
//   - ErrHeadEpoch: the head is on our main line but in another epoch.
//   - ErrSplit as a *ForkError: the head is an event we hold on a branch,
//     not on our main line; the evidence is the two events where the
//     branches part.
//   - ErrForeignHead: the epoch is closed (we hold its successor's
//     rotate, and with it every main-line event of the epoch) and the head
//     is not among them. Nothing the manager signed shows a split: the
//     payload's author named a head this chain never had, which is the
//     author's word alone (ARCHITECTURE §11: accusations need evidence
//     signed by the accused), so it is the author's fault.
//   - ErrUnknownHead: a head of the current or a later epoch that we do
//     not hold yet; check again after more events.
func (c *Chain) CheckHead(epoch uint64, head EventID) error {
	if head.IsZero() {
		return nil
	}
	e, ok := c.entries[head]
	switch {
	case ok && e.onMain && e.epoch == epoch:
		return nil
	case ok && e.onMain:
		return fmt.Errorf("%w: head %s belongs to epoch %d, the payload is of epoch %d", ErrHeadEpoch, head.Short(), e.epoch, epoch)
	case ok:
		fe, err := c.branchEvidence(head)
		if err != nil {
			return err
		}
		return &ForkError{Evidence: fe, err: ErrSplit}
	case epoch < c.state.Epoch:
		return fmt.Errorf("%w: head %s for epoch %d is not on this member's chain, which holds every event of that epoch", ErrForeignHead, head.Short(), epoch)
	default:
		return fmt.Errorf("%w: head %s for epoch %d", ErrUnknownHead, head.Short(), epoch)
	}
}

// branchEvidence finds where the branch holding id leaves the main line.
func (c *Chain) branchEvidence(id EventID) (ForkEvidence, error) {
	cur := c.entries[id]
	for {
		p, ok := c.entries[cur.ev.Parent]
		if !ok {
			return ForkEvidence{}, fmt.Errorf("%w: event %s", ErrUnknownParent, cur.ev.Parent.Short())
		}
		if p.onMain {
			for _, ch := range c.children[cur.ev.Parent] {
				if m := c.entries[ch]; m.onMain {
					return ForkEvidence{A: m.ev.Clone(), B: cur.ev.Clone()}, nil
				}
			}
			return ForkEvidence{}, fmt.Errorf("%w: branch leaves the main line at its head", ErrSplit)
		}
		cur = p
	}
}

// Append fills ev's header (group, parent = head, seq, time, author),
// signs it with s and adds it; the manager's way to author an event. It
// returns the signed event to post (KindStateEvent payload body:
// MarshalEvent).
func (c *Chain) Append(ev *Event, s Signer, now time.Time) (*Event, error) {
	ev = ev.Clone()
	ev.GroupID = c.group
	ev.Parent = c.state.Head
	ev.Seq = c.state.Height + 1
	ev.Time = now.UnixMilli()
	if err := SignEvent(ev, s); err != nil {
		return nil, err
	}
	if err := c.Add(ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// ForkEvidence is two different events, both signed, that extend the same
// head: proof that their authors (usually one manager) showed members
// different states. A member can show it to others (MarshalForkEvidence);
// VerifyForkEvidence checks it without any state.
type ForkEvidence struct {
	A, B *Event
}

// ForkError is the error of a fork or split with its evidence. It matches
// ErrFork (Chain.Add) or ErrSplit (Chain.CheckHead) with errors.Is.
type ForkError struct {
	Evidence ForkEvidence
	err      error
}

func (e *ForkError) Error() string {
	return fmt.Sprintf("%v: events %s (%s by %s) and %s (%s by %s) both extend %s",
		e.err, e.Evidence.A.ID().Short(), e.Evidence.A.Kind, fingerprintOf(e.Evidence.A),
		e.Evidence.B.ID().Short(), e.Evidence.B.Kind, fingerprintOf(e.Evidence.B), e.Evidence.A.Parent.Short())
}

// Unwrap returns ErrFork or ErrSplit.
func (e *ForkError) Unwrap() error { return e.err }

// Verify checks the evidence: two different, well-formed, validly signed
// events of one group extending the same parent.
func (fe ForkEvidence) Verify() error {
	if fe.A == nil || fe.B == nil {
		return fmt.Errorf("%w: missing event", ErrEvidenceMalformed)
	}
	for _, ev := range []*Event{fe.A, fe.B} {
		if err := ev.Verify(); err != nil {
			return err
		}
	}
	switch {
	case fe.A.GroupID != fe.B.GroupID:
		return fmt.Errorf("%w: events of different groups", ErrEvidenceMalformed)
	case fe.A.Parent != fe.B.Parent:
		return fmt.Errorf("%w: events extend different heads", ErrEvidenceMalformed)
	case fe.A.ID() == fe.B.ID():
		return fmt.Errorf("%w: the same event twice", ErrEvidenceMalformed)
	}
	return nil
}

// Fork evidence encoding: 1 version ‖ 2+L event A ‖ 2+L event B.
const evidenceVersion = 1

// MarshalForkEvidence encodes verified evidence.
func MarshalForkEvidence(fe ForkEvidence) ([]byte, error) {
	if err := fe.Verify(); err != nil {
		return nil, err
	}
	b := []byte{evidenceVersion}
	for _, ev := range []*Event{fe.A, fe.B} {
		e := ev.marshal()
		b = binary.BigEndian.AppendUint16(b, uint16(len(e)))
		b = append(b, e...)
	}
	return b, nil
}

// ParseForkEvidence decodes and verifies evidence.
func ParseForkEvidence(b []byte) (ForkEvidence, error) {
	d := newDecoder(b)
	if v := d.u8(); !d.ok || v != evidenceVersion {
		return ForkEvidence{}, fmt.Errorf("%w: version %d, want %d", ErrEvidenceMalformed, v, evidenceVersion)
	}
	var evs [2]*Event
	for i := range evs {
		raw := d.take(int(d.u16()))
		if !d.ok {
			return ForkEvidence{}, fmt.Errorf("%w: truncated", ErrEvidenceMalformed)
		}
		ev, err := ParseEvent(raw)
		if err != nil {
			return ForkEvidence{}, fmt.Errorf("%w: event %d: %w", ErrEvidenceMalformed, i, err)
		}
		evs[i] = ev
	}
	if !d.done() {
		return ForkEvidence{}, fmt.Errorf("%w: %d trailing bytes", ErrEvidenceMalformed, d.remaining())
	}
	fe := ForkEvidence{A: evs[0], B: evs[1]}
	return fe, fe.Verify()
}

// Chain encoding (stored by the node), version 1:
//
//	1 version ‖ 16 group ID ‖ 4 event count N ‖ N × (2+L event),
//
// events in the order they were accepted (the create first). Loading
// replays them, so forks are found again; orphans are not stored.
const chainVersion = 1

// MarshalBinary encodes the chain.
func (c *Chain) MarshalBinary() ([]byte, error) {
	b := []byte{chainVersion}
	b = append(b, c.group[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.order)))
	for _, id := range c.order {
		e := c.entries[id].ev.marshal()
		b = binary.BigEndian.AppendUint16(b, uint16(len(e)))
		b = append(b, e...)
	}
	return b, nil
}

// UnmarshalChain decodes and re-verifies a stored chain: every event is
// checked again, in order.
func UnmarshalChain(b []byte) (*Chain, error) {
	d := newDecoder(b)
	if v := d.u8(); !d.ok || v != chainVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrChainMalformed, v, chainVersion)
	}
	var g GroupID
	copy(g[:], d.take(len(g)))
	n := d.u32()
	if !d.ok || n == 0 || uint64(n) > uint64(d.remaining()/(2+eventFixed)) || n > MaxChainEvents {
		return nil, fmt.Errorf("%w: event count %d does not fit the %d remaining bytes", ErrChainMalformed, n, d.remaining())
	}
	var c *Chain
	for i := range n {
		raw := d.take(int(d.u16()))
		if !d.ok {
			return nil, fmt.Errorf("%w: event %d truncated", ErrChainMalformed, i)
		}
		ev, err := ParseEvent(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: event %d: %w", ErrChainMalformed, i, err)
		}
		if i == 0 {
			if c, err = NewChain(ev); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrChainMalformed, err)
			}
			if c.group != g {
				return nil, fmt.Errorf("%w: create event of group %s in the chain of group %s", ErrChainMalformed, c.group.Short(), g.Short())
			}
			continue
		}
		if err := c.add(ev); err != nil && !isFork(err) {
			return nil, fmt.Errorf("%w: event %d: %w", ErrChainMalformed, i, err)
		}
	}
	if !d.done() {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrChainMalformed, d.remaining())
	}
	return c, nil
}

func fingerprintOf(ev *Event) string {
	if ev == nil {
		return "?"
	}
	return keymgmt.Fingerprint(ev.Author[:])
}
