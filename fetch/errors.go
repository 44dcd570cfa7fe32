package fetch

import "errors"

var (
	// ErrBadResponse: the host's answer broke the protocol (bad frame,
	// more envelopes than asked for, an envelope of another mailbox).
	ErrBadResponse = errors.New("fetch: malformed response")
	// ErrBadRequest: a request argument is out of range.
	ErrBadRequest = errors.New("fetch: bad request")
)
