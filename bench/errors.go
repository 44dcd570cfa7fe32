package bench

import "errors"

var (
	// ErrInvalidParams: a benchmark parameter is out of range.
	ErrInvalidParams = errors.New("bench: invalid parameters")
	// ErrMismatch: the system under test lost, duplicated or reordered an
	// envelope. A benchmark that sees this reports no figures: a fast
	// wrong answer is not a result.
	ErrMismatch = errors.New("bench: correctness check failed")
)
