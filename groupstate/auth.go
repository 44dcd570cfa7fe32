package groupstate

import (
	"crypto/ed25519"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/meshnode/meshnode/keymgmt"
)

// MaxMembers bounds a managed group's roster (a key update for it is about
// 1.6 MB in 25 envelopes with X25519 keys).
const MaxMembers = 1 << 16

// Member is one member of a managed group as the state chain records it.
type Member struct {
	// Identity is the member's public identity: its signing key (the
	// member's key in State.Members) and the HPKE key key updates and
	// direct messages are sealed to.
	Identity keymgmt.PublicIdentity
	Role     Role
	// Nick is the nickname from the member's key package (or the
	// creator's create event).
	Nick string
	// Bot marks an always-on manager, shown as a bot, not a person.
	Bot bool
	// Added is the event that added the member (the create for the
	// creator).
	Added EventID
}

// Fingerprint returns the member's fingerprint.
func (m *Member) Fingerprint() string { return keymgmt.Fingerprint(m.Identity.SignPub) }

// State is a managed group's state after a chain of events. It is plain
// data; Apply never modifies the State it is given. Member values are
// shared between states and must not be modified either.
type State struct {
	GroupID GroupID
	Name    string
	// Members by Ed25519 identity key.
	Members map[[32]byte]*Member
	Policy  Policy
	Hosts   []string
	// Epoch is the current epoch and WPub its write public key.
	Epoch uint64
	WPub  ed25519.PublicKey
	// Head is the ID of the latest event, Height its Seq and Time its time
	// (Unix milliseconds).
	Head   EventID
	Height uint64
	Time   int64
	// RotatedAt is the time of the latest rotate (or the create).
	RotatedAt time.Time
	// RotationDue is set by the events that make a rotation due (remove,
	// demotion from write, add under from-join) and cleared by rotate.
	RotationDue RotationReason
	// DueBy and DueAt are the author and time (Unix milliseconds) of the
	// event that made the rotation due (AutoRotationDue).
	DueBy [32]byte
	DueAt int64
	// managers counts members with RoleManage.
	managers int
}

// Clone returns a copy that shares no maps or slices with st.
func (st *State) Clone() *State {
	c := *st
	c.Members = maps.Clone(st.Members)
	c.Hosts = slices.Clone(st.Hosts)
	c.WPub = slices.Clone(st.WPub)
	return &c
}

// Member returns the member with signing key key.
func (st *State) Member(key ed25519.PublicKey) (*Member, bool) {
	if len(key) != ed25519.PublicKeySize {
		return nil, false
	}
	m, ok := st.Members[[32]byte(key)]
	return m, ok
}

// MemberByFingerprint returns the member whose fingerprint is fp (in any
// form ParseFingerprint accepts).
func (st *State) MemberByFingerprint(fp string) (*Member, error) {
	want, err := keymgmt.ParseFingerprint(fp)
	if err != nil {
		return nil, err
	}
	for _, m := range st.Members {
		if m.Fingerprint() == want {
			return m, nil
		}
	}
	return nil, fmt.Errorf("%w: no member with fingerprint %s", ErrInvalidEvent, want)
}

// Managers returns the number of members with the manage role.
func (st *State) Managers() int { return st.managers }

// SortedMembers returns the members ordered by signing key.
func (st *State) SortedMembers() []*Member {
	keys := slices.SortedFunc(maps.Keys(st.Members), func(a, b [32]byte) int { return slices.Compare(a[:], b[:]) })
	out := make([]*Member, len(keys))
	for i, k := range keys {
		out[i] = st.Members[k]
	}
	return out
}

// NewState starts a state from a create event (Apply(nil, create)).
func NewState(create *Event) (*State, error) { return Apply(nil, create) }

// Apply returns the state after ev, or an error saying why ev is rejected;
// st itself is never modified. The checks, in order: ev is well formed and
// signed by its author (ErrEventMalformed, ErrBadSignature); a create only
// starts a chain (st == nil) and every other event extends st's head
// (ErrUnauthorized, ErrUnknownParent, ErrWrongGroup); the author was a
// member with the permission for the kind in st — Matrix's auth-events
// rule: permission is judged in the state the event extends, never in a
// later one (ErrUnauthorized); and the event applies (ErrInvalidEvent,
// ErrLastManager).
func Apply(st *State, ev *Event) (*State, error) {
	if ev == nil {
		return nil, fmt.Errorf("%w: nil event", ErrEventMalformed)
	}
	if err := ev.Verify(); err != nil {
		return nil, err
	}
	return applyVerified(st, ev)
}

// applyVerified is Apply for an event whose signature was checked.
func applyVerified(st *State, ev *Event) (*State, error) {
	if ev.Kind == EventCreate {
		if st != nil {
			return nil, fmt.Errorf("%w: a create event can only start a chain", ErrUnauthorized)
		}
		return genesis(ev), nil
	}
	if st == nil {
		return nil, fmt.Errorf("%w: a chain must start with a create event, not %s", ErrUnknownParent, ev.Kind)
	}
	eff, err := check(st, ev)
	if err != nil {
		return nil, err
	}
	ns := st.Clone()
	mutate(ns, ev, eff)
	return ns, nil
}

// genesis is the state a valid create event makes.
func genesis(ev *Event) *State {
	creator := &Member{
		Identity: *ev.Creator,
		Role:     RoleManage,
		Nick:     ev.Nick,
		Bot:      ev.Bot,
		Added:    ev.ID(),
	}
	return &State{
		GroupID:   ev.GroupID,
		Name:      ev.Name,
		Members:   map[[32]byte]*Member{ev.Author: creator},
		Policy:    ev.Policy,
		Hosts:     slices.Clone(ev.Hosts),
		Epoch:     0,
		WPub:      slices.Clone(ev.WPub[:]),
		Head:      creator.Added,
		Height:    ev.Seq,
		Time:      ev.Time,
		RotatedAt: ev.TimeValue(),
		managers:  1,
	}
}

// effect is what check prepared for mutate (the parsed newcomer of an add).
type effect struct {
	added *Member
}

// check decides whether a verified non-create event applies to st, without
// modifying st.
func check(st *State, ev *Event) (effect, error) {
	var eff effect
	if ev.GroupID != st.GroupID {
		return eff, fmt.Errorf("%w: event names group %s, the chain is group %s", ErrWrongGroup, ev.GroupID.Short(), st.GroupID.Short())
	}
	if ev.Parent != st.Head {
		return eff, fmt.Errorf("%w: %s event extends %s, the state's head is %s", ErrUnknownParent, ev.Kind, ev.Parent.Short(), st.Head.Short())
	}
	if ev.Seq != st.Height+1 {
		return eff, fmt.Errorf("%w: %s event has seq %d, its parent has %d", ErrEventMalformed, ev.Kind, ev.Seq, st.Height)
	}
	author, ok := st.Members[ev.Author]
	if !ok {
		return eff, fmt.Errorf("%w: %s event by %s, who is not a member (never added, or removed)",
			ErrUnauthorized, ev.Kind, keymgmt.Fingerprint(ev.AuthorKey()))
	}
	leaving := ev.Kind == EventRemove && ev.Target == ev.Author
	if !author.Role.CanManage() && !leaving {
		return eff, fmt.Errorf("%w: %s event by %s, whose role is %s; only managers can %s",
			ErrUnauthorized, ev.Kind, author.Fingerprint(), author.Role, ev.Kind)
	}
	target := func() (*Member, error) {
		m, ok := st.Members[ev.Target]
		if !ok {
			return nil, fmt.Errorf("%w: %s of %s, who is not a member", ErrInvalidEvent, ev.Kind, keymgmt.Fingerprint(ev.Target[:]))
		}
		return m, nil
	}
	switch ev.Kind {
	case EventAdd:
		kp, err := keymgmt.ParseKeyPackageBinary(ev.KeyPackage, ev.TimeValue())
		if err != nil {
			return eff, fmt.Errorf("%w: add: %w", ErrInvalidEvent, err)
		}
		key := [32]byte(kp.Identity.SignPub)
		if _, dup := st.Members[key]; dup {
			return eff, fmt.Errorf("%w: add of %s, who is already a member", ErrInvalidEvent, kp.Identity.Fingerprint())
		}
		if len(st.Members) >= MaxMembers {
			return eff, fmt.Errorf("%w: the group has the maximum of %d members", ErrInvalidEvent, MaxMembers)
		}
		eff.added = &Member{Identity: kp.Identity, Role: ev.Role, Nick: kp.Nick, Bot: ev.Bot, Added: ev.ID()}
	case EventRemove:
		m, err := target()
		if err != nil {
			return eff, err
		}
		if m.Role.CanManage() && st.managers == 1 {
			return eff, fmt.Errorf("%w: %s is the only manager; transfer management first", ErrLastManager, m.Fingerprint())
		}
	case EventSetRole:
		m, err := target()
		if err != nil {
			return eff, err
		}
		if m.Role == ev.Role {
			return eff, fmt.Errorf("%w: %s already has role %s", ErrInvalidEvent, m.Fingerprint(), m.Role)
		}
		if (ev.SeqLimit != 0 || ev.Seen != nil) && !(m.Role.CanWrite() && !ev.Role.CanWrite()) {
			return eff, fmt.Errorf("%w: a sequence limit or seen set on a change of %s from %s to %s, which takes no write role away",
				ErrInvalidEvent, m.Fingerprint(), m.Role, ev.Role)
		}
		if m.Role.CanManage() && st.managers == 1 {
			return eff, fmt.Errorf("%w: %s is the only manager; add another manager first", ErrLastManager, m.Fingerprint())
		}
	case EventAddManager, EventTransferManager:
		m, err := target()
		if err != nil {
			return eff, err
		}
		if m.Role.CanManage() {
			return eff, fmt.Errorf("%w: %s is already a manager", ErrInvalidEvent, m.Fingerprint())
		}
	case EventRotate:
		if ev.Epoch != st.Epoch+1 {
			return eff, fmt.Errorf("%w: rotation to epoch %d, the next epoch is %d", ErrInvalidEvent, ev.Epoch, st.Epoch+1)
		}
	case EventSetPolicy, EventSetHosts:
		// Well-formedness (checked by Verify) is all they need.
	default:
		return eff, fmt.Errorf("%w: %s event", ErrEventMalformed, ev.Kind)
	}
	return eff, nil
}

// mutate applies an event check accepted to st in place.
func mutate(st *State, ev *Event, eff effect) {
	setRole := func(key [32]byte, r Role) {
		old := st.Members[key]
		m := *old
		m.Role = r
		st.Members[key] = &m
		if old.Role.CanManage() {
			st.managers--
		}
		if r.CanManage() {
			st.managers++
		}
		if old.Role.CanWrite() && !r.CanWrite() {
			st.due(RotateDemoted, ev)
		}
	}
	switch ev.Kind {
	case EventAdd:
		st.Members[[32]byte(eff.added.Identity.SignPub)] = eff.added
		if eff.added.Role.CanManage() {
			st.managers++
		}
		if st.Policy.History == HistoryFromJoin {
			st.due(RotateAdded, ev)
		}
	case EventRemove:
		if st.Members[ev.Target].Role.CanManage() {
			st.managers--
		}
		delete(st.Members, ev.Target)
		st.due(RotateRemoved, ev)
	case EventSetRole:
		setRole(ev.Target, ev.Role)
	case EventAddManager:
		setRole(ev.Target, RoleManage)
	case EventTransferManager:
		setRole(ev.Target, RoleManage)
		setRole(ev.Author, RoleWrite)
	case EventSetPolicy:
		st.Policy = ev.Policy
	case EventSetHosts:
		st.Hosts = slices.Clone(ev.Hosts)
	case EventRotate:
		st.Epoch = ev.Epoch
		st.WPub = slices.Clone(ev.WPub[:])
		st.RotatedAt = ev.TimeValue()
		st.RotationDue, st.DueBy, st.DueAt = RotateNotDue, [32]byte{}, 0
	}
	st.Head = ev.ID()
	st.Height = ev.Seq
	st.Time = ev.Time
}

// due records a reason to rotate, keeping the first one.
func (st *State) due(r RotationReason, ev *Event) {
	if st.RotationDue == RotateNotDue {
		st.RotationDue, st.DueBy, st.DueAt = r, ev.Author, ev.Time
	}
}
