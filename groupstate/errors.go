package groupstate

import "errors"

// Sentinel errors. Callers match them with errors.Is; the wrapped message
// says what exactly was wrong and, where useful, what to do.
var (
	// ErrInvalidName: a group name or nickname breaks the text rules
	// (length, UTF-8, control or direction-override characters).
	ErrInvalidName = errors.New("groupstate: invalid name")
	// ErrInvalidHost: a host multiaddr string is empty, too long, not
	// shaped like a multiaddr, duplicated, or there are too many of them.
	ErrInvalidHost = errors.New("groupstate: invalid host address")
	// ErrNoEpoch: the group holds no secrets for the requested epoch.
	ErrNoEpoch = errors.New("groupstate: no secrets for epoch")
	// ErrGroupMalformed: a stored group encoding is not valid.
	ErrGroupMalformed = errors.New("groupstate: malformed group encoding")

	// ErrInviteMalformed: the invite text is not a complete, valid invite.
	ErrInviteMalformed = errors.New("groupstate: malformed invite")
	// ErrInviteChecksum: the invite's checksum does not match, which
	// means it was truncated or mistyped in transit.
	ErrInviteChecksum = errors.New("groupstate: invite checksum mismatch")
	// ErrInviteVersion: an invite of a format version this node does not
	// speak.
	ErrInviteVersion = errors.New("groupstate: unsupported invite version")

	// ErrPayloadMalformed: the bytes are not a valid payload encoding.
	ErrPayloadMalformed = errors.New("groupstate: malformed payload")
	// ErrDirectMalformed: the body of a direct message that names no
	// recipient (direct.go).
	ErrDirectMalformed = errors.New("groupstate: malformed direct message")
	// ErrUnknownKind: a payload kind this node does not know.
	ErrUnknownKind = errors.New("groupstate: unknown payload kind")
	// ErrNotSigned: the payload carries no author signature (or no author
	// key). Unsigned content is never accepted.
	ErrNotSigned = errors.New("groupstate: payload not signed")
	// ErrAuthorSignature: the author signature does not verify, so the
	// payload was altered or not made by the key it names.
	ErrAuthorSignature = errors.New("groupstate: bad author signature")
	// ErrTooLong: the payload does not fit the largest padding bucket.
	ErrTooLong = errors.New("groupstate: message too long")
	// ErrPadding: the padded plaintext (or ciphertext size) does not follow
	// the padding rules.
	ErrPadding = errors.New("groupstate: bad padding")
	// ErrProfileMalformed: a KindProfile body is not a valid profile.
	ErrProfileMalformed = errors.New("groupstate: malformed profile")
	// ErrRefMalformed: the body of a reply, reaction, edit or delete is
	// not valid.
	ErrRefMalformed = errors.New("groupstate: malformed message reference")
	// ErrRefTarget: a reference to a message that cannot be referenced
	// (a direct, a profile, a control payload).
	ErrRefTarget = errors.New("groupstate: message cannot be referenced")
	// ErrFileMalformed: a file manifest or chunk that is not valid.
	ErrFileMalformed = errors.New("groupstate: malformed file")
	// ErrNotAuthor: an edit or delete of another member's message (a
	// delete by a manager of a managed group excepted).
	ErrNotAuthor = errors.New("groupstate: not the message's author")

	// ErrCannotWrite: the epoch keys lack the write key (read-only member).
	ErrCannotWrite = errors.New("groupstate: read-only keys cannot write")
	// ErrWrongMailbox: the envelope was not posted to this epoch's mailbox.
	ErrWrongMailbox = errors.New("groupstate: envelope is for another mailbox")
	// ErrEnvelopeSignature: the envelope's write signature does not verify.
	ErrEnvelopeSignature = errors.New("groupstate: bad envelope signature")
	// ErrDecrypt: the ciphertext does not open under the epoch read key
	// (tampered ciphertext, header or nonce, or another key).
	ErrDecrypt = errors.New("groupstate: cannot decrypt")
	// ErrWrongGroup: the payload names another group than the one whose
	// mailbox it arrived in (cross-group replay).
	ErrWrongGroup = errors.New("groupstate: payload is for another group")
	// ErrWrongEpoch: the payload names another epoch than the one whose
	// mailbox it arrived in.
	ErrWrongEpoch = errors.New("groupstate: payload is for another epoch")

	// ErrBadSeq: a sequence number of 0 (sequences start at 1).
	ErrBadSeq = errors.New("groupstate: invalid sequence number")
	// ErrSeqTrackerMalformed: a stored sequence tracker encoding is not
	// valid.
	ErrSeqTrackerMalformed = errors.New("groupstate: malformed sequence tracker")
)

// Managed groups: the state chain, key updates, welcomes and requests.
var (
	// ErrEventMalformed: bytes or a value that are not a valid state
	// event (lengths, fields that the kind does not use, bad names).
	ErrEventMalformed = errors.New("groupstate: malformed state event")
	// ErrBadSignature: a state event, welcome, request or fork evidence
	// whose identity signature does not verify under the key it names.
	ErrBadSignature = errors.New("groupstate: bad signature")
	// ErrUnauthorized: the author did not hold the permission in the state
	// the event extends (not a member, removed, not a manager), or a create
	// event anywhere but at the start of the chain.
	ErrUnauthorized = errors.New("groupstate: author not authorized")
	// ErrUnknownParent: the event extends a head this member does not
	// know. The chain keeps it and applies it when the parent arrives.
	ErrUnknownParent = errors.New("groupstate: unknown parent event")
	// ErrReplay: an event the chain already holds (harmless duplicate).
	ErrReplay = errors.New("groupstate: event already known")
	// ErrFork: two different authorized events extend the same head, so a
	// manager equivocated; the error is a *ForkError carrying the evidence.
	ErrFork = errors.New("groupstate: state chain fork")
	// ErrSplit: a member's payload names a state head that is not on this
	// member's chain for that epoch, so the two were shown different
	// states; a *ForkError carries evidence when both events are known.
	ErrSplit = errors.New("groupstate: split state (another member sees another head)")
	// ErrUnknownHead: a payload names a head of the current (or a later)
	// epoch that this member does not know yet; check again after more
	// events arrive.
	ErrUnknownHead = errors.New("groupstate: unknown state head")
	// ErrHeadEpoch: a payload names a head of this member's chain that
	// belongs to another epoch than the payload's.
	ErrHeadEpoch = errors.New("groupstate: state head of another epoch")
	// ErrForeignHead: a payload names, for an epoch this member's chain
	// has closed (it holds all its events), a head the chain never had.
	// Nothing the manager signed shows a split: it is the payload
	// author's fault.
	ErrForeignHead = errors.New("groupstate: state head not on the group's chain")
	// ErrNotMember: a payload whose author was not a member at the state
	// it names.
	ErrNotMember = errors.New("groupstate: author is not a member of the group")
	// ErrNotWriter: a message, direct or profile whose author had only
	// the read role.
	ErrNotWriter = errors.New("groupstate: author may only read in this group")
	// ErrRevoked: a payload of a member removed (or made a reader) since
	// the state it names, whose sequence number the remover had not seen:
	// sent after the removal, or in flight when it was made.
	ErrRevoked = errors.New("groupstate: sent after its author's removal or demotion")
	// ErrEquivocation: two validly signed payloads of one author's
	// membership with one sequence number and different contents.
	ErrEquivocation = errors.New("groupstate: equivocation")
	// ErrEquivocationMalformed: equivocation evidence that does not hold
	// (not two validly signed payloads of one author and sequence number
	// with different contents).
	ErrEquivocationMalformed = errors.New("groupstate: malformed equivocation evidence")
	// ErrInvalidEvent: an authorized event that does not apply to the
	// state (adding a member twice, removing a non-member, an expired or
	// invalid key package, a rotation to the wrong epoch...).
	ErrInvalidEvent = errors.New("groupstate: event does not apply")
	// ErrInvalidPolicy: a policy value out of bounds (history mode,
	// rotation period). It is an ErrInvalidEvent too: an event that sets
	// it does not apply.
	ErrInvalidPolicy error = &subError{"groupstate: invalid policy", ErrInvalidEvent}
	// ErrLastManager: the event would leave the group without a manager;
	// add or transfer to another manager first.
	ErrLastManager = errors.New("groupstate: the last manager cannot leave or step down")
	// ErrChainMalformed: a stored state chain encoding is not valid.
	ErrChainMalformed = errors.New("groupstate: malformed state chain")
	// ErrEvidenceMalformed: fork evidence that is not two signed events of
	// one group extending one head.
	ErrEvidenceMalformed = errors.New("groupstate: malformed fork evidence")

	// ErrKeyUpdateMalformed: bytes that are not a valid key update part.
	ErrKeyUpdateMalformed = errors.New("groupstate: malformed key update")
	// ErrStaleKeyUpdate: a key update for an epoch this member already
	// holds (a replay of an old rotation).
	ErrStaleKeyUpdate = errors.New("groupstate: stale key update")
	// ErrKeyUpdateInvalid: a key update that opens but does not match its
	// rotate event or the member's role (another WPub, no write secret for
	// a writer), or that does not match the state it is opened against.
	ErrKeyUpdateInvalid = errors.New("groupstate: invalid key update")
	// ErrRotationDue: a welcome under from-join history before the
	// rotation the add made due; rotate first.
	ErrRotationDue = errors.New("groupstate: rotation due")

	// ErrWelcomeMalformed: bytes that are not a valid welcome or welcome
	// frame.
	ErrWelcomeMalformed = errors.New("groupstate: malformed welcome")
	// ErrWelcomeInvalid: a welcome that opens but does not verify (chain,
	// signer, secrets, recipient or history rules).
	ErrWelcomeInvalid = errors.New("groupstate: invalid welcome")
	// ErrWelcomeIncomplete: no complete welcome among the envelopes yet.
	ErrWelcomeIncomplete = errors.New("groupstate: welcome incomplete")

	// ErrRequestMalformed: bytes that are not a valid manager request.
	ErrRequestMalformed = errors.New("groupstate: malformed manager request")
	// ErrRequestExpired: a manager request too old (or too far in the
	// future) to be applied.
	ErrRequestExpired = errors.New("groupstate: manager request expired")
)

// subError is a sentinel that also matches a more general one (errors.Is).
type subError struct {
	msg    string
	parent error
}

func (e *subError) Error() string        { return e.msg }
func (e *subError) Is(target error) bool { return target == e.parent }
