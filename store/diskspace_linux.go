//go:build linux

package store

import (
	"os"

	"golang.org/x/sys/unix"
)

// allocate gives f size bytes of allocated blocks without writing them
// (fallocate); false if the filesystem cannot, and the caller writes zeros.
func allocate(f *os.File, size int64) bool {
	return unix.Fallocate(int(f.Fd()), 0, 0, size) == nil
}
