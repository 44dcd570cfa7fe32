package directory

import (
	"errors"

	"github.com/meshnode/meshnode/internal/status"
)

// Sentinel errors; match with errors.Is. A client gets the same sentinel
// for a host's refusal as the host's code would produce locally.
var (
	// ErrUnknownName: the host holds no live package under that name hash.
	// To an initiator this means "no such alias or user ID on this host".
	ErrUnknownName = errors.New("directory: no connection package under that name")
	// ErrNotOwner: a publish or removal not signed by the key that owns
	// the name on this host (or whose signature does not verify).
	ErrNotOwner = errors.New("directory: name is owned by another key")
	// ErrStale: a signed request whose timestamp is outside the host's
	// clock skew window or not newer than the last one accepted for the
	// name (a replay). Check the clock, then retry.
	ErrStale = errors.New("directory: request timestamp stale or replayed")
	// ErrMalformed: a request, response or record that does not decode.
	ErrMalformed = errors.New("directory: malformed")
	// ErrTooLarge: over a size or count limit of the host.
	ErrTooLarge = errors.New("directory: too large")
	// ErrRateLimited: too many requests from this peer (or for this
	// name); retry later.
	ErrRateLimited = errors.New("directory: rate limited")
	// ErrBusy: the host serves as many directory streams as it can now
	// (its admission gate); retry shortly.
	ErrBusy = errors.New("directory: busy")
	// ErrFull: the host holds as many names as it accepts.
	ErrFull = errors.New("directory: host directory full")
	// ErrVersion: a protocol version this node does not speak.
	ErrVersion = errors.New("directory: unsupported version")
	// ErrUnavailable: an internal or storage failure on the host.
	ErrUnavailable = errors.New("directory: host unavailable")
	// ErrBadResponse: the host answered with something that is not a
	// valid response.
	ErrBadResponse = errors.New("directory: bad response")
	// ErrClosed: the service or database was closed.
	ErrClosed = errors.New("directory: closed")
	// ErrInvalidParams: invalid parameters or options.
	ErrInvalidParams = errors.New("directory: invalid parameters")
)

// codes maps sentinels to the shared status codes (package
// internal/status), which are part of the wire format. The directory uses
// its own sentinels for them: BadSignature means "not the owner",
// NotFound "unknown name", Expired "stale timestamp".
var codes = []struct {
	code status.Code
	err  error
}{
	{status.Malformed, ErrMalformed},
	{status.TooLarge, ErrTooLarge},
	{status.BadSignature, ErrNotOwner},
	{status.NotFound, ErrUnknownName},
	{status.RateLimited, ErrRateLimited},
	{status.QuotaExceeded, ErrFull},
	{status.Expired, ErrStale},
	{status.Version, ErrVersion},
	{status.Unavailable, ErrUnavailable},
	{status.Busy, ErrBusy},
}

// codeOf maps an error to the code a host sends; unknown errors become
// Unavailable with a generic message so internals do not leak.
func codeOf(err error) (status.Code, string) {
	if err == nil {
		return status.OK, ""
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code, status.Truncate(err.Error())
		}
	}
	return status.Unavailable, "internal error"
}

// errOf turns a received code back into an error matching its sentinel.
func errOf(c status.Code, msg string) error {
	if c == status.OK {
		return nil
	}
	for _, x := range codes {
		if x.code == c {
			return &RemoteError{Code: c, Message: msg, err: x.err}
		}
	}
	return &RemoteError{Code: c, Message: msg, err: ErrBadResponse}
}

// RemoteError is a refusal reported by a directory host.
type RemoteError struct {
	Code    status.Code
	Message string
	err     error
}

func (e *RemoteError) Error() string {
	if e.Message == "" {
		return "remote: " + e.Code.String()
	}
	return "remote: " + e.Code.String() + ": " + e.Message
}

// Unwrap lets errors.Is match the sentinel behind the code.
func (e *RemoteError) Unwrap() error { return e.err }
