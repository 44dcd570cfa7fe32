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
