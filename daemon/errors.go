package daemon

import (
	"errors"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/contacts"
	"github.com/meshnode/meshnode/directory"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/store"
)

var (
	// ErrConfig: config.json or a command-line override is invalid.
	ErrConfig = errors.New("daemon: invalid configuration")
	// ErrHomeExists: init was pointed at a home that already exists.
	ErrHomeExists = errors.New("daemon: home already exists")
	// ErrNotInitialized: the home has no config.json.
	ErrNotInitialized = errors.New("daemon: home not initialised")
	// ErrAlreadyRunning: another daemon holds the home's lock.
	ErrAlreadyRunning = errors.New("daemon: another meshnode daemon is running on this home")
	// ErrNotRunning: no daemon answers for the home. It is
	// api.ErrDaemonNotRunning, so either matches with errors.Is.
	ErrNotRunning = api.ErrDaemonNotRunning
	// ErrInsecureFile: a secret file (api.token) is readable by others.
	ErrInsecureFile = errors.New("daemon: secret file readable by other users")
	// ErrAddrInUse: the API address is taken by another process.
	ErrAddrInUse = errors.New("daemon: API address in use")
	// ErrShutdownTimeout: Close gave up waiting for the node to stop.
	ErrShutdownTimeout = errors.New("daemon: shutdown timed out")
	// ErrHomeRemoved: the home directory was deleted (or replaced) under
	// the running daemon, which then stops.
	ErrHomeRemoved = errors.New("daemon: the home directory was removed")
)

// errorTable maps the errors of the packages below the daemon (neutral
// sentinels, each in its package's errors.go) to the control API's codes,
// in one place; no handler maps errors of its own and nothing matches on
// error text. The first entry that matches (errors.Is) wins, so a more
// specific sentinel comes before one it may be wrapped with: an event the
// group's chain refuses on a non-member wraps both groupstate's
// ErrInvalidEvent and node's ErrUnknownMember, and is a refusal. The HTTP
// status is the code's (api.HTTPStatus). hint, if set, is advice for a
// person appended to the message: the lower packages' errors say what was
// wrong, never which command to run. An error no entry matches is
// internal: writeError logs it and answers a generic message.
var errorTable = []struct {
	err  error
	code string
	hint string
}{
	// Managed groups.
	{node.ErrNotManaged, api.CodeNotManaged, "create one with `meshnode group create --managed`"},
	{node.ErrNotManager, api.CodeNotManager, ""},
	{node.ErrRemoved, api.CodeRemoved, ""}, // sending in, or managing, a group that removed this member
	{node.ErrNoBot, api.CodeNoBot, ""},
	{node.ErrNoInvite, api.CodeNoInvite, ""},
	{node.ErrBadKeyPackage, api.CodeBadKeyPackage, ""},
	{node.ErrLeaveUndelivered, api.CodeUndelivered, ""},

	// Contacts.
	{contacts.ErrUnknownName, api.CodeUnknownName, ""},
	{contacts.ErrBadPackage, api.CodeBadPackage, ""},
	{contacts.ErrUnknownRequest, api.CodeUnknownRequest, "see `meshnode contact requests`"},
	{contacts.ErrUnknownAlias, api.CodeUnknownAlias, "see `meshnode alias list`"},
	{contacts.ErrAliasExists, api.CodeAliasExists, ""},
	{contacts.ErrNoDirectoryHosts, api.CodeNoDirectory, "name one with --host, or set directory_hosts in config.json"},
	{contacts.ErrNotPublished, api.CodeDirectoryRefuse, ""},
	{contacts.ErrSelfContact, api.CodeBadRequest, ""},
	{contacts.ErrUnknownContact, api.CodeUnknownContact, "see `meshnode contact list`"},
	{contacts.ErrNoContactKeyPackage, api.CodeNoKeyPackage, ""},
	{contacts.ErrWelcomeTooLarge, api.CodeWelcomeTooLarge, ""},
	{contacts.ErrUnknownContactAdd, api.CodeUnknownAdd, "see `meshnode contact adds`"},
	{contacts.ErrContactAddQueueFull, api.CodeAddQueueFull, "`meshnode contact adds` lists them, `meshnode contact cancel-add ID` cancels one"},
	{directory.ErrRateLimited, api.CodeUnavailable, ""},

	// The group rules (groupstate): an invalid policy value is a bad
	// request, any other event that does not apply a refusal.
	{groupstate.ErrInvalidPolicy, api.CodeBadRequest, ""},
	{groupstate.ErrLastManager, api.CodeRefused, ""},
	{groupstate.ErrInvalidEvent, api.CodeRefused, ""},
	{groupstate.ErrUnauthorized, api.CodeNotManager, ""},
	{groupstate.ErrRotationDue, api.CodeRefused, ""},
	{groupstate.ErrEventMalformed, api.CodeBadRequest, ""},
	{groupstate.ErrCannotWrite, api.CodeReadOnly, ""},
	{groupstate.ErrInviteMalformed, api.CodeBadInvite, ""},
	{groupstate.ErrInviteChecksum, api.CodeBadInvite, ""},
	{groupstate.ErrInviteVersion, api.CodeBadInvite, ""},
	{groupstate.ErrTooLong, api.CodeBadRequest, ""},
	{groupstate.ErrInvalidName, api.CodeBadRequest, ""},
	{groupstate.ErrInvalidHost, api.CodeBadRequest, ""},
	{groupstate.ErrPayloadMalformed, api.CodeBadRequest, ""},

	// Groups and messages.
	{node.ErrUnknownGroup, api.CodeUnknownGroup, "see `meshnode group list`"},
	{node.ErrAmbiguousGroup, api.CodeAmbiguousGroup, ""},
	{node.ErrAlreadyMember, api.CodeAlreadyMember, ""},
	{node.ErrUnknownMember, api.CodeUnknownMember, ""},
	{node.ErrAmbiguousMember, api.CodeAmbiguousMember, ""},
	{node.ErrBadQuery, api.CodeBadRequest, ""},
	{node.ErrReadOnly, api.CodeReadOnly, ""},
	{node.ErrBadCursor, api.CodeBadCursor, ""},
	{node.ErrUnknownMessage, api.CodeUnknownMessage, "`meshnode messages GROUP` shows the IDs"},
	{node.ErrFileTooLarge, api.CodeFileTooLarge, ""},
	{node.ErrFileIncomplete, api.CodeFileIncomplete, ""},
	{node.ErrFileCorrupt, api.CodeFileCorrupt, ""},
	{groupstate.ErrFileMalformed, api.CodeBadRequest, ""},
	{groupstate.ErrNotAuthor, api.CodeNotAuthor, ""},
	{groupstate.ErrRefTarget, api.CodeBadRequest, ""},
	{groupstate.ErrRefMalformed, api.CodeBadRequest, ""},
	{node.ErrNoIdentity, api.CodeForbidden, ""},
	{node.ErrClosed, api.CodeUnavailable, ""},
	{node.ErrConfig, api.CodeBadRequest, ""}, // a host that is not a multiaddr with /p2p/

	// Keys: an expired connection package found under a name (after
	// groupstate: an add event whose key package expired is a refusal),
	// parameters and fingerprints that do not parse.
	{keymgmt.ErrExpired, api.CodeExpiredPackage, ""},
	{keymgmt.ErrInvalidParams, api.CodeBadRequest, ""},
	{keymgmt.ErrMalformed, api.CodeBadRequest, ""},

	{store.ErrDiskFull, api.CodeDiskFull, ""},
}

// apiError turns an error of the layers below into an *api.Error by
// errorTable; others stay internal (logged by writeError, generic to the
// client). The message is the error's text with the entry's hint
// (writeError drops the package names).
func apiError(err error) error {
	var e *api.Error
	if err == nil || errors.As(err, &e) {
		return err
	}
	for _, m := range errorTable {
		if errors.Is(err, m.err) {
			msg := err.Error()
			if m.hint != "" {
				msg += " (" + m.hint + ")"
			}
			return &api.Error{Code: m.code, Message: msg, Status: api.HTTPStatus(m.code)}
		}
	}
	return err
}
