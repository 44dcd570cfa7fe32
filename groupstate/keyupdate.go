package groupstate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/meshnode/meshnode/keymgmt"
)

// Key update limits.
const (
	// KeyUpdateVersion is the only key update part version.
	KeyUpdateVersion = 1
	// MaxKeyUpdateParts bounds the parts of one rotation (65,536
	// post-quantum members need about 1,400).
	MaxKeyUpdateParts = 4096
	// maxWrappedSize bounds one wrapped copy (a post-quantum writer's is
	// 1,234 bytes).
	maxWrappedSize = 4096
)

// DefaultKeyUpdatePartSize is the largest key update part that fits a
// KindKeyUpdate payload body whatever the author's nick and parents: parts
// of this size each fit one 64 KiB envelope.
var DefaultKeyUpdatePartSize = MaxBodyLen(MaxNameLen, MaxParents)

// KeyUpdate is one part of a rotation's key update (ARCHITECTURE §7). A
// rotation to epoch n+1 is posted in epoch n's mailbox as one or more
// KindKeyUpdate payloads, one part each. Every part carries the signed
// rotate event — group ID, new epoch (the old one is the one before),
// new WPub, author, and through its ID the state head after the rotation —
// and a slice of the (slot, wrapped secrets) list, so each part opens on
// its own: a member needs only the part with its slot, plus the events
// that precede the rotate in the chain.
type KeyUpdate struct {
	// Rotate is the rotate event; its ID is the state head after rotation.
	Rotate *Event
	// Part is this part's index, Parts the number of parts.
	Part, Parts int
	// Entries are this part's wrapped copies, in canonical order (direct
	// mode, version 1).
	Entries []keymgmt.WrappedSecrets
	// Tree is this part of a key tree rotation (version 2; nil in direct
	// mode).
	Tree *TreeUpdate
}

// Mode returns how the rotation distributes its secrets.
func (ku *KeyUpdate) Mode() KeyUpdateMode {
	if ku.Tree == nil {
		return ModeDirect
	}
	return ku.Tree.Mode
}

// GroupID returns the group of the rotation.
func (ku *KeyUpdate) GroupID() GroupID { return ku.Rotate.GroupID }

// NewEpoch returns the epoch the rotation starts.
func (ku *KeyUpdate) NewEpoch() uint64 { return ku.Rotate.Epoch }

// OldEpoch returns the epoch whose mailbox carries the key update.
func (ku *KeyUpdate) OldEpoch() uint64 { return ku.Rotate.Epoch - 1 }

// Head returns the state head after the rotation (the rotate event's ID).
func (ku *KeyUpdate) Head() EventID { return ku.Rotate.ID() }

// rotationScope names the slots of a rotation: group ID ‖ new epoch.
func rotationScope(g GroupID, epoch uint64) []byte {
	return binary.BigEndian.AppendUint64(slices.Clone(g[:]), epoch)
}

// rotationInfo is the HPKE info of a rotation's wrapped copies (keymgmt
// appends the recipient's key): group ID ‖ new epoch ‖ state head, fixed
// lengths.
func rotationInfo(g GroupID, epoch uint64, head EventID) []byte {
	return append(rotationScope(g, epoch), head[:]...)
}

// Key update part encoding, version 1 (integers big-endian):
//
//	1   version (0x01)
//	2   part index (0 .. count-1)
//	2   part count (1 .. MaxKeyUpdateParts)
//	2   rotate event length E, then E bytes of the event
//	4   entry count N (>= 1), then N × (8 slot ‖ 2 length L ‖ L sealed),
//	    strictly ascending by (slot, sealed)
const keyUpdateHeader = 1 + 2 + 2 + 2 + 4

func keyUpdateEntrySize(w keymgmt.WrappedSecrets) int { return keymgmt.SlotSize + 2 + len(w.Sealed) }

// Rotation is what a manager's rotation produces: the rotate event (already
// added to the chain), the new epoch's secrets (for Group.AddEpoch) and the
// key update parts to post in the old epoch's mailbox.
type Rotation struct {
	Event   *Event
	Secrets *keymgmt.EpochSecrets
	Parts   []*KeyUpdate
	// Keys are what the rotating manager records (Group.EnterRotation);
	// set by RotateTree.
	Keys *RotatedKeys
}

// Rotate starts a new epoch: it draws fresh secrets, signs a rotate event
// extending the head as manager, wraps the secrets for every member of the
// resulting state (readers without W) and splits the list into parts of at
// most maxPart bytes (0: DefaultKeyUpdatePartSize). The event is added to
// the chain only when everything else succeeded.
func (c *Chain) Rotate(manager Signer, now time.Time, maxPart int) (*Rotation, error) {
	s, err := keymgmt.NewEpochSecrets()
	if err != nil {
		return nil, err
	}
	ev := &Event{
		GroupID: c.group,
		Parent:  c.state.Head,
		Seq:     c.state.Height + 1,
		Time:    now.UnixMilli(),
		Kind:    EventRotate,
		Epoch:   c.state.Epoch + 1,
		WPub:    [32]byte(s.WPub),
	}
	if err := SignEvent(ev, manager); err != nil {
		return nil, err
	}
	ns, err := applyVerified(c.state, ev)
	if err != nil {
		return nil, err
	}
	parts, err := SealKeyUpdate(ns, ev, s, maxPart)
	if err != nil {
		return nil, err
	}
	if err := c.Add(ev); err != nil {
		return nil, err
	}
	return &Rotation{Event: ev, Secrets: s, Parts: parts}, nil
}

// SealKeyUpdate wraps s for every member of st, the state right after the
// rotate event, and splits the list into parts of at most maxPart encoded
// bytes (0: DefaultKeyUpdatePartSize). Slots are
// keymgmt.RecipientSlot(group ID ‖ new epoch, member key) and the HPKE info
// binds group ID ‖ new epoch ‖ state head ‖ member key; members with the
// read role get R and WPub only. Removed members are not in st, so they
// get nothing.
func SealKeyUpdate(st *State, rotate *Event, s *keymgmt.EpochSecrets, maxPart int) ([]*KeyUpdate, error) {
	if maxPart == 0 {
		maxPart = DefaultKeyUpdatePartSize
	}
	switch {
	case st == nil || rotate == nil || s == nil:
		return nil, fmt.Errorf("%w: missing state, rotate event or secrets", ErrKeyUpdateInvalid)
	case rotate.Kind != EventRotate:
		return nil, fmt.Errorf("%w: a key update carries a rotate event, not %s", ErrKeyUpdateInvalid, rotate.Kind)
	case st.Head != rotate.ID():
		return nil, fmt.Errorf("%w: the state is not the one right after the rotate event", ErrKeyUpdateInvalid)
	case !bytes.Equal(s.WPub, rotate.WPub[:]) || s.Write == nil:
		return nil, fmt.Errorf("%w: the secrets are not those of the rotate event's write key", ErrKeyUpdateInvalid)
	}
	evb := rotate.marshal()
	members := st.SortedMembers()
	rs := make([]keymgmt.RotationRecipient, len(members))
	for i, m := range members {
		rs[i] = keymgmt.RotationRecipient{Identity: &m.Identity, ReadOnly: !m.Role.CanWrite()}
	}
	wrapped, err := keymgmt.WrapEpochSecrets(s, rs, rotationScope(st.GroupID, rotate.Epoch), rotationInfo(st.GroupID, rotate.Epoch, st.Head))
	if err != nil {
		return nil, err
	}
	var parts []*KeyUpdate
	size := maxPart // forces a first part
	for _, w := range wrapped {
		n := keyUpdateEntrySize(w)
		if keyUpdateHeader+len(evb)+n > maxPart {
			return nil, fmt.Errorf("%w: parts of %d bytes cannot hold a %d-byte wrapped copy", ErrKeyUpdateInvalid, maxPart, n)
		}
		if size+n > maxPart {
			parts = append(parts, &KeyUpdate{Rotate: rotate.Clone()})
			size = keyUpdateHeader + len(evb)
		}
		p := parts[len(parts)-1]
		p.Entries = append(p.Entries, w)
		size += n
	}
	if len(parts) > MaxKeyUpdateParts {
		return nil, fmt.Errorf("%w: %d parts, at most %d; use larger parts", ErrKeyUpdateInvalid, len(parts), MaxKeyUpdateParts)
	}
	for i, p := range parts {
		p.Part, p.Parts = i, len(parts)
	}
	return parts, nil
}

// MarshalKeyUpdate encodes a key update part (the body of a KindKeyUpdate
// payload).
func MarshalKeyUpdate(ku *KeyUpdate) ([]byte, error) {
	if err := ku.validate(); err != nil {
		return nil, err
	}
	evb := ku.Rotate.marshal()
	if ku.Tree != nil {
		b := make([]byte, 0, 7+len(evb)+treeUpdateSize(ku.Tree))
		b = append(b, KeyUpdateTreeVersion)
		b = binary.BigEndian.AppendUint16(b, uint16(ku.Part))
		b = binary.BigEndian.AppendUint16(b, uint16(ku.Parts))
		b = binary.BigEndian.AppendUint16(b, uint16(len(evb)))
		b = append(b, evb...)
		return appendTreeUpdate(b, ku.Tree), nil
	}
	n := keyUpdateHeader + len(evb)
	for _, w := range ku.Entries {
		n += keyUpdateEntrySize(w)
	}
	b := make([]byte, 0, n)
	b = append(b, KeyUpdateVersion)
	b = binary.BigEndian.AppendUint16(b, uint16(ku.Part))
	b = binary.BigEndian.AppendUint16(b, uint16(ku.Parts))
	b = binary.BigEndian.AppendUint16(b, uint16(len(evb)))
	b = append(b, evb...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(ku.Entries)))
	for _, w := range ku.Entries {
		b = append(b, w.Slot[:]...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(w.Sealed)))
		b = append(b, w.Sealed...)
	}
	return b, nil
}

func (ku *KeyUpdate) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrKeyUpdateMalformed, fmt.Sprintf(format, args...))
	}
	switch {
	case ku.Rotate == nil || ku.Rotate.Kind != EventRotate:
		return bad("no rotate event")
	case ku.Parts < 1 || ku.Parts > MaxKeyUpdateParts || ku.Part < 0 || ku.Part >= ku.Parts:
		return bad("part %d of %d", ku.Part, ku.Parts)
	case ku.Tree != nil && len(ku.Entries) > 0:
		return bad("both direct copies and a key tree")
	case ku.Tree == nil && len(ku.Entries) == 0:
		return bad("no wrapped secrets")
	}
	if err := ku.Rotate.validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrKeyUpdateMalformed, err)
	}
	if ku.Tree != nil {
		return ku.Tree.validate()
	}
	for i, w := range ku.Entries {
		if len(w.Sealed) == 0 || len(w.Sealed) > maxWrappedSize {
			return bad("entry %d: %d sealed bytes", i, len(w.Sealed))
		}
		if i > 0 && keymgmt.CompareWrapped(ku.Entries[i-1], w) >= 0 {
			return bad("entries are not strictly ascending at %d", i)
		}
	}
	return nil
}

// ParseKeyUpdate decodes a key update part strictly. It does not verify
// the rotate event's signature (Chain.Add does) nor open anything.
func ParseKeyUpdate(b []byte) (*KeyUpdate, error) {
	if len(b) > MaxPayloadSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrKeyUpdateMalformed, len(b), MaxPayloadSize)
	}
	d := newDecoder(b)
	v := d.u8()
	if !d.ok || (v != KeyUpdateVersion && v != KeyUpdateTreeVersion) {
		return nil, fmt.Errorf("%w: version %d, want %d or %d", ErrKeyUpdateMalformed, v, KeyUpdateVersion, KeyUpdateTreeVersion)
	}
	ku := &KeyUpdate{Part: int(d.u16()), Parts: int(d.u16())}
	evb := d.take(int(d.u16()))
	if !d.ok {
		return nil, fmt.Errorf("%w: truncated header", ErrKeyUpdateMalformed)
	}
	ev, err := ParseEvent(evb)
	if err != nil {
		return nil, fmt.Errorf("%w: rotate event: %w", ErrKeyUpdateMalformed, err)
	}
	ku.Rotate = ev
	if v == KeyUpdateTreeVersion {
		if ku.Tree, err = readTreeUpdate(d); err != nil {
			return nil, err
		}
		if !d.done() {
			return nil, fmt.Errorf("%w: %d trailing bytes", ErrKeyUpdateMalformed, d.remaining())
		}
		if err := ku.validate(); err != nil {
			return nil, err
		}
		return ku, nil
	}
	n := d.u32()
	if !d.ok {
		return nil, fmt.Errorf("%w: truncated header", ErrKeyUpdateMalformed)
	}
	if uint64(n) > uint64(d.remaining()/(keymgmt.SlotSize+2+1)) {
		return nil, fmt.Errorf("%w: %d entries do not fit the %d remaining bytes", ErrKeyUpdateMalformed, n, d.remaining())
	}
	ku.Entries = make([]keymgmt.WrappedSecrets, n)
	for i := range ku.Entries {
		copy(ku.Entries[i].Slot[:], d.take(keymgmt.SlotSize))
		ku.Entries[i].Sealed = slices.Clone(d.take(int(d.u16())))
		if !d.ok {
			return nil, fmt.Errorf("%w: entry %d truncated", ErrKeyUpdateMalformed, i)
		}
	}
	if !d.done() {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrKeyUpdateMalformed, d.remaining())
	}
	if err := ku.validate(); err != nil {
		return nil, err
	}
	return ku, nil
}

// OpenKeyUpdate opens this member's copy in a key update part. st must be
// the state right after the rotate event (Chain.StateAt(ku.Head())), so
// the member's role and membership are those the rotation was made for. It
// checks that the copy is bound to the group, the new epoch, the state head
// and this member (the HPKE info), that its WPub is the rotate event's, and
// that a writer got the write secret; a reader's copy is returned without
// W. Errors: keymgmt.ErrNotRecipient (not a member after the rotation —
// removed — or no slot in this part: try the other parts),
// keymgmt.ErrDecrypt, ErrKeyUpdateInvalid.
func OpenKeyUpdate(id *keymgmt.Identity, st *State, ku *KeyUpdate) (*keymgmt.EpochSecrets, error) {
	if id == nil || st == nil || ku == nil || ku.Rotate == nil {
		return nil, fmt.Errorf("%w: missing identity, state or key update", ErrKeyUpdateInvalid)
	}
	head := ku.Head()
	if st.Head != head || st.GroupID != ku.GroupID() {
		return nil, fmt.Errorf("%w: key update to epoch %d (head %s) opened against the state at %s; apply its rotate event first",
			ErrKeyUpdateInvalid, ku.NewEpoch(), head.Short(), st.Head.Short())
	}
	me, ok := st.Member(id.SigningKey())
	if !ok {
		return nil, fmt.Errorf("%w: %s is not a member after the rotation to epoch %d", keymgmt.ErrNotRecipient, id.Fingerprint(), ku.NewEpoch())
	}
	s, err := id.UnwrapEpochSecrets(ku.Entries, rotationScope(st.GroupID, ku.NewEpoch()), rotationInfo(st.GroupID, ku.NewEpoch(), head))
	if err != nil {
		return nil, fmt.Errorf("key update to epoch %d, part %d of %d: %w", ku.NewEpoch(), ku.Part+1, ku.Parts, err)
	}
	if !bytes.Equal(s.WPub, ku.Rotate.WPub[:]) {
		return nil, fmt.Errorf("%w: the wrapped write key is not the rotate event's", ErrKeyUpdateInvalid)
	}
	switch {
	case !me.Role.CanWrite() && s.Write != nil:
		return s.ReadOnly(), nil
	case me.Role.CanWrite() && s.Write == nil:
		return nil, fmt.Errorf("%w: %s has role %s but its copy lacks the write secret", ErrKeyUpdateInvalid, id.Fingerprint(), me.Role)
	}
	return s, nil
}

// AcceptKeyUpdate is a member's whole handling of a direct (version 1) key
// update part, given held, the latest epoch whose secrets it holds
// (Group.Epoch). Its rotate event is added to the chain first (a duplicate
// from another part is fine; another rotation on a head that already has
// one, or an event on a branch, is a *ForkError and the update is not
// followed). Then the part must be for epoch held+1 (older:
// ErrStaleKeyUpdate, a replay; newer: ErrUnknownParent, open the one
// before first), and it is opened with OpenKeyUpdate against the state
// right after the rotate. On success the caller stores the secrets
// (Group.AddEpoch) and moves on to the new epoch's mailbox. Key tree parts
// need the member's path: use AcceptRotation.
func (c *Chain) AcceptKeyUpdate(id *keymgmt.Identity, held uint64, ku *KeyUpdate) (*keymgmt.EpochSecrets, error) {
	if err := c.admitKeyUpdate(held, ku); err != nil {
		return nil, err
	}
	if ku.Tree != nil {
		return nil, fmt.Errorf("%w: a key tree update needs the member's tree path (AcceptRotation)", ErrKeyUpdateInvalid)
	}
	st, err := c.StateAt(ku.Head())
	if err != nil {
		return nil, err
	}
	return OpenKeyUpdate(id, st, ku)
}

// AcceptRotation is a member's whole handling of a key update part of any
// mode, as AcceptKeyUpdate, for the member whose group record is g (its
// epoch and tree path). On success the caller records the result
// (Group.EnterRotation) and moves on to the new epoch's mailbox.
// keymgmt.ErrNotRecipient means the part holds nothing for this member:
// its copy is in another part, or it is not a member after the rotation.
func (c *Chain) AcceptRotation(id *keymgmt.Identity, g *Group, ku *KeyUpdate) (*RotatedKeys, error) {
	if g == nil {
		return nil, fmt.Errorf("%w: no group record", ErrKeyUpdateInvalid)
	}
	if err := c.admitKeyUpdate(g.Epoch, ku); err != nil {
		return nil, err
	}
	if ku.Tree != nil {
		return c.openTree(id, g.Tree, ku)
	}
	st, err := c.StateAt(ku.Head())
	if err != nil {
		return nil, err
	}
	s, err := OpenKeyUpdate(id, st, ku)
	if err != nil {
		return nil, err
	}
	return &RotatedKeys{Epoch: ku.NewEpoch(), Secrets: s, Mode: ModeDirect}, nil
}

// admitKeyUpdate adds a key update's rotate event to the chain and checks
// that it is the next rotation of the main line after held.
func (c *Chain) admitKeyUpdate(held uint64, ku *KeyUpdate) error {
	if ku == nil || ku.Rotate == nil {
		return fmt.Errorf("%w: no key update", ErrKeyUpdateMalformed)
	}
	if ku.GroupID() != c.group {
		return fmt.Errorf("%w: key update of group %s, the chain is group %s", ErrWrongGroup, ku.GroupID().Short(), c.group.Short())
	}
	// The rotate event goes into the chain first, even for a stale update:
	// another rotation to an epoch this member already holds is exactly
	// how a manager that showed two members different keys is caught.
	head := ku.Head()
	addErr := c.Add(ku.Rotate)
	if isFork(addErr) {
		return addErr
	}
	switch ne := ku.NewEpoch(); {
	case ne <= held:
		return fmt.Errorf("%w: rotation to epoch %d, this member already holds epoch %d", ErrStaleKeyUpdate, ne, held)
	case ne > held+1:
		return fmt.Errorf("%w: rotation to epoch %d, open the rotation to epoch %d first", ErrUnknownParent, ne, held+1)
	}
	if addErr != nil && !errors.Is(addErr, ErrReplay) {
		return addErr
	}
	if e := c.entries[head]; !e.onMain {
		fe, err := c.branchEvidence(head)
		if err != nil {
			return err
		}
		return &ForkError{Evidence: fe, err: ErrFork}
	}
	return nil
}
