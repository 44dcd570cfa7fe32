package daemon

import (
	"errors"

	"github.com/meshnode/meshnode/api"
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
