// Package status is the error-code vocabulary shared by meshnode's stream
// protocols (relay, fetch, sync). A server maps the error it would return
// to a Code plus a short human message; a client turns them back into an
// error that matches the same sentinel with errors.Is, so callers handle a
// remote rejection exactly like a local one.
//
// Codes are part of every protocol's wire format: never renumber them.
package status

import (
	"errors"
	"fmt"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/store"
)

// Code is a one-byte result code.
type Code uint8

// Result codes. OK and Duplicate are successes.
const (
	OK             Code = 0  // done (for relay: durably stored)
	Duplicate      Code = 1  // already stored; nothing changed
	Malformed      Code = 2  // the request or envelope could not be decoded
	TooLarge       Code = 3  // over a size limit
	BadSignature   Code = 4  // envelope write signature does not verify
	WrongMailbox   Code = 5  // envelope does not belong to the named mailbox
	NotServed      Code = 6  // this node's hosting policy does not serve the mailbox
	RateLimited    Code = 7  // too many requests from this peer; retry later
	QuotaExceeded  Code = 8  // the mailbox or the host is full
	Expired        Code = 9  // the envelope was removed by retention and will not be taken again
	Unavailable    Code = 10 // an internal or storage failure on the server
	Version        Code = 11 // unsupported protocol or envelope version
	UnknownCursor  Code = 12 // the cursor was not issued by this host for this mailbox
	ExpiredCursor  Code = 13 // envelopes after the cursor were removed by retention
	NotFound       Code = 14 // the requested item does not exist
	ProtocolError  Code = 15 // the peer broke the protocol (order, bounds, rounds)
	DiskFull       Code = 16 // the host's disk is (nearly) full; retry later
	maxKnownStatus      = DiskFull
)

// Sentinels for codes that have no sentinel in a lower package.
var (
	ErrNotServed   = errors.New("mailbox not served by this host")
	ErrRateLimited = errors.New("rate limited")
	ErrUnavailable = errors.New("host unavailable")
	ErrProtocol    = errors.New("protocol violation")
	ErrUnknownCode = errors.New("unknown status code")
)

var table = []struct {
	code Code
	err  error
}{
	{Malformed, envelope.ErrMalformed},
	{TooLarge, envelope.ErrTooLarge},
	{BadSignature, envelope.ErrBadSignature},
	{WrongMailbox, envelope.ErrWrongMailbox},
	{Version, envelope.ErrVersion},
	{NotServed, ErrNotServed},
	{RateLimited, ErrRateLimited},
	{QuotaExceeded, store.ErrQuotaExceeded},
	{Expired, store.ErrExpired},
	{UnknownCursor, store.ErrUnknownCursor},
	{ExpiredCursor, store.ErrExpiredCursor},
	{NotFound, store.ErrNotFound},
	{ProtocolError, ErrProtocol},
	{Unavailable, ErrUnavailable},
	{DiskFull, store.ErrDiskFull},
}

// FromError maps err to the code a server sends. Errors that match no
// sentinel become Unavailable, with a generic message so internal details
// do not leak to remote peers.
func FromError(err error) (Code, string) {
	if err == nil {
		return OK, ""
	}
	for _, t := range table {
		if errors.Is(err, t.err) {
			return t.code, err.Error()
		}
	}
	return Unavailable, "internal error"
}

// Error is a failure reported by a remote peer.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("remote: %s", e.Code)
	}
	return fmt.Sprintf("remote: %s: %s", e.Code, e.Message)
}

// Unwrap lets errors.Is match the sentinel behind the code.
func (e *Error) Unwrap() error {
	for _, t := range table {
		if t.code == e.Code {
			return t.err
		}
	}
	return ErrUnknownCode
}

// Err turns a received code into nil (for OK and Duplicate) or an *Error.
func (c Code) Err(msg string) error {
	if c == OK || c == Duplicate {
		return nil
	}
	return &Error{Code: c, Message: msg}
}

// Valid reports whether c is a code this version knows.
func (c Code) Valid() bool { return c <= maxKnownStatus }

func (c Code) String() string {
	names := [...]string{"ok", "duplicate", "malformed", "too large", "bad signature",
		"wrong mailbox", "not served", "rate limited", "quota exceeded", "expired",
		"unavailable", "unsupported version", "unknown cursor", "expired cursor",
		"not found", "protocol error", "disk full"}
	if int(c) < len(names) {
		return names[c]
	}
	return fmt.Sprintf("code %d", uint8(c))
}

// MaxMessage is the longest human message carried with a code.
const MaxMessage = 512

// Truncate shortens a message to MaxMessage bytes.
func Truncate(msg string) string {
	if len(msg) > MaxMessage {
		return msg[:MaxMessage]
	}
	return msg
}
