package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes: stable strings scripts may match on.
const (
	CodeBadRequest       = "bad_request"
	CodeUnauthorized     = "unauthorized"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeTooLarge         = "too_large"
	CodeUnavailable      = "unavailable"
	CodeInternal         = "internal"
)

var (
	// ErrBadRequest: the daemon could not understand the request.
	ErrBadRequest = errors.New("api: bad request")
	// ErrUnauthorized: the API token is missing or wrong.
	ErrUnauthorized = errors.New("api: unauthorized (check the home's api.token)")
	// ErrNotFound: no such endpoint or object.
	ErrNotFound = errors.New("api: not found")
	// ErrMethodNotAllowed: the endpoint exists but not with this method.
	ErrMethodNotAllowed = errors.New("api: method not allowed")
	// ErrTooLarge: the request body is over the limit.
	ErrTooLarge = errors.New("api: request too large")
	// ErrUnavailable: the daemon is shutting down or not ready.
	ErrUnavailable = errors.New("api: daemon unavailable")
	// ErrInternal: the daemon failed.
	ErrInternal = errors.New("api: daemon error")
	// ErrDaemonNotRunning: nothing answers at the daemon's address.
	ErrDaemonNotRunning = errors.New("api: daemon not running")
	// ErrProtocol: the daemon's answer could not be understood (a
	// different version, or not a meshnode daemon).
	ErrProtocol = errors.New("api: unexpected response")
	// ErrBadAddress: an API address that is neither host:port nor
	// unix:/path.
	ErrBadAddress = errors.New("api: bad address")
	// ErrBadToken: an API token that is not 64 hex characters.
	ErrBadToken = errors.New("api: bad token")
)

var codeErrors = map[string]error{
	CodeBadRequest:       ErrBadRequest,
	CodeUnauthorized:     ErrUnauthorized,
	CodeNotFound:         ErrNotFound,
	CodeMethodNotAllowed: ErrMethodNotAllowed,
	CodeTooLarge:         ErrTooLarge,
	CodeUnavailable:      ErrUnavailable,
	CodeInternal:         ErrInternal,
}

var codeStatus = map[string]int{
	CodeBadRequest:       http.StatusBadRequest,
	CodeUnauthorized:     http.StatusUnauthorized,
	CodeNotFound:         http.StatusNotFound,
	CodeMethodNotAllowed: http.StatusMethodNotAllowed,
	CodeTooLarge:         http.StatusRequestEntityTooLarge,
	CodeUnavailable:      http.StatusServiceUnavailable,
	CodeInternal:         http.StatusInternalServerError,
}

// HTTPStatus is the HTTP status of an error code (500 for an unknown one).
func HTTPStatus(code string) int {
	if s, ok := codeStatus[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Error is the body of every error response, and the error the client
// returns for one.
type Error struct {
	Message string `json:"error"`
	Code    string `json:"code"`
	// Status is the HTTP status the error came with (not serialized).
	Status int `json:"-"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("daemon: %s", e.Code)
	}
	return fmt.Sprintf("daemon: %s", e.Message)
}

// Is matches the sentinel of e's code, so callers write
// errors.Is(err, api.ErrUnauthorized).
func (e *Error) Is(target error) bool {
	s, ok := codeErrors[e.Code]
	return ok && s == target
}
