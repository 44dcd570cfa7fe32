package store

import (
	"context"
	"crypto/ed25519"
	"strconv"
	"testing"
	"time"

	"github.com/meshnode/meshnode/envelope"
)

// fillMailboxes puts one envelope in each of n new mailboxes, concurrently
// (group commit), and returns their keys.
func fillMailboxes(t testing.TB, s *Store, n int) []ed25519.PrivateKey {
	t.Helper()
	keys := make([]ed25519.PrivateKey, n)
	envs := make([]*envelope.Envelope, n)
	for i := range keys {
		keys[i] = newKey(t)
		envs[i] = seal(t, keys[i], 200)
	}
	errs := make(chan error, n)
	sem := make(chan struct{}, 64)
	for _, e := range envs {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			_, err := s.Put(context.Background(), e)
			errs <- err
		}()
	}
	for range envs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// A retention pass looks only at the mailboxes that are due: after a
// restart all of them once, then none while nothing expires, the one a
// Put took past its count limit, all of them when their envelopes reach
// MaxAge, and their tombstones when those expire; it never misses one.
func TestRetentionPassCostsWhatExpires(t *testing.T) {
	const n = 1000
	clock := newFakeClock()
	p := diskParams()
	p.Default = MailboxPolicy{MaxAge: 24 * time.Hour, MaxCount: 5}
	p.TombstoneTTL = 48 * time.Hour
	dir := t.TempDir()
	s, err := Open(dir, p, WithLogger(quietLogger()), WithClock(clock.now))
	if err != nil {
		t.Fatal(err)
	}
	keys := fillMailboxes(t, s, n)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, p, WithClock(clock.now))

	checked := func() int { return int(counterValue(t, s.m.retentionChecked)) }
	pass := func(what string, wantChecked, wantRemoved int) {
		t.Helper()
		before := checked()
		removed, err := s.EnforceRetention(t.Context())
		if err != nil || removed != wantRemoved || checked()-before != wantChecked {
			t.Fatalf("%s: checked %d mailboxes and removed %d (%v); want %d and %d",
				what, checked()-before, removed, err, wantChecked, wantRemoved)
		}
	}
	pass("first pass after a restart", n, 0)
	clock.advance(time.Minute)
	pass("idle pass", 0, 0)

	busy := keys[0]
	for range 10 {
		mustPut(t, s, seal(t, busy, 200))
	}
	pass("one mailbox over its count", 1, 6)
	clock.advance(time.Minute)
	pass("idle pass after the eviction", 0, 0)
	// SetPolicy makes the mailbox due at once.
	if err := s.SetPolicy(mailboxOf(keys[1]), MailboxPolicy{MaxAge: time.Second}); err != nil {
		t.Fatal(err)
	}
	pass("a policy lowered", 1, 1)

	clock.advance(24*time.Hour - 3*time.Minute)
	pass("just before MaxAge", 0, 0)
	clock.advance(time.Minute)
	// Every first envelope is 24 h old (the busy mailbox's and the
	// lowered one's were evicted already); the busy mailbox's newer ones
	// are a minute younger: it is due again when its oldest is.
	pass("MaxAge reached", n-2, n-2)
	pass("right after", 0, 0)
	clock.advance(time.Minute)
	pass("the busy mailbox's next envelopes", 1, 5)
	if u := s.Usage(); u.Count != 0 {
		t.Fatalf("%d envelopes left, want none", u.Count)
	}
	clock.advance(48 * time.Hour)
	before := s.Usage().Tombstones
	pass("tombstones expired", n, 0)
	if u := s.Usage(); u.Tombstones != 0 || before == 0 {
		t.Fatalf("tombstones %d before the pass and %d after, want all purged", before, u.Tombstones)
	}
	pass("an empty store", 0, 0)
	if l := s.ret.len(); l != 0 {
		t.Fatalf("%d mailboxes still scheduled in an empty store", l)
	}
}

// BenchmarkRetentionPass measures one retention pass over a store of
// idle mailboxes (one envelope each, MaxAge a day) after its first pass:
// the pass every RetentionInterval on a host where nothing expires.
func BenchmarkRetentionPass(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run("idle/mailboxes="+strconv.Itoa(n), func(b *testing.B) {
			p := diskParams()
			p.Default = MailboxPolicy{MaxAge: 24 * time.Hour}
			s := openStore(b, b.TempDir(), p)
			fillMailboxes(b, s, n)
			if _, err := s.EnforceRetention(b.Context()); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := s.EnforceRetention(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
