//go:build !linux

package testutil

import "testing"

// SmallFS skips the test: mounting a small filesystem is done on Linux only.
func SmallFS(t testing.TB, size int64) string {
	t.Skip("mounting a small filesystem to run out of disk space is implemented on Linux only")
	return ""
}

// FillFS is not implemented here.
func FillFS(t testing.TB, path string) int64 {
	t.Skip("FillFS is implemented on Linux only")
	return 0
}
