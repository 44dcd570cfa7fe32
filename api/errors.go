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
	CodeForbidden        = "forbidden"
	CodeConflict         = "conflict"

	// Codes of the group and message endpoints. Each also matches its
	// generic sentinel: errors.Is(err, ErrNotFound) holds for
	// CodeUnknownGroup.
	CodeUnknownGroup    = "unknown_group"    // 404: no group has that ID or name
	CodeAmbiguousGroup  = "ambiguous_group"  // 409: several groups have that name
	CodeAlreadyMember   = "already_member"   // 409: joining a group twice
	CodeUnknownMember   = "unknown_member"   // 404: no member has that fingerprint
	CodeReadOnly        = "read_only"        // 403: sending with a read-only invite
	CodeBadInvite       = "bad_invite"       // 400: malformed, mistyped or unsupported invite
	CodeAmbiguousMember = "ambiguous_member" // 409: several members have that nick
	CodeUnknownMessage  = "unknown_message"  // 404: no message has that ID (or it was deleted)
	CodeNotAuthor       = "not_author"       // 403: editing or deleting another member's message

	// CodeDiskFull: the node's disk is (nearly) full; it refuses writes
	// until space is freed, and still answers reads.
	CodeDiskFull = "disk_full" // 507
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
	// ErrForbidden: the daemon understood but may not do it.
	ErrForbidden = errors.New("api: forbidden")
	// ErrConflict: the request conflicts with the daemon's state.
	ErrConflict = errors.New("api: conflict")
	// ErrUnknownGroup: no group has that ID or name.
	ErrUnknownGroup = errors.New("api: unknown group")
	// ErrAmbiguousGroup: several groups have that name; use the group ID.
	ErrAmbiguousGroup = errors.New("api: ambiguous group name")
	// ErrAlreadyMember: the node is already a member of the group.
	ErrAlreadyMember = errors.New("api: already a member")
	// ErrUnknownMember: no member of the group has that fingerprint.
	ErrUnknownMember = errors.New("api: unknown member")
	// ErrReadOnly: this member may only read in the group.
	ErrReadOnly = errors.New("api: read-only member")
	// ErrRemoved: this member was removed from the (managed) group; it is
	// read-only for it.
	ErrRemoved = errors.New("api: removed from the group")
	// ErrAmbiguousMember: several members of the group have that nick;
	// the message lists them with their fingerprints.
	ErrAmbiguousMember = errors.New("api: several members have that nick")
	// ErrUnknownMessage: no message of the member's groups has that ID,
	// a prefix names several, or the message was deleted.
	ErrUnknownMessage = errors.New("api: unknown message")
	// ErrNotAuthor: only its author edits a message, and only its author
	// or a manager of a managed group deletes it.
	ErrNotAuthor = errors.New("api: not the message's author")
	// ErrBadInvite: the invite is malformed, mistyped or of an unsupported
	// version.
	ErrBadInvite = errors.New("api: bad invite")
	// ErrDiskFull: the node's disk is (nearly) full; writes are refused
	// until space is freed.
	ErrDiskFull = errors.New("api: disk full")
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

// codeErrors are the sentinels each code matches: its own, then the
// generic one of its status.
var codeErrors = map[string][]error{
	CodeBadRequest:       {ErrBadRequest},
	CodeUnauthorized:     {ErrUnauthorized},
	CodeNotFound:         {ErrNotFound},
	CodeMethodNotAllowed: {ErrMethodNotAllowed},
	CodeTooLarge:         {ErrTooLarge},
	CodeUnavailable:      {ErrUnavailable},
	CodeInternal:         {ErrInternal},
	CodeForbidden:        {ErrForbidden},
	CodeConflict:         {ErrConflict},
	CodeUnknownGroup:     {ErrUnknownGroup, ErrNotFound},
	CodeAmbiguousGroup:   {ErrAmbiguousGroup, ErrConflict},
	CodeAlreadyMember:    {ErrAlreadyMember, ErrConflict},
	CodeUnknownMember:    {ErrUnknownMember, ErrNotFound},
	CodeReadOnly:         {ErrReadOnly, ErrForbidden},
	CodeRemoved:          {ErrRemoved, ErrForbidden},
	CodeBadInvite:        {ErrBadInvite, ErrBadRequest},
	CodeUnknownMessage:   {ErrUnknownMessage, ErrNotFound},
	CodeAmbiguousMember:  {ErrAmbiguousMember, ErrConflict},
	CodeNotAuthor:        {ErrNotAuthor, ErrForbidden},
	CodeDiskFull:         {ErrDiskFull},
	CodeBadOrigin:        {ErrForbidden},
	CodeBadCursor:        {ErrBadRequest},

	// Managed groups (managed.go).
	CodeNotManaged:    {ErrConflict},
	CodeNotManager:    {ErrForbidden},
	CodeNoBot:         {ErrConflict},
	CodeBadKeyPackage: {ErrBadRequest},
	CodeNoInvite:      {ErrConflict},
	CodeRefused:       {ErrConflict},
	CodeUndelivered:   {ErrUnavailable},

	// Contacts (contacts.go). The 502 codes (a directory host's answer
	// was unusable) have no generic sentinel.
	CodeUnknownName:     {ErrNotFound},
	CodeUnknownRequest:  {ErrNotFound},
	CodeUnknownAlias:    {ErrNotFound},
	CodeAliasExists:     {ErrConflict},
	CodeNoDirectory:     {ErrConflict},
	CodeUnknownContact:  {ErrNotFound},
	CodeNoKeyPackage:    {ErrConflict},
	CodeWelcomeTooLarge: {ErrConflict},
	CodeUnknownAdd:      {ErrNotFound},
	CodeAddQueueFull:    {ErrConflict},
}

var codeStatus = map[string]int{
	CodeBadRequest:       http.StatusBadRequest,
	CodeUnauthorized:     http.StatusUnauthorized,
	CodeNotFound:         http.StatusNotFound,
	CodeMethodNotAllowed: http.StatusMethodNotAllowed,
	CodeTooLarge:         http.StatusRequestEntityTooLarge,
	CodeUnavailable:      http.StatusServiceUnavailable,
	CodeInternal:         http.StatusInternalServerError,
	CodeForbidden:        http.StatusForbidden,
	CodeConflict:         http.StatusConflict,
	CodeUnknownGroup:     http.StatusNotFound,
	CodeAmbiguousGroup:   http.StatusConflict,
	CodeAlreadyMember:    http.StatusConflict,
	CodeUnknownMember:    http.StatusNotFound,
	CodeReadOnly:         http.StatusForbidden,
	CodeRemoved:          http.StatusForbidden,
	CodeBadInvite:        http.StatusBadRequest,
	CodeUnknownMessage:   http.StatusNotFound,
	CodeAmbiguousMember:  http.StatusConflict,
	CodeNotAuthor:        http.StatusForbidden,
	CodeDiskFull:         http.StatusInsufficientStorage,
	CodeBadOrigin:        http.StatusForbidden,
	CodeBadCursor:        http.StatusBadRequest,

	CodeNotManaged:    http.StatusConflict,
	CodeNotManager:    http.StatusForbidden,
	CodeNoBot:         http.StatusConflict,
	CodeBadKeyPackage: http.StatusBadRequest,
	CodeNoInvite:      http.StatusConflict,
	CodeRefused:       http.StatusConflict,
	CodeUndelivered:   http.StatusServiceUnavailable,

	CodeUnknownName:     http.StatusNotFound,
	CodeBadPackage:      http.StatusBadGateway,
	CodeExpiredPackage:  http.StatusBadGateway,
	CodeUnknownRequest:  http.StatusNotFound,
	CodeUnknownAlias:    http.StatusNotFound,
	CodeAliasExists:     http.StatusConflict,
	CodeNoDirectory:     http.StatusConflict,
	CodeDirectoryRefuse: http.StatusBadGateway,
	CodeUnknownContact:  http.StatusNotFound,
	CodeNoKeyPackage:    http.StatusConflict,
	CodeWelcomeTooLarge: http.StatusConflict,
	CodeUnknownAdd:      http.StatusNotFound,
	CodeAddQueueFull:    http.StatusConflict,
}

// statusCode is the generic code of an HTTP status, for error answers
// without the JSON shape.
var statusCode = map[int]string{
	http.StatusBadRequest:            CodeBadRequest,
	http.StatusUnauthorized:          CodeUnauthorized,
	http.StatusForbidden:             CodeForbidden,
	http.StatusNotFound:              CodeNotFound,
	http.StatusMethodNotAllowed:      CodeMethodNotAllowed,
	http.StatusConflict:              CodeConflict,
	http.StatusRequestEntityTooLarge: CodeTooLarge,
	http.StatusServiceUnavailable:    CodeUnavailable,
	http.StatusInternalServerError:   CodeInternal,
	http.StatusInsufficientStorage:   CodeDiskFull,
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

// Is matches the sentinels of e's code, so callers write
// errors.Is(err, api.ErrUnauthorized), or errors.Is(err, api.ErrNotFound)
// for any of the not-found codes.
func (e *Error) Is(target error) bool {
	for _, s := range codeErrors[e.Code] {
		if s == target {
			return true
		}
	}
	return false
}
