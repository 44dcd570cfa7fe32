package node

import "errors"

var (
	// ErrConfig: the node's parameters are invalid.
	ErrConfig = errors.New("node: invalid configuration")
	// ErrClosed: the node was closed.
	ErrClosed = errors.New("node: closed")
	// ErrNotHosted: a local relay or fetch for a mailbox this node neither
	// hosts nor has joined.
	ErrNotHosted = errors.New("node: mailbox not hosted here")
	// ErrListenAddrInUse: a listen address with a fixed port that another
	// socket already listens on.
	ErrListenAddrInUse = errors.New("node: listen address in use")
)

var (
	// ErrCorrupt: a record of the member database does not decode.
	ErrCorrupt = errors.New("node: member database record corrupt")
	// ErrNoIdentity: a member operation on a node started without a profile
	// identity (a pure host).
	ErrNoIdentity = errors.New("node: this node has no profile identity (start it with one to use groups)")
	// ErrUnknownGroup: no group has that ID or name.
	ErrUnknownGroup = errors.New("node: unknown group")
	// ErrAmbiguousGroup: several groups have that name; use the group ID.
	ErrAmbiguousGroup = errors.New("node: several groups have that name; use the group ID")
	// ErrAlreadyMember: joining a group this node is already in.
	ErrAlreadyMember = errors.New("node: already a member of that group")
	// ErrUnknownMember: no member of the group has that fingerprint.
	ErrUnknownMember = errors.New("node: no member of the group has that fingerprint")
	// ErrBadQuery: a search without a word to look for, or with a bad
	// limit.
	ErrBadQuery = errors.New("node: bad search")
	// ErrAmbiguousMember: several members of the group have that nick.
	ErrAmbiguousMember = errors.New("node: several members have that nick")
	// ErrUnknownMessage: no message of the member's groups (of the group
	// named) has that ID, or the ID prefix names several (refs.go).
	ErrUnknownMessage = errors.New("node: unknown message")
	// ErrFileTooLarge: a file over the node's limit (Params.MaxFileSize).
	ErrFileTooLarge = errors.New("node: file too large")
	// ErrFileIncomplete: a file that ended before its announced size, or
	// a download some of whose chunks no host supplied.
	ErrFileIncomplete = errors.New("node: file incomplete")
	// ErrFileCorrupt: a downloaded file whose chunks do not match its
	// manifest's SHA-256.
	ErrFileCorrupt = errors.New("node: file does not match its hash")
	// ErrReadOnly: sending in a group where this member may only read.
	ErrReadOnly = errors.New("node: you may only read in this group")
)

var (
	// ErrBadCursor: a message position (history.go) or page request that
	// is malformed.
	ErrBadCursor = errors.New("node: bad message position")
)
