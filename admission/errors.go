package admission

import "errors"

var (
	// ErrInvalidParams: Params make no sense.
	ErrInvalidParams = errors.New("admission: invalid parameters")
	// ErrEvicted: a stream that had not sent its request yet was reset to
	// make room for a newer one (Ticket.Activate after the eviction).
	ErrEvicted = errors.New("admission: idle stream evicted")
	// ErrBadProof: a new-mailbox proof of work that does not check.
	ErrBadProof = errors.New("admission: proof of work does not check")
)
