//go:build !unix

package store

import "errors"

// statfs is not implemented here: the store runs without free-space checks.
func statfs(string) (int64, int64, error) {
	return 0, 0, errors.New("free space not available on this platform")
}
