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
)
