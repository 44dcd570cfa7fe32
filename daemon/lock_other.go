//go:build !(linux || darwin || freebsd || openbsd || netbsd || dragonfly)

package daemon

// homeLock is a no-op where flock(2) is missing: Badger's own directory
// lock on the data directory still stops a second daemon, with a less
// helpful message.
type homeLock struct{}

func lockHome(*Home) (*homeLock, error) { return &homeLock{}, nil }

func (*homeLock) release() error { return nil }
