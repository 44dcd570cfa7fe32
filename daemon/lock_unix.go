//go:build linux || darwin || freebsd || openbsd || netbsd || dragonfly

package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// homeLock is an exclusive flock(2) on the home's lock file, held for the
// life of the daemon. The kernel drops it when the process dies, so a
// crashed daemon never leaves a stale lock; the file itself stays.
type homeLock struct{ f *os.File }

func lockHome(h *Home) (*homeLock, error) {
	path := h.Path(FileLock)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("daemon: lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid := readPid(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			if pid != "" {
				return nil, fmt.Errorf("%w (pid %s, home %s); stop it first, or use another --home", ErrAlreadyRunning, pid, h.dir)
			}
			return nil, fmt.Errorf("%w (home %s); stop it first, or use another --home", ErrAlreadyRunning, h.dir)
		}
		return nil, fmt.Errorf("daemon: lock %s: %w", path, err)
	}
	// The pid is only for the message above; errors writing it are harmless.
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &homeLock{f: f}, nil
}

// readPid returns the pid recorded by the lock holder, or "" if the file
// holds no plausible pid.
func readPid(f *os.File) string {
	b, _ := io.ReadAll(io.LimitReader(f, 32))
	s := strings.TrimSpace(string(b))
	if n, err := strconv.Atoi(s); err != nil || n <= 0 {
		return ""
	}
	return s
}

func (l *homeLock) release() error {
	_ = l.f.Truncate(0)
	// Closing the descriptor releases the flock.
	return l.f.Close()
}
