package store

import (
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/meshnode/meshnode/envelope"
)

// quietLogger drops everything below warnings so tests stay readable but
// Badger's warnings still show up.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// seal makes a fresh envelope of exactly size bytes (random ciphertext, so
// every call gives a distinct ID).
func seal(t testing.TB, k ed25519.PrivateKey, size int) *envelope.Envelope {
	t.Helper()
	nonce := make([]byte, envelope.NonceSize)
	ct := make([]byte, size-envelope.Overhead)
	rand.Read(nonce)
	rand.Read(ct)
	e, err := envelope.Seal(k, nonce, ct, envelope.AbsoluteMaxSize)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func mailboxOf(k ed25519.PrivateKey) envelope.MailboxID {
	return envelope.MailboxFor(k.Public().(ed25519.PublicKey))
}

func openStore(t testing.TB, dir string, p Params, opts ...Option) *Store {
	t.Helper()
	opts = append([]Option{WithLogger(quietLogger())}, opts...)
	s, err := Open(dir, p, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// testParams are in-memory params with the background jobs off, so tests
// drive retention themselves.
func testParams() Params {
	p := InMemoryParams()
	p.RetentionInterval = 0
	p.Default = MailboxPolicy{}
	p.GlobalQuotaBytes = 0
	p.Admission = AdmissionParams{} // admission_test.go turns the budgets on
	return p
}

func openMem(t testing.TB, p Params, opts ...Option) *Store {
	t.Helper()
	return openStore(t, "", p, opts...)
}

func diskParams() Params {
	p := DefaultParams()
	p.RetentionInterval = 0
	p.GCInterval = 0
	p.Default = MailboxPolicy{}
	p.GlobalQuotaBytes = 0
	// Keep test directories small: Badger preallocates value-log files.
	p.Badger.ValueLogFileSize = 8 << 20
	p.Badger.MemTableSize = 4 << 20
	p.Badger.IndexCacheSize = 0
	return p
}

// fakeClock is a manually advanced clock for retention tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func mustPut(t testing.TB, s *Store, e *envelope.Envelope) Result {
	t.Helper()
	r, err := s.Put(t.Context(), e)
	if err != nil {
		t.Fatalf("Put %s: %v", e.ID().Short(), err)
	}
	return r
}

// readAll pages through m with the given page size and returns every
// envelope in order, failing the test on any error.
func readAll(t testing.TB, s *Store, m envelope.MailboxID, limit int) []*envelope.Envelope {
	t.Helper()
	var out []*envelope.Envelope
	var cur Cursor
	for {
		pg, err := s.Page(m, cur, limit, 1<<30)
		if err != nil {
			t.Fatalf("Page: %v", err)
		}
		out = append(out, pg.Envelopes...)
		cur = pg.Next
		if !pg.More {
			return out
		}
	}
}

func ids(envs []*envelope.Envelope) []envelope.ID {
	out := make([]envelope.ID, len(envs))
	for i, e := range envs {
		out[i] = e.ID()
	}
	return out
}

// eventually polls cond until it holds or the deadline passes. The
// deadline is generous: it only ends a test that hangs, and a loaded
// machine must not fail one that is merely slow.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
