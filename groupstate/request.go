package groupstate

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/meshnode/meshnode/keymgmt"
)

// RequestSigContext is the keymgmt signature context of manager requests.
const RequestSigContext = "meshnode/v1/manager-request"

// Manager request versions. Version 2 added the transfer-manager
// operation and nothing else: every other operation is still encoded as
// version 1 (each request has exactly one encoding), so an always-on
// manager that predates version 2 reads them as before and refuses a
// transfer by its version, not as an unknown operation of a version it
// knows.
const (
	RequestVersion1 = 1
	RequestVersion2 = 2
	// RequestVersion is the newest version this code produces and accepts.
	RequestVersion = RequestVersion2
)

// Request freshness. Replays inside a group are caught earlier, by the
// payload's per-author sequence number (SeqTracker); the age limit keeps a
// request that surfaces late (a host that held it back) from acting long
// after its author meant it.
const (
	// MaxRequestAge is how old a request may be when the bot applies it.
	MaxRequestAge = 72 * time.Hour
	// MaxRequestSkew is how far in the future a request's time may be.
	MaxRequestSkew = 10 * time.Minute
)

// RequestOp is what a manager asks an always-on manager (the bot) to do.
type RequestOp uint8

const (
	// RequestAdd: add the member of a key package with a role.
	RequestAdd RequestOp = 1
	// RequestRemove: remove a member.
	RequestRemove RequestOp = 2
	// RequestSetRole: change a member's role.
	RequestSetRole RequestOp = 3
	// RequestRotate: rotate now (on demand).
	RequestRotate RequestOp = 4
	// RequestSetPolicy: replace the policy.
	RequestSetPolicy RequestOp = 5
	// RequestSetHosts: replace the hosts.
	RequestSetHosts RequestOp = 6
	// RequestTransferManager (version 2): make the target a manager and
	// step the requester down to write, as one operation — both or
	// neither. The always-on manager authors it as add-manager (then a
	// rotation when the target could not write) and a set-role of the
	// requester: it cannot author a transfer-manager event, which steps
	// its author down.
	RequestTransferManager RequestOp = 7
)

func (op RequestOp) valid() bool { return op >= RequestAdd && op <= RequestTransferManager }

// version is the request version that encodes op.
func (op RequestOp) version() uint8 {
	if op == RequestTransferManager {
		return RequestVersion2
	}
	return RequestVersion1
}

// String names the operation.
func (op RequestOp) String() string {
	switch op {
	case RequestAdd:
		return "add"
	case RequestRemove:
		return "remove"
	case RequestSetRole:
		return "set-role"
	case RequestRotate:
		return "rotate"
	case RequestSetPolicy:
		return "set-policy"
	case RequestSetHosts:
		return "set-hosts"
	case RequestTransferManager:
		return "transfer-manager"
	}
	return fmt.Sprintf("RequestOp(%d)", uint8(op))
}

// Request is a signed management request a member with manage permission
// sends inside the group (the body of a KindRequest payload) to an
// always-on manager, which authors the state event (and, for a rotation,
// the key update) itself. Fields other than the header are used by some
// operations only and must be zero in the others.
type Request struct {
	GroupID GroupID
	Author  [32]byte
	// Time is the author's clock, Unix milliseconds.
	Time int64
	Op   RequestOp
	// KeyPackage (binary), Role and Bot: add.
	KeyPackage []byte
	Bot        bool
	// Role: add, set-role.
	Role Role
	// Target: remove, set-role, transfer-manager (the member to promote).
	Target [32]byte
	// Policy: set-policy.
	Policy Policy
	// Hosts: set-hosts.
	Hosts []string

	Signature [ed25519.SignatureSize]byte
}

// Request encoding (integers big-endian):
//
//	1   version: 0x02 for transfer-manager, 0x01 for every other operation
//	16  group ID
//	32  author
//	8   time, Unix milliseconds
//	1   operation
//	4   body length B, then B bytes:
//	      add: 2+L key package ‖ 1 role ‖ 1 flags (bit 0: bot)
//	      remove: 32 target;  set-role: 32 target ‖ 1 role;  rotate: empty
//	      set-policy: policy;  set-hosts: hosts   (as in state events)
//	      transfer-manager (version 2): 32 target
//	64  signature (keymgmt layout, RequestSigContext) over all preceding bytes
//
// The signature covers the version byte, so a transfer cannot be passed
// off under another version.
const requestFixed = 1 + 16 + 32 + 8 + 1 + 4 + ed25519.SignatureSize

// event returns the state event template the request asks for (no
// header; nil for a rotation, which needs fresh secrets). For a transfer
// it is the first of its two events, the target's promotion
// (TransferEvents has both).
func (r *Request) event() *Event {
	switch r.Op {
	case RequestTransferManager:
		return &Event{Kind: EventAddManager, Target: r.Target}
	case RequestAdd:
		return &Event{Kind: EventAdd, KeyPackage: slices.Clone(r.KeyPackage), Role: r.Role, Bot: r.Bot}
	case RequestRemove:
		return &Event{Kind: EventRemove, Target: r.Target}
	case RequestSetRole:
		return &Event{Kind: EventSetRole, Target: r.Target, Role: r.Role}
	case RequestSetPolicy:
		return &Event{Kind: EventSetPolicy, Policy: r.Policy}
	case RequestSetHosts:
		return &Event{Kind: EventSetHosts, Hosts: slices.Clone(r.Hosts)}
	}
	return nil
}

// Event returns the unsigned state event the bot appends for the request
// (Chain.Append fills the header and signs it as the bot). For
// RequestRotate it returns nil: call Chain.Rotate; for
// RequestTransferManager nil too: it takes two events (TransferEvents).
func (r *Request) Event() *Event {
	if r.Op == RequestTransferManager {
		return nil
	}
	return r.event()
}

// TransferEvents returns the two unsigned events the bot appends, in this
// order, for a RequestTransferManager: add-manager of the target, then
// the requester's step down to write (set-role). When the target could
// not write before, the bot rotates between the two, while it still
// holds the state the promotion made (AuthorizeRequest checked the pair).
// Nil for any other operation.
func (r *Request) TransferEvents() (promote, stepDown *Event) {
	if r.Op != RequestTransferManager {
		return nil, nil
	}
	return &Event{Kind: EventAddManager, Target: r.Target},
		&Event{Kind: EventSetRole, Target: r.Author, Role: RoleWrite}
}

// validate checks the encoding rules except the signature.
func (r *Request) validate() error {
	if !r.Op.valid() {
		return fmt.Errorf("%w: unknown operation %d", ErrRequestMalformed, uint8(r.Op))
	}
	if r.Time < 0 || r.Author == [32]byte{} {
		return fmt.Errorf("%w: no author or a negative time", ErrRequestMalformed)
	}
	// The template event carries exactly the fields the operation uses; a
	// request whose fields differ from its template's carries a field its
	// operation does not use.
	tmpl := r.event()
	if tmpl == nil {
		tmpl = &Event{}
	}
	back := Request{GroupID: r.GroupID, Author: r.Author, Time: r.Time, Op: r.Op, Signature: r.Signature,
		KeyPackage: tmpl.KeyPackage, Bot: tmpl.Bot, Role: tmpl.Role, Target: tmpl.Target, Policy: tmpl.Policy, Hosts: tmpl.Hosts}
	if !r.equal(&back) {
		return fmt.Errorf("%w: %s request carries a field it does not use", ErrRequestMalformed, r.Op)
	}
	if r.Op == RequestRotate {
		return nil
	}
	// Validate the fields with the event rules, on a stand-in header.
	tmpl.GroupID, tmpl.Parent, tmpl.Seq, tmpl.Time, tmpl.Author = r.GroupID, EventID{1}, 2, r.Time, r.Author
	if err := tmpl.validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrRequestMalformed, err)
	}
	return nil
}

func (r *Request) equal(o *Request) bool {
	return r.GroupID == o.GroupID && r.Author == o.Author && r.Time == o.Time && r.Op == o.Op &&
		slices.Equal(r.KeyPackage, o.KeyPackage) && r.Bot == o.Bot && r.Role == o.Role &&
		r.Target == o.Target && r.Policy == o.Policy && slices.Equal(r.Hosts, o.Hosts) &&
		(r.Hosts == nil) == (o.Hosts == nil) && (r.KeyPackage == nil) == (o.KeyPackage == nil)
}

func (r *Request) appendSigned(b []byte) []byte {
	var body []byte
	switch r.Op {
	case RequestAdd:
		body = binary.BigEndian.AppendUint16(body, uint16(len(r.KeyPackage)))
		body = append(body, r.KeyPackage...)
		body = append(body, byte(r.Role), boolFlag(r.Bot))
	case RequestRemove:
		body = append(body, r.Target[:]...)
	case RequestSetRole:
		body = append(body, r.Target[:]...)
		body = append(body, byte(r.Role))
	case RequestSetPolicy:
		body = appendPolicy(body, r.Policy)
	case RequestSetHosts:
		body = appendHosts(body, r.Hosts)
	case RequestTransferManager:
		body = append(body, r.Target[:]...)
	}
	b = append(b, r.Op.version())
	b = append(b, r.GroupID[:]...)
	b = append(b, r.Author[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Time))
	b = append(b, byte(r.Op))
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

// SignRequest sets r.Author to the signer's key and signs r.
func SignRequest(r *Request, s Signer) error {
	pub := s.SigningKey()
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: author key is %d bytes", ErrRequestMalformed, len(pub))
	}
	copy(r.Author[:], pub)
	if err := r.validate(); err != nil {
		return err
	}
	copy(r.Signature[:], s.Sign(RequestSigContext, r.appendSigned(nil)))
	return nil
}

// MarshalRequest encodes a request (the body of a KindRequest payload).
func MarshalRequest(r *Request) ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	return append(r.appendSigned(nil), r.Signature[:]...), nil
}

// ParseRequest decodes a request strictly; AuthorizeRequest verifies it.
func ParseRequest(b []byte) (*Request, error) {
	if len(b) < requestFixed || len(b) > MaxEventSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrRequestMalformed, len(b))
	}
	d := newDecoder(b)
	v := d.u8()
	if v != RequestVersion1 && v != RequestVersion2 {
		return nil, fmt.Errorf("%w: version %d, want %d or %d", ErrRequestMalformed, v, RequestVersion1, RequestVersion2)
	}
	r := &Request{}
	copy(r.GroupID[:], d.take(16))
	copy(r.Author[:], d.take(32))
	r.Time = int64(d.u64())
	r.Op = RequestOp(d.u8())
	if r.Op.valid() && v != r.Op.version() {
		// One encoding per request: an operation of version 1 under
		// version 2 (or a transfer under version 1) is not one.
		return nil, fmt.Errorf("%w: a %s request under version %d, it is encoded as version %d", ErrRequestMalformed, r.Op, v, r.Op.version())
	}
	n := d.u32()
	if !d.ok || uint64(n) != uint64(d.remaining()-ed25519.SignatureSize) {
		return nil, fmt.Errorf("%w: lengths do not add up to the %d-byte encoding", ErrRequestMalformed, len(b))
	}
	body := newDecoder(d.take(int(n)))
	var err error
	switch r.Op {
	case RequestAdd:
		r.KeyPackage = slices.Clone(body.take(int(body.u16())))
		r.Role = Role(body.u8())
		f := body.u8()
		if f&^flagBot != 0 {
			return nil, fmt.Errorf("%w: unknown flags %#x", ErrRequestMalformed, f)
		}
		r.Bot = f&flagBot != 0
	case RequestRemove, RequestTransferManager:
		copy(r.Target[:], body.take(32))
	case RequestSetRole:
		copy(r.Target[:], body.take(32))
		r.Role = Role(body.u8())
	case RequestSetPolicy:
		if r.Policy, err = readPolicy(body); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrRequestMalformed, err)
		}
	case RequestSetHosts:
		if r.Hosts, err = readHosts(body); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrRequestMalformed, err)
		}
	}
	if !body.done() {
		return nil, fmt.Errorf("%w: %s body truncated or with trailing bytes", ErrRequestMalformed, r.Op)
	}
	copy(r.Signature[:], d.take(ed25519.SignatureSize))
	if !d.done() {
		return nil, fmt.Errorf("%w: trailing bytes", ErrRequestMalformed)
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// AuthorizeRequest decides whether an always-on manager applies r to the
// state st (its chain's head state) at now. The request must be well formed
// and signed by its author (ErrRequestMalformed, ErrBadSignature), for
// this group (ErrWrongGroup), recent (ErrRequestExpired), and its author a
// member with the manage role in st, or any member asking for its own
// removal (ErrUnauthorized) — the same rule the resulting event will meet,
// but checked against the requester instead of the bot. Finally the
// operation must apply to st as if the requester authored it now
// (ErrInvalidEvent, ErrLastManager; an add's key package must verify and
// be unexpired now); for a transfer, both of its events, in order.
func AuthorizeRequest(st *State, r *Request, now time.Time) error {
	if st == nil || r == nil {
		return fmt.Errorf("%w: no state or request", ErrRequestMalformed)
	}
	if err := r.validate(); err != nil {
		return err
	}
	if err := keymgmt.VerifySignature(ed25519.PublicKey(r.Author[:]), RequestSigContext, r.appendSigned(nil), r.Signature[:]); err != nil {
		return fmt.Errorf("%w: %s request by %s", ErrBadSignature, r.Op, keymgmt.Fingerprint(r.Author[:]))
	}
	if r.GroupID != st.GroupID {
		return fmt.Errorf("%w: request for group %s, the state is group %s", ErrWrongGroup, r.GroupID.Short(), st.GroupID.Short())
	}
	at := time.UnixMilli(r.Time)
	if now.Sub(at) > MaxRequestAge || at.Sub(now) > MaxRequestSkew {
		return fmt.Errorf("%w: %s request made at %s, now is %s (accepted: %v back, %v ahead)",
			ErrRequestExpired, r.Op, at.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), MaxRequestAge, MaxRequestSkew)
	}
	author, ok := st.Members[r.Author]
	leaving := r.Op == RequestRemove && r.Target == r.Author
	switch {
	case !ok:
		return fmt.Errorf("%w: %s request by %s, who is not a member", ErrUnauthorized, r.Op, keymgmt.Fingerprint(r.Author[:]))
	case !author.Role.CanManage() && !leaving:
		return fmt.Errorf("%w: %s request by %s, who is not a manager", ErrUnauthorized, r.Op, keymgmt.Fingerprint(r.Author[:]))
	}
	if r.Op == RequestRotate { // a manager may always ask
		return nil
	}
	if r.Op == RequestTransferManager {
		// Both events, the second in the state the first makes: the
		// promotion must apply, and so must the step down after it.
		promote, stepDown := r.TransferEvents()
		next, err := checkAs(st, promote, r.Author, now)
		if err != nil {
			return fmt.Errorf("transfer-manager request: %w", err)
		}
		if _, err := checkAs(next, stepDown, r.Author, now); err != nil {
			return fmt.Errorf("transfer-manager request: step down: %w", err)
		}
		return nil
	}
	_, err := checkAs(st, r.event(), r.Author, now)
	return err
}

// checkAs checks an event template as if author appended it to st at now,
// and returns the state after it (st is not modified).
func checkAs(st *State, ev *Event, author [32]byte, now time.Time) (*State, error) {
	ev.GroupID, ev.Parent, ev.Seq, ev.Time, ev.Author = st.GroupID, st.Head, st.Height+1, now.UnixMilli(), author
	eff, err := check(st, ev)
	if err != nil {
		return nil, err
	}
	ns := st.Clone()
	mutate(ns, ev, eff)
	return ns, nil
}
