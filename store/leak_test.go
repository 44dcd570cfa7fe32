package store

import (
	"testing"

	"go.uber.org/goleak"
)

// Close stops every goroutine the store and Badger started: the simulator
// opens and closes hundreds of stores in one process.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, dir := range []string{"", t.TempDir()} {
		p := testParams()
		if dir != "" {
			p = diskParams()
			p.GCInterval = 1 << 40
		}
		p.RetentionInterval = 1 << 40
		s, err := Open(dir, p, WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		k := newKey(t)
		mustPut(t, s, seal(t, k, 300))
		ch, _ := s.Subscribe(mailboxOf(k))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		for range ch {
		}
	}
}
