//go:build !linux

package store

import "os"

// allocate is fallocate on Linux; elsewhere the caller writes zeros.
func allocate(*os.File, int64) bool { return false }
