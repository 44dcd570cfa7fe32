package keymgmt

import "errors"

// Sentinel errors; match with errors.Is.
var (
	// ErrInvalidKey: key material of the wrong length or that does not
	// match what it claims to be.
	ErrInvalidKey = errors.New("keymgmt: invalid key")
)
