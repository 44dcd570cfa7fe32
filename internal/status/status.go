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
	"strings"
	"unicode"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/errtext"
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
	Busy           Code = 17 // the host has no capacity for this request now; retry shortly or elsewhere
	ProofRequired  Code = 18 // the host admits new mailboxes only with a proof of work now (see ProofBits)
	maxKnownStatus      = ProofRequired
)

// Sentinels for codes that have no sentinel in a lower package.
//
// What a client should do with each refusal of an open host's admission
// (relay and fetch answer them; node.Remote and the catch-up client return
// them wrapped, so errors.Is tells them apart):
//
//   - ErrRateLimited: this peer or its network sent too much too fast.
//     Back off (seconds, doubling) and retry the same host.
//   - ErrBusy: the host has no capacity left for this kind of request right
//     now (its stream budget, the memory of a page). Retry after a short
//     pause, or try another host of the group.
//   - store.ErrQuotaExceeded: the mailbox, this network's budget for new
//     mailboxes or the whole host is full. Retrying soon will not help;
//     try another host, or retry after minutes.
//   - store.ErrDiskFull: the host's disk is nearly full; as for a quota.
//   - ErrProofRequired: the host admits a new mailbox only with a proof of
//     work of Error.ProofBits bits. The relay client solves it and retries
//     by itself when the difficulty is within its own limit, so a caller
//     sees this only when the host asked for more than that.
var (
	ErrNotServed     = errors.New("mailbox not served by this host")
	ErrRateLimited   = errors.New("rate limited")
	ErrBusy          = errors.New("host busy")
	ErrProofRequired = errors.New("proof of work required for a new mailbox")
	ErrUnavailable   = errors.New("host unavailable")
	ErrProtocol      = errors.New("protocol violation")
	ErrUnknownCode   = errors.New("unknown status code")
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
	{Busy, ErrBusy},
	{ProofRequired, ErrProofRequired},
	{QuotaExceeded, store.ErrQuotaExceeded},
	{Expired, store.ErrExpired},
	{UnknownCursor, store.ErrUnknownCursor},
	{ExpiredCursor, store.ErrExpiredCursor},
	{NotFound, store.ErrNotFound},
	{ProtocolError, ErrProtocol},
	{Unavailable, ErrUnavailable},
	{DiskFull, store.ErrDiskFull},
}

// FromError maps err to the code a server sends and its message: what
// err says beyond its sentinel (the code says that), without the package
// names of the error text, so the client's error reads once: "rate
// limited: too many new mailboxes from your network", not "rate limited:
// rate limited: ...". Errors that match no sentinel become Unavailable,
// with a generic message so internal details do not leak to remote peers.
func FromError(err error) (Code, string) {
	if err == nil {
		return OK, ""
	}
	var e *Error
	if errors.As(err, &e) {
		// A refusal made as a status already (admission's ProofRequired).
		return e.Code, Truncate(errtext.Strip(e.Message))
	}
	for _, t := range table {
		if errors.Is(err, t.err) {
			return t.code, Truncate(detail(err.Error(), t.err.Error()))
		}
	}
	return Unavailable, "internal error"
}

// detail removes the sentinel's own text from msg (where %w put it: at
// the start, between other parts, or at the end) and then the package
// names (package errtext).
func detail(msg, sentinel string) string {
	msg = strings.ReplaceAll(msg, sentinel+": ", "")
	if msg == sentinel {
		return ""
	}
	msg = strings.TrimSuffix(msg, ": "+sentinel)
	return errtext.Strip(msg)
}

// clean is a message received from a peer as a user may read it: the
// control characters of a hostile peer's text (terminal escapes, line
// breaks that would forge lines of output) replaced, and a code name or
// sentinel text the peer repeated at its start dropped.
func clean(c Code, msg string) string {
	msg = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar || unicode.Is(unicode.Bidi_Control, r) {
			return '?'
		}
		return r
	}, Truncate(msg))
	repeats := []string{c.String()}
	if s := c.sentinel(); s != nil {
		repeats = append(repeats, s.Error())
	}
	for again := true; again; {
		again = false
		for _, r := range repeats {
			if rest, ok := strings.CutPrefix(msg, r); ok && (rest == "" || strings.HasPrefix(rest, ": ")) {
				msg, again = strings.TrimPrefix(rest, ": "), true
			}
		}
	}
	return msg
}

// sentinel is the error behind c (nil for a code without one).
func (c Code) sentinel() error {
	for _, t := range table {
		if t.code == c {
			return t.err
		}
	}
	return nil
}

// Error is a failure reported by a remote peer.
type Error struct {
	Code    Code
	Message string
	// ProofBits is the difficulty a ProofRequired answer asks for.
	ProofBits uint8
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("remote: %s", e.Code)
	}
	return fmt.Sprintf("remote: %s: %s", e.Code, e.Message)
}

// Unwrap lets errors.Is match the sentinel behind the code.
func (e *Error) Unwrap() error {
	if s := e.Code.sentinel(); s != nil {
		return s
	}
	return ErrUnknownCode
}

// Err turns a received code into nil (for OK and Duplicate) or an *Error
// whose message is msg cleaned for a user (see ProofError).
func (c Code) Err(msg string) error {
	if c == OK || c == Duplicate {
		return nil
	}
	return &Error{Code: c, Message: clean(c, msg)}
}

// Temporary reports whether err is a refusal that the same host may
// accept if the request is repeated after a pause: rate limited, busy or
// unavailable. Quotas, policy and malformed requests are not.
func Temporary(err error) bool {
	return errors.Is(err, ErrRateLimited) || errors.Is(err, ErrBusy) || errors.Is(err, ErrUnavailable)
}

// ProofError is a ProofRequired refusal asking for bits of proof of work.
// Like Err, it cleans msg: control characters are replaced (a peer's text
// is shown to users) and a repeated code name at its start is dropped.
func ProofError(bits uint8, msg string) *Error {
	return &Error{Code: ProofRequired, Message: clean(ProofRequired, msg), ProofBits: bits}
}

// ProofBitsOf returns the difficulty a ProofRequired refusal in err's
// chain asks for, and whether there is one.
func ProofBitsOf(err error) (uint8, bool) {
	var e *Error
	if errors.As(err, &e) && e.Code == ProofRequired {
		return e.ProofBits, true
	}
	return 0, false
}

// Valid reports whether c is a code this version knows.
func (c Code) Valid() bool { return c <= maxKnownStatus }

func (c Code) String() string {
	names := [...]string{"ok", "duplicate", "malformed", "too large", "bad signature",
		"wrong mailbox", "not served", "rate limited", "quota exceeded", "expired",
		"unavailable", "unsupported version", "unknown cursor", "expired cursor",
		"not found", "protocol error", "disk full", "busy", "proof of work required"}
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
