package daemon

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/meshnode/meshnode/node"
)

// A daemon whose home is deleted under it notices, stops serving, and its
// shutdown ends within the shutdown timeout although its stores can no
// longer write (Badger retries a memtable flush into the deleted
// directory for ever).
func TestShutdownWithHomeDeleted(t *testing.T) {
	res := initHome(t, node.RoleMember)
	h := res.Home
	cfg, err := h.Config()
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 2 * time.Second
	fastWatch := func(c *config) error { c.homeCheck = 50 * time.Millisecond; return nil }
	// The stores on disk, as in production.
	d, err := Start(context.Background(), h, cfg, passphrase(testPass), WithLogger(quiet), WithShutdownTimeout(timeout), fastWatch)
	if err != nil {
		t.Fatal(err)
	}
	c := client(t, h)
	ctx := context.Background()
	if _, err := c.CreateGroup(ctx, "notes", nil); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := c.Send(ctx, "notes", "something to flush at close"); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(h.Dir()); err != nil {
		t.Fatal(err)
	}

	// The daemon notices that its home is gone.
	waited := make(chan error, 1)
	go func() { waited <- d.Wait(context.Background()) }()
	select {
	case err := <-waited:
		if !errors.Is(err, ErrHomeRemoved) {
			t.Fatalf("Wait: %v, want ErrHomeRemoved", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon did not notice that its home was deleted")
	}

	// Close returns, whatever the stores do: within the timeout, and the
	// test allows far more than that before calling it stuck.
	closed := make(chan error, 1)
	go func() { closed <- d.Close() }()
	select {
	case err := <-closed:
		// A clean close is fine too (Badger may manage); a stuck node is
		// reported as such.
		if err != nil && !errors.Is(err, ErrShutdownTimeout) {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(timeout + 30*time.Second):
		t.Fatal("Close did not return: shutdown is not bounded by its timeout")
	}
}
