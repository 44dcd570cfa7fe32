package envelope

import "errors"

// Sentinel errors. Callers match them with errors.Is; the wrapped message
// says what exactly was wrong.
var (
	// ErrMalformed: the bytes are not a valid encoding (truncated, lengths
	// that do not add up, bad hex).
	ErrMalformed = errors.New("envelope: malformed")
	// ErrVersion: an envelope version this node does not speak.
	ErrVersion = errors.New("envelope: unsupported version")
	// ErrTooLarge: the encoding exceeds the configured size limit.
	ErrTooLarge = errors.New("envelope: too large")
	// ErrBadSignature: the write signature does not verify under WPub, so the
	// sender does not hold the mailbox's write secret.
	ErrBadSignature = errors.New("envelope: bad write signature")
	// ErrWrongMailbox: the envelope's WPub does not hash to the mailbox it
	// was sent to.
	ErrWrongMailbox = errors.New("envelope: wrong mailbox")
)
