package groupstate

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/meshnode/meshnode/keymgmt"
)

// Labels of the state chain. They are part of the protocol.
const (
	// EventSigContext is the keymgmt signature context of state events.
	EventSigContext = "meshnode/v1/state-event"
	// EventIDLabel prefixes an event's encoding when hashing it into its
	// ID, so an event ID never equals any other hash of the same bytes.
	EventIDLabel = "meshnode/v1/state-event-id"
)

// EventVersion is the version of every state event without a seen set;
// EventVersionSeen is the version of a remove or set-role that carries one
// (Event.Seen). Version 2 differs from version 1 only there: the body of a
// remove or set-role ends with the seen set instead of the optional
// sequence limit. Every other event is still encoded as version 1, so a
// version-1 reader reads all of them but these. Both are accepted.
const (
	EventVersion     = 1
	EventVersionSeen = 2
)

// MaxEventSize bounds a state event's encoding. The largest (a create with
// 16 hosts of 256 bytes and a post-quantum identity) is about 5.6 KB.
const MaxEventSize = 8 << 10

// EventID is SHA-256(EventIDLabel ‖ encoding) of a state event. The ID of
// the latest event is the group's state head.
type EventID [32]byte

// String returns the ID in lower-case hex.
func (id EventID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 8 hex digits, for logs.
func (id EventID) Short() string { return hex.EncodeToString(id[:4]) }

// IsZero reports the zero ID (no head; the parent of a create).
func (id EventID) IsZero() bool { return id == EventID{} }

// EventKind says what a state event does.
type EventKind uint8

const (
	// EventCreate starts a chain: the group's name, policy, hosts, epoch-0
	// write key and its creator (who becomes its first manager).
	EventCreate EventKind = 1
	// EventAdd adds a member from its key package, with a role.
	EventAdd EventKind = 2
	// EventRemove removes a member (a manager removes anyone; any member
	// may remove itself, that is leave).
	EventRemove EventKind = 3
	// EventSetRole changes a member's role.
	EventSetRole EventKind = 4
	// EventSetPolicy replaces the rotation and history policy.
	EventSetPolicy EventKind = 5
	// EventSetHosts replaces the bootstrap hosts.
	EventSetHosts EventKind = 6
	// EventRotate starts a new epoch: its number and write public key.
	// Secrets never appear in the chain; they travel in key updates.
	EventRotate EventKind = 7
	// EventAddManager gives an existing member the manage role.
	EventAddManager EventKind = 8
	// EventTransferManager gives an existing member the manage role and
	// steps the author down to write.
	EventTransferManager EventKind = 9
)

func (k EventKind) valid() bool { return k >= EventCreate && k <= EventTransferManager }

// String names the kind.
func (k EventKind) String() string {
	switch k {
	case EventCreate:
		return "create"
	case EventAdd:
		return "add"
	case EventRemove:
		return "remove"
	case EventSetRole:
		return "set-role"
	case EventSetPolicy:
		return "set-policy"
	case EventSetHosts:
		return "set-hosts"
	case EventRotate:
		return "rotate"
	case EventAddManager:
		return "add-manager"
	case EventTransferManager:
		return "transfer-manager"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one signed state event. The header fields are common; the
// others are used by some kinds only (see each field) and must be zero in
// the rest, so that the value and its encoding are one to one.
type Event struct {
	GroupID GroupID
	// Parent is the head this event extends (zero for a create).
	Parent EventID
	// Seq is the event's height: 1 for the create, parent's + 1 after.
	Seq uint64
	// Time is the author's clock, in Unix milliseconds (>= 0).
	Time int64
	// Author is the author's Ed25519 identity key.
	Author [32]byte
	Kind   EventKind

	// Name: create.
	Name string
	// Policy: create, set-policy.
	Policy Policy
	// Hosts: create, set-hosts.
	Hosts []string
	// Epoch and WPub: rotate (the new epoch and its write key); create
	// (WPub of epoch 0; Epoch stays 0).
	Epoch uint64
	WPub  [32]byte
	// Creator, Nick: create (the creator's public identity, whose signing
	// key is the author, and its nickname). Bot: create and add.
	Creator *keymgmt.PublicIdentity
	Nick    string
	Bot     bool
	// KeyPackage: add (the newcomer's key package, binary encoding, which
	// it signed; checked against the event's time).
	KeyPackage []byte
	// Target: remove, set-role, add-manager, transfer-manager.
	Target [32]byte
	// Seen: remove, and set-role when it takes the write role away
	// (version 2). The target's sequence numbers (of the membership the
	// event ends) that the author had seen when it made the event; the
	// target's payloads naming a head from before the event are admitted
	// only if their number is in it (Admits), wherever the role they need
	// comes from before it. Without it a removed or demoted member could
	// go on posting to the old epoch's mailbox (whose write key it kept)
	// under a head from before the event, with any number it had not used
	// yet. A manager sets it from its sequence tracker; a leaver to every
	// number up to the payload that carries its removal. A message of the
	// target in flight when the manager acted is refused by everyone who
	// learns of the removal first, and flagged by those who showed it
	// before (the node reports both).
	Seen *SeenSet
	// SeqLimit: the version-1 form of Seen, still read: payloads with a
	// sequence number at or above it are refused (every number below it is
	// admitted). 0: no limit (removals made before either existed).
	SeqLimit uint64
	// Role: add, set-role.
	Role Role

	// Signature by the author's identity key, keymgmt layout, context
	// EventSigContext, over every preceding encoded byte.
	Signature [ed25519.SignatureSize]byte
}

// TimeValue returns Time as a time.Time.
func (ev *Event) TimeValue() time.Time { return time.UnixMilli(ev.Time) }

// Version is the encoding version of the event: EventVersionSeen when it
// carries a seen set, EventVersion otherwise.
func (ev *Event) Version() uint8 {
	if ev.Seen != nil {
		return EventVersionSeen
	}
	return EventVersion
}

// Revokes reports whether ev is a removal, or a demotion that carries a
// seen set or sequence limit: an event after which the target's payloads
// naming an earlier head are admitted only as Admits says.
func (ev *Event) Revokes() bool {
	return ev.Kind == EventRemove || ev.Kind == EventSetRole && (ev.Seen != nil || ev.SeqLimit != 0)
}

// Admits reports whether a payload of ev's target with sequence number
// seq, of the membership ev ended or restricted and naming a head from
// before ev, may still be shown: its number is in ev's seen set (version
// 2), below its sequence limit (version 1), or ev carries neither (a
// removal made before either existed).
func (ev *Event) Admits(seq uint64) bool {
	switch {
	case ev.Seen != nil:
		return ev.Seen.Contains(seq)
	case ev.SeqLimit != 0:
		return seq < ev.SeqLimit
	}
	return true
}

// AuthorKey returns the author's key.
func (ev *Event) AuthorKey() ed25519.PublicKey { return ed25519.PublicKey(ev.Author[:]) }

// Event encoding, version 1 or 2 (integers big-endian):
//
//	0    1   version (0x01; 0x02 for a remove or set-role with a seen set)
//	1    16  group ID
//	17   32  parent event ID (zero for create)
//	49   8   seq (1 for create)
//	57   8   time, Unix milliseconds
//	65   32  author Ed25519 key
//	97   1   kind
//	98   4   body length B, then B bytes of body (per kind, below)
//	     64  signature (keymgmt layout, EventSigContext) over all preceding bytes
//
// Bodies:
//
//	create:   1+N name ‖ policy ‖ hosts ‖ 32 WPub_0 ‖ 2+L creator public
//	          identity ‖ 1+N nick ‖ 1 flags (bit 0: bot)
//	add:      2+L key package ‖ 1 role ‖ 1 flags (bit 0: bot)
//	remove:   32 target key ‖ v1: [8 sequence limit, only when non-zero]
//	                         v2: seen set
//	add-manager, transfer-manager: 32 target key
//	set-role: 32 target key ‖ 1 role ‖ v1: [8 sequence limit, only when
//	          non-zero]; v2: seen set
//	seen set = 8 upto ‖ 2 N ‖ N × (8 first ‖ 8 last)   (SeenSet)
//	set-policy: policy
//	set-hosts:  hosts
//	rotate:   8 new epoch ‖ 32 WPub
//
//	policy = 1 history ‖ 8 rotation period, seconds ‖ 8 rotate-after messages
//	hosts  = 1 count ‖ per host 2+len multiaddr string
const (
	eventHeader = 1 + 16 + 32 + 8 + 8 + 32 + 1 + 4
	eventFixed  = eventHeader + ed25519.SignatureSize
	flagBot     = 0x01
)

// Field masks: which optional fields a kind uses.
const (
	useName = 1 << iota
	usePolicy
	useHosts
	useEpoch
	useWPub
	useCreator
	useBot
	useKeyPackage
	useTarget
	useRole
	useSeqLimit
	useSeen
)

func (k EventKind) uses() int {
	switch k {
	case EventCreate:
		return useName | usePolicy | useHosts | useWPub | useCreator | useBot
	case EventAdd:
		return useKeyPackage | useRole | useBot
	case EventRemove:
		return useTarget | useSeqLimit | useSeen
	case EventAddManager, EventTransferManager:
		return useTarget
	case EventSetRole:
		return useTarget | useRole | useSeqLimit | useSeen
	case EventSetPolicy:
		return usePolicy
	case EventSetHosts:
		return useHosts
	case EventRotate:
		return useEpoch | useWPub
	}
	return 0
}

// validate checks every encoding rule except the signature.
func (ev *Event) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s event: %s", ErrEventMalformed, ev.Kind, fmt.Sprintf(format, args...))
	}
	if !ev.Kind.valid() {
		return fmt.Errorf("%w: unknown event kind %d", ErrEventMalformed, uint8(ev.Kind))
	}
	if ev.Time < 0 {
		return bad("negative time %d", ev.Time)
	}
	if ev.Author == [32]byte{} {
		return bad("no author")
	}
	create := ev.Kind == EventCreate
	if create != ev.Parent.IsZero() || create != (ev.Seq == 1) || ev.Seq == 0 {
		return bad("parent %s with seq %d (only a create has no parent, and it alone has seq 1)", ev.Parent.Short(), ev.Seq)
	}
	u := ev.Kind.uses()
	unused := []struct {
		flag int
		zero bool
		name string
	}{
		{useName, ev.Name == "", "name"},
		{usePolicy, ev.Policy == Policy{}, "policy"},
		{useHosts, ev.Hosts == nil, "hosts"},
		{useEpoch, ev.Epoch == 0, "epoch"},
		{useWPub, ev.WPub == [32]byte{}, "write key"},
		{useCreator, ev.Creator == nil && ev.Nick == "", "creator"},
		{useBot, !ev.Bot, "bot flag"},
		{useKeyPackage, ev.KeyPackage == nil, "key package"},
		{useTarget, ev.Target == [32]byte{}, "target"},
		{useRole, ev.Role == 0, "role"},
		{useSeqLimit, ev.SeqLimit == 0, "sequence limit"},
		{useSeen, ev.Seen == nil, "seen set"},
	}
	for _, f := range unused {
		if u&f.flag == 0 && !f.zero {
			return bad("carries a %s, which this kind does not use", f.name)
		}
	}
	if u&usePolicy != 0 {
		if err := ev.Policy.validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrEventMalformed, err)
		}
	}
	if u&useHosts != 0 {
		if err := checkHosts(ev.Hosts); err != nil {
			return fmt.Errorf("%w: %w", ErrEventMalformed, err)
		}
	}
	if u&useWPub != 0 && ev.WPub == [32]byte{} {
		return bad("no write key")
	}
	if u&useTarget != 0 && ev.Target == [32]byte{} {
		return bad("no target")
	}
	if u&useRole != 0 && !ev.Role.valid() {
		return bad("role %d", ev.Role)
	}
	if ev.Seen != nil {
		if ev.SeqLimit != 0 {
			return bad("both a sequence limit and a seen set")
		}
		if err := ev.Seen.validate(); err != nil {
			return fmt.Errorf("%w (%s event)", err, ev.Kind)
		}
	}
	switch ev.Kind {
	case EventCreate:
		if err := checkText("group name", ev.Name, false, MaxNameLen); err != nil {
			return fmt.Errorf("%w: %w", ErrEventMalformed, err)
		}
		if err := checkText("nickname", ev.Nick, true, MaxNameLen); err != nil {
			return fmt.Errorf("%w: %w", ErrEventMalformed, err)
		}
		if ev.Creator == nil {
			return bad("no creator identity")
		}
		if err := ev.Creator.Validate(); err != nil {
			return fmt.Errorf("%w: creator identity: %w", ErrEventMalformed, err)
		}
		if !ev.Creator.SignPub.Equal(ev.AuthorKey()) {
			return bad("creator identity is not the author's")
		}
	case EventAdd:
		if len(ev.KeyPackage) == 0 || len(ev.KeyPackage) > 0xffff {
			return bad("key package of %d bytes", len(ev.KeyPackage))
		}
	case EventRotate:
		if ev.Epoch == 0 {
			return bad("rotation to epoch 0")
		}
	}
	if n := ev.encodedLen(); n > MaxEventSize {
		return bad("%d bytes, at most %d", n, MaxEventSize)
	}
	return nil
}

func (ev *Event) encodedLen() int { return eventFixed + len(ev.appendBody(nil)) }

// appendBody appends the kind's body.
func (ev *Event) appendBody(b []byte) []byte {
	switch ev.Kind {
	case EventCreate:
		b = append(b, byte(len(ev.Name)))
		b = append(b, ev.Name...)
		b = appendPolicy(b, ev.Policy)
		b = appendHosts(b, ev.Hosts)
		b = append(b, ev.WPub[:]...)
		var idb []byte
		if ev.Creator != nil {
			idb = ev.Creator.Marshal()
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(idb)))
		b = append(b, idb...)
		b = append(b, byte(len(ev.Nick)))
		b = append(b, ev.Nick...)
		b = append(b, boolFlag(ev.Bot))
	case EventAdd:
		b = binary.BigEndian.AppendUint16(b, uint16(len(ev.KeyPackage)))
		b = append(b, ev.KeyPackage...)
		b = append(b, byte(ev.Role), boolFlag(ev.Bot))
	case EventRemove:
		b = append(b, ev.Target[:]...)
		b = ev.appendRevocation(b)
	case EventAddManager, EventTransferManager:
		b = append(b, ev.Target[:]...)
	case EventSetRole:
		b = append(b, ev.Target[:]...)
		b = append(b, byte(ev.Role))
		b = ev.appendRevocation(b)
	case EventSetPolicy:
		b = appendPolicy(b, ev.Policy)
	case EventSetHosts:
		b = appendHosts(b, ev.Hosts)
	case EventRotate:
		b = binary.BigEndian.AppendUint64(b, ev.Epoch)
		b = append(b, ev.WPub[:]...)
	}
	return b
}

// appendRevocation appends the end of a remove or set-role body: the seen
// set (version 2) or the sequence limit when non-zero (version 1).
func (ev *Event) appendRevocation(b []byte) []byte {
	switch {
	case ev.Seen != nil:
		return ev.Seen.appendTo(b)
	case ev.SeqLimit != 0:
		return binary.BigEndian.AppendUint64(b, ev.SeqLimit)
	}
	return b
}

func boolFlag(v bool) byte {
	if v {
		return flagBot
	}
	return 0
}

// appendSigned appends the bytes the signature covers.
func (ev *Event) appendSigned(b []byte) []byte {
	body := ev.appendBody(nil)
	b = append(b, ev.Version())
	b = append(b, ev.GroupID[:]...)
	b = append(b, ev.Parent[:]...)
	b = binary.BigEndian.AppendUint64(b, ev.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(ev.Time))
	b = append(b, ev.Author[:]...)
	b = append(b, byte(ev.Kind))
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

// SignEvent sets ev.Author to the signer's key and signs ev.
func SignEvent(ev *Event, s Signer) error {
	pub := s.SigningKey()
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: author key is %d bytes, want %d", ErrEventMalformed, len(pub), ed25519.PublicKeySize)
	}
	copy(ev.Author[:], pub)
	if err := ev.validate(); err != nil {
		return err
	}
	copy(ev.Signature[:], s.Sign(EventSigContext, ev.appendSigned(nil)))
	return nil
}

// Verify checks ev's encoding rules and its author signature. It does not
// check authorization: that needs the state it extends (Apply).
func (ev *Event) Verify() error {
	if err := ev.validate(); err != nil {
		return err
	}
	if err := keymgmt.VerifySignature(ev.AuthorKey(), EventSigContext, ev.appendSigned(nil), ev.Signature[:]); err != nil {
		return fmt.Errorf("%w: %s event by %s", ErrBadSignature, ev.Kind, keymgmt.Fingerprint(ev.AuthorKey()))
	}
	return nil
}

// MarshalEvent encodes a valid event (it does not check the signature).
func MarshalEvent(ev *Event) ([]byte, error) {
	if err := ev.validate(); err != nil {
		return nil, err
	}
	return ev.marshal(), nil
}

func (ev *Event) marshal() []byte {
	return append(ev.appendSigned(make([]byte, 0, eventFixed+64)), ev.Signature[:]...)
}

// ID returns the event's ID: SHA-256(EventIDLabel ‖ encoding). For an
// event that breaks an encoding rule it is the hash of what would be
// encoded; such an event is never accepted, so the ID is never used.
func (ev *Event) ID() EventID {
	h := sha256.New()
	h.Write([]byte(EventIDLabel))
	h.Write(ev.marshal())
	var id EventID
	h.Sum(id[:0])
	return id
}

// Clone returns a deep copy of ev.
func (ev *Event) Clone() *Event {
	c := *ev
	c.Hosts = slices.Clone(ev.Hosts)
	c.KeyPackage = slices.Clone(ev.KeyPackage)
	if ev.Seen != nil {
		s := SeenSet{Upto: ev.Seen.Upto, Extra: slices.Clone(ev.Seen.Extra)}
		c.Seen = &s
	}
	if ev.Creator != nil {
		c.Creator = &keymgmt.PublicIdentity{
			SignPub: slices.Clone(ev.Creator.SignPub),
			Suite:   ev.Creator.Suite,
			HPKEPub: slices.Clone(ev.Creator.HPKEPub),
		}
	}
	return &c
}

// ParseEvent decodes a state event strictly (exact lengths, no trailing
// bytes, no field the kind does not use, valid names, hosts and policy).
// It does not verify the signature or authorization: Chain.Add and Apply
// do. The result shares no memory with b.
func ParseEvent(b []byte) (*Event, error) {
	if len(b) > MaxEventSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrEventMalformed, len(b), MaxEventSize)
	}
	if len(b) < eventFixed {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the %d-byte minimum", ErrEventMalformed, len(b), eventFixed)
	}
	d := newDecoder(b)
	version := d.u8()
	if version != EventVersion && version != EventVersionSeen {
		return nil, fmt.Errorf("%w: version %d, want %d or %d", ErrEventMalformed, version, EventVersion, EventVersionSeen)
	}
	ev := &Event{}
	copy(ev.GroupID[:], d.take(16))
	copy(ev.Parent[:], d.take(32))
	ev.Seq = d.u64()
	ev.Time = int64(d.u64())
	copy(ev.Author[:], d.take(32))
	ev.Kind = EventKind(d.u8())
	bodyLen := d.u32()
	if !d.ok || uint64(bodyLen) != uint64(d.remaining()-ed25519.SignatureSize) {
		return nil, fmt.Errorf("%w: lengths do not add up to the %d-byte encoding", ErrEventMalformed, len(b))
	}
	if err := ev.parseBody(newDecoder(d.take(int(bodyLen))), version); err != nil {
		return nil, err
	}
	copy(ev.Signature[:], d.take(ed25519.SignatureSize))
	if !d.done() {
		return nil, fmt.Errorf("%w: lengths do not add up to the %d-byte encoding", ErrEventMalformed, len(b))
	}
	if err := ev.validate(); err != nil {
		return nil, err
	}
	return ev, nil
}

func (ev *Event) parseBody(d *decoder, version uint8) error {
	bad := func(what string) error {
		return fmt.Errorf("%w: %s event body: %s", ErrEventMalformed, ev.Kind, what)
	}
	readFlags := func() (bool, error) {
		f := d.u8()
		if f&^flagBot != 0 {
			return false, bad(fmt.Sprintf("unknown flags %#x", f))
		}
		return f&flagBot != 0, nil
	}
	var err error
	switch ev.Kind {
	case EventCreate:
		ev.Name = string(d.take(int(d.u8())))
		if ev.Policy, err = readPolicy(d); err != nil {
			return fmt.Errorf("%w: %w", ErrEventMalformed, err)
		}
		if ev.Hosts, err = readHosts(d); err != nil {
			return fmt.Errorf("%w: %w", ErrEventMalformed, err)
		}
		copy(ev.WPub[:], d.take(32))
		idb := d.take(int(d.u16()))
		if !d.ok {
			return bad("truncated")
		}
		if ev.Creator, err = keymgmt.ParsePublicIdentity(idb); err != nil {
			return fmt.Errorf("%w: creator identity: %w", ErrEventMalformed, err)
		}
		ev.Nick = string(d.take(int(d.u8())))
		if ev.Bot, err = readFlags(); err != nil {
			return err
		}
	case EventAdd:
		ev.KeyPackage = slices.Clone(d.take(int(d.u16())))
		ev.Role = Role(d.u8())
		if ev.Bot, err = readFlags(); err != nil {
			return err
		}
	case EventRemove, EventSetRole:
		copy(ev.Target[:], d.take(32))
		if ev.Kind == EventSetRole {
			ev.Role = Role(d.u8())
		}
		if version == EventVersionSeen {
			s, err := readSeenSet(d)
			if err != nil {
				return err
			}
			ev.Seen = &s
		} else if d.remaining() > 0 {
			// Omitted when zero, so a zero here would be a second
			// encoding of the same event.
			if ev.SeqLimit = d.u64(); ev.SeqLimit == 0 {
				return bad("explicit zero sequence limit")
			}
		}
	case EventAddManager, EventTransferManager:
		copy(ev.Target[:], d.take(32))
	case EventSetPolicy:
		if ev.Policy, err = readPolicy(d); err != nil {
			return fmt.Errorf("%w: %w", ErrEventMalformed, err)
		}
	case EventSetHosts:
		if ev.Hosts, err = readHosts(d); err != nil {
			return fmt.Errorf("%w: %w", ErrEventMalformed, err)
		}
	case EventRotate:
		ev.Epoch = d.u64()
		copy(ev.WPub[:], d.take(32))
	default:
		return fmt.Errorf("%w: unknown event kind %d", ErrEventMalformed, uint8(ev.Kind))
	}
	if version == EventVersionSeen && ev.Seen == nil {
		// Only a seen set makes an event version 2: any other would be a
		// second encoding of the same event.
		return bad("version 2 without a seen set")
	}
	if !d.done() {
		return bad("truncated or trailing bytes")
	}
	return nil
}
