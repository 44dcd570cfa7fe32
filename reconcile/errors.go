package reconcile

import "errors"

// Sentinel errors; match with errors.Is. The wrapped message says what
// exactly was wrong. After any error a session is dead: start a new one.
var (
	// ErrMalformed: the bytes are not a valid message (truncated, trailing
	// data, unknown mode, non-canonical bound or varint, bad bitmap padding).
	ErrMalformed = errors.New("reconcile: malformed message")
	// ErrVersion: a message of a protocol version this node does not speak.
	ErrVersion = errors.New("reconcile: unsupported protocol version")
	// ErrTooLarge: a message over Params.MaxMessageSize, MaxRanges or MaxIDs.
	// Both peers must use the same limits.
	ErrTooLarge = errors.New("reconcile: message over limits")
	// ErrProtocol: a well-formed message that breaks the protocol: ranges not
	// ascending, a bound after infinity, IDs outside their range or out of
	// order, an IDDiff that answers no ID list of ours, a message after the
	// session ended.
	ErrProtocol = errors.New("reconcile: protocol violation")
	// ErrTooManyRounds: the peer kept the session going past
	// Params.MaxRounds messages. Start a new session later; if it keeps
	// happening the peer is faulty or the limit too low for the difference.
	ErrTooManyRounds = errors.New("reconcile: too many rounds")
	// ErrInvalidParams: Params that fail validation.
	ErrInvalidParams = errors.New("reconcile: invalid parameters")
)
