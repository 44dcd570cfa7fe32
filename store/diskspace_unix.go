//go:build unix

package store

import "golang.org/x/sys/unix"

// statfs returns the bytes of dir's filesystem available to this user
// (blocks reserved for root do not count) and its size.
func statfs(dir string) (free, total int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), int64(st.Blocks) * int64(st.Bsize), nil
}
