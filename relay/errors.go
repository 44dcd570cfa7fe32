package relay

import "errors"

var (
	// ErrNotJoined: Publish on a mailbox whose topic this node has not joined.
	ErrNotJoined = errors.New("relay: mailbox topic not joined")
	// ErrClosed: the relay was closed.
	ErrClosed = errors.New("relay: closed")
	// ErrSessionClosed: Send on a Session after Close.
	ErrSessionClosed = errors.New("relay: session closed")
	// ErrBadResponse: the remote host answered with something that is not a
	// valid response frame.
	ErrBadResponse = errors.New("relay: malformed response")
)
