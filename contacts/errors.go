package contacts

import "errors"

// Errors of contacts: neutral sentinels (the daemon maps them to API codes
// and adds advice for a person; they name no command).
var (
	// ErrNoDirectoryHosts: no directory host is configured (see
	// Params.DirectoryHosts; the node's bootstrap peers are the default).
	ErrNoDirectoryHosts = errors.New("contacts: no directory host to look the name up at")
	// ErrUnknownName: no directory host has a connection package under
	// that alias or user ID.
	ErrUnknownName = errors.New("contacts: no one is reachable under that name on the directory hosts")
	// ErrBadPackage: the package found under the name is not a valid
	// package for it (forged, or published by someone else under it).
	ErrBadPackage = errors.New("contacts: the connection package under that name is not valid")
	// ErrAliasExists and ErrUnknownAlias: alias add/remove.
	ErrAliasExists  = errors.New("contacts: alias already added")
	ErrUnknownAlias = errors.New("contacts: unknown alias")
	// ErrUnknownRequest: no request in quarantine has that ID.
	ErrUnknownRequest = errors.New("contacts: no pending contact request has that ID")
	// ErrUnknownContact: no contact matches.
	ErrUnknownContact = errors.New("contacts: unknown contact")
	// ErrSelfContact: asking to connect to oneself.
	ErrSelfContact = errors.New("contacts: that name is your own")
	// ErrNotPublished: no directory host accepted the alias.
	ErrNotPublished = errors.New("contacts: no directory host accepted the alias")

	// ErrUnknownContactAdd: no queued add has that ID.
	ErrUnknownContactAdd = errors.New("contacts: no queued contact add has that ID")
	// ErrContactAddQueueFull: MaxQueuedAdds adds are queued.
	ErrContactAddQueueFull = errors.New("contacts: too many queued contact adds; cancel some")

	// ErrNoContactKeyPackage: the contact's node has not offered a key
	// package yet (it does so while it runs, once connected), or every
	// one it offered was used or has expired.
	ErrNoContactKeyPackage = errors.New("contacts: the contact has offered no unused key package yet (their node offers one while it runs; try again later, or add them with a key package they give you)")
	// ErrWelcomeTooLarge: the welcome does not fit in a connection group
	// (MaxWelcomeParts).
	ErrWelcomeTooLarge = errors.New("contacts: the welcome is too large to send over the connection group")
	// ErrBadWelcome: a welcome frame or reassembled welcome that is not
	// valid (dropped by the member).
	ErrBadWelcome = errors.New("contacts: malformed welcome frame")

	// ErrCorrupt: a contact record of the member database does not
	// decode.
	ErrCorrupt = errors.New("contacts: record corrupt")
)
