//go:build linux

package testutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// SmallFS mounts a tmpfs of size bytes on a fresh directory and unmounts
// it at cleanup (register it before anything that keeps files open in it,
// so it is unmounted after they close). It skips the test, saying why,
// where mounting is not permitted (it needs root or CAP_SYS_ADMIN; CI runs
// as root).
func SmallFS(t testing.TB, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "smallfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", size))
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		t.Skipf("cannot mount a %d-byte tmpfs to run out of disk space (%v): this test needs root or CAP_SYS_ADMIN", size, err)
	}
	if err != nil {
		t.Fatalf("mounting a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	return dir
}

// FillFS writes zeros to path until the filesystem is full and returns
// how many bytes it wrote. The file stays; remove it to free the space.
func FillFS(t testing.TB, path string) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	var n int64
	for len(buf) > 0 {
		w, err := f.Write(buf)
		n += int64(w)
		if errors.Is(err, unix.ENOSPC) {
			buf = buf[:len(buf)/2] // top up the last blocks
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return n
}
