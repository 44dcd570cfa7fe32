package store

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/meshnode/meshnode/envelope"
)

func TestRetentionByAge(t *testing.T) {
	clock := newFakeClock()
	p := testParams()
	p.Default = MailboxPolicy{MaxAge: time.Hour}
	s := openMem(t, p, WithClock(clock.now))
	k := newKey(t)
	m := mailboxOf(k)
	var old, fresh []envelope.ID
	for range 5 {
		e := seal(t, k, 300)
		mustPut(t, s, e)
		old = append(old, e.ID())
	}
	clock.advance(40 * time.Minute)
	for range 3 {
		e := seal(t, k, 300)
		mustPut(t, s, e)
		fresh = append(fresh, e.ID())
	}
	if n, err := s.EnforceRetention(t.Context()); err != nil || n != 0 {
		t.Fatalf("before MaxAge: removed %d, %v", n, err)
	}
	clock.advance(20 * time.Minute) // the first five are now exactly an hour old
	if n, err := s.EnforceRetention(t.Context()); err != nil || n != 5 {
		t.Fatalf("after MaxAge: removed %d, %v; want 5", n, err)
	}
	if got := ids(readAll(t, s, m, 10)); !slices.Equal(got, fresh) {
		t.Fatalf("left %d envelopes, want the 3 fresh ones", len(got))
	}
	for _, id := range old {
		if ok, _ := s.Has(m, id); ok {
			t.Fatalf("expired %s still present", id.Short())
		}
	}
	st, _ := s.Stats(m)
	if st.Count != 3 || st.Floor != 5 || st.FirstSeq != 6 || st.LastSeq != 8 || st.Tombstones != 5 || st.Bytes != 900 {
		t.Fatalf("Stats = %+v", st)
	}
	if u := s.Usage(); u.Count != 3 || u.Bytes != 900 || u.Tombstones != 5 {
		t.Fatalf("Usage = %+v", u)
	}
	if got := counterValue(t, s.m.evictions.WithLabelValues(evictAge)); got != 5 {
		t.Fatalf("age evictions metric = %v", got)
	}
}

func TestRetentionByCountAndBytes(t *testing.T) {
	cases := []struct {
		name   string
		policy MailboxPolicy
		sizes  []int
		keep   int // newest envelopes kept
		reason string
	}{
		{"count", MailboxPolicy{MaxCount: 4}, []int{300, 300, 300, 300, 300, 300, 300}, 4, evictCount},
		{"bytes", MailboxPolicy{MaxBytes: 1000}, []int{500, 500, 300, 300, 300}, 3, evictBytes},
		{"bytes exact fit", MailboxPolicy{MaxBytes: 900}, []int{300, 300, 300}, 3, evictBytes},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := testParams()
			p.Default = tc.policy
			p.RetentionChunk = 2 // several chunks per pass
			s := openMem(t, p)
			k := newKey(t)
			m := mailboxOf(k)
			var all []envelope.ID
			for _, size := range tc.sizes {
				e := seal(t, k, size)
				mustPut(t, s, e)
				all = append(all, e.ID())
			}
			n, err := s.EnforceRetention(t.Context())
			if err != nil || n != len(all)-tc.keep {
				t.Fatalf("removed %d, %v; want %d", n, err, len(all)-tc.keep)
			}
			if got := ids(readAll(t, s, m, 3)); !slices.Equal(got, all[len(all)-tc.keep:]) {
				t.Fatalf("kept %d envelopes, want the newest %d", len(got), tc.keep)
			}
			if got := counterValue(t, s.m.evictions.WithLabelValues(tc.reason)); got != float64(n) {
				t.Fatalf("%s evictions metric = %v, want %d", tc.reason, got, n)
			}
			// A second pass has nothing to do.
			if n, err := s.EnforceRetention(t.Context()); err != nil || n != 0 {
				t.Fatalf("second pass removed %d, %v", n, err)
			}
		})
	}
}

func TestRetentionPerMailboxPolicy(t *testing.T) {
	s := openMem(t, testParams())
	k1, k2 := newKey(t), newKey(t)
	for range 5 {
		mustPut(t, s, seal(t, k1, 300))
		mustPut(t, s, seal(t, k2, 300))
	}
	if err := s.SetPolicy(mailboxOf(k1), MailboxPolicy{MaxCount: 2}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.EnforceRetention(t.Context()); err != nil || n != 3 {
		t.Fatalf("removed %d, %v; want 3 from the overridden mailbox only", n, err)
	}
	st1, _ := s.Stats(mailboxOf(k1))
	st2, _ := s.Stats(mailboxOf(k2))
	if st1.Count != 2 || st2.Count != 5 {
		t.Fatalf("counts %d and %d, want 2 and 5", st1.Count, st2.Count)
	}
}

func TestExpiredCursor(t *testing.T) {
	p := testParams()
	s := openMem(t, p)
	k := newKey(t)
	m := mailboxOf(k)
	var all []envelope.ID
	for range 10 {
		e := seal(t, k, 300)
		mustPut(t, s, e)
		all = append(all, e.ID())
	}
	at3, err := s.Page(m, nil, 3, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	at5, err := s.Page(m, nil, 5, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetPolicy(m, MailboxPolicy{MaxCount: 5}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.EnforceRetention(t.Context()); err != nil || n != 5 {
		t.Fatalf("removed %d, %v", n, err)
	}
	// Envelopes 4 and 5 were removed after the holder of at3 saw 1..3.
	if pg, err := s.Page(m, at3.Next, 10, 1<<20); !errors.Is(err, ErrExpiredCursor) || len(pg.Envelopes) != 0 {
		t.Fatalf("cursor below the floor: %d envelopes, %v; want ErrExpiredCursor", len(pg.Envelopes), err)
	}
	// The holder of at5 lost nothing.
	pg, err := s.Page(m, at5.Next, 10, 1<<20)
	if err != nil || !slices.Equal(ids(pg.Envelopes), all[5:]) {
		t.Fatalf("cursor at the floor: %d envelopes, %v", len(pg.Envelopes), err)
	}
	// An empty cursor starts at the floor.
	if got := ids(readAll(t, s, m, 2)); !slices.Equal(got, all[5:]) {
		t.Fatalf("from the beginning: %d envelopes", len(got))
	}
	// Everything evicted: an empty cursor's page points at the last seq,
	// and a cursor from then on stays valid.
	if err := s.SetPolicy(m, MailboxPolicy{MaxCount: 0, MaxBytes: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnforceRetention(t.Context()); err != nil {
		t.Fatal(err)
	}
	empty, err := s.Page(m, nil, 10, 1<<20)
	if err != nil || len(empty.Envelopes) != 0 {
		t.Fatalf("emptied mailbox: %d envelopes, %v", len(empty.Envelopes), err)
	}
	if err := s.ClearPolicy(m); err != nil {
		t.Fatal(err)
	}
	e := seal(t, k, 300)
	if r := mustPut(t, s, e); r.Seq != 11 {
		t.Fatalf("seq after eviction = %d, want 11", r.Seq)
	}
	pg, err = s.Page(m, empty.Next, 10, 1<<20)
	if err != nil || len(pg.Envelopes) != 1 || pg.Envelopes[0].ID() != e.ID() {
		t.Fatalf("resume after emptied mailbox: %d envelopes, %v", len(pg.Envelopes), err)
	}
}

func TestTombstones(t *testing.T) {
	clock := newFakeClock()
	p := testParams()
	p.TombstoneTTL = 24 * time.Hour
	s := openMem(t, p, WithClock(clock.now))
	k := newKey(t)
	m := mailboxOf(k)
	var envs []*envelope.Envelope
	for range 6 {
		e := seal(t, k, 300)
		mustPut(t, s, e)
		envs = append(envs, e)
	}
	if err := s.SetPolicy(m, MailboxPolicy{MaxCount: 4}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.EnforceRetention(t.Context()); err != nil || n != 2 {
		t.Fatalf("removed %d, %v", n, err)
	}
	evicted := envs[:2]

	// Re-inserting an evicted envelope is refused and changes nothing.
	before, _ := s.Stats(m)
	for _, e := range evicted {
		if _, err := s.Put(t.Context(), e); !errors.Is(err, ErrExpired) {
			t.Fatalf("re-Put of evicted envelope = %v, want ErrExpired", err)
		}
	}
	if after, _ := s.Stats(m); after != before {
		t.Fatalf("refused re-Put changed stats: %+v -> %+v", before, after)
	}

	// RangeIDs reports tombstones as known, not live, in ID order.
	state := map[envelope.ID]bool{}
	var order []envelope.ID
	err := s.RangeIDs(m, envelope.ID{}, envelope.ID{}, func(id envelope.ID, live bool) bool {
		state[id] = live
		order = append(order, id)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(state) != 6 || !slices.IsSortedFunc(order, func(a, b envelope.ID) int { return compareIDs(a, b) }) {
		t.Fatalf("RangeIDs: %d IDs, sorted %v", len(state), slices.IsSortedFunc(order, compareIDs))
	}
	for i, e := range envs {
		if live, ok := state[e.ID()]; !ok || live != (i >= 2) {
			t.Fatalf("envelope %d: known %v live %v", i, ok, live)
		}
	}

	// After the TTL the tombstones are purged and the IDs are new again.
	clock.advance(24 * time.Hour)
	if _, err := s.EnforceRetention(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Stats(m); st.Tombstones != 0 {
		t.Fatalf("tombstones after TTL = %d", st.Tombstones)
	}
	if got := counterValue(t, s.m.tombPurged); got != 2 {
		t.Fatalf("purged metric = %v", got)
	}
	n := 0
	if err := s.RangeIDs(m, envelope.ID{}, envelope.ID{}, func(envelope.ID, bool) bool { n++; return true }); err != nil || n != 4 {
		t.Fatalf("RangeIDs after purge: %d IDs, %v", n, err)
	}
	if r := mustPut(t, s, evicted[0]); r.Duplicate || r.Seq != 7 {
		t.Fatalf("Put after tombstone expiry = %+v, want a new seq 7", r)
	}
}

// An expired but not yet purged tombstone neither blocks a Put nor shows
// in RangeIDs.
func TestStaleTombstone(t *testing.T) {
	clock := newFakeClock()
	p := testParams()
	p.TombstoneTTL = time.Hour
	s := openMem(t, p, WithClock(clock.now))
	k := newKey(t)
	m := mailboxOf(k)
	a, b := seal(t, k, 300), seal(t, k, 300)
	mustPut(t, s, a)
	mustPut(t, s, b)
	if err := s.SetPolicy(m, MailboxPolicy{MaxCount: 1}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.EnforceRetention(t.Context()); err != nil || n != 1 {
		t.Fatalf("removed %d, %v", n, err)
	}
	if err := s.ClearPolicy(m); err != nil {
		t.Fatal(err)
	}
	clock.advance(time.Hour)
	n := 0
	if err := s.RangeIDs(m, envelope.ID{}, envelope.ID{}, func(envelope.ID, bool) bool { n++; return true }); err != nil || n != 1 {
		t.Fatalf("RangeIDs with a stale tombstone: %d IDs, %v", n, err)
	}
	if r := mustPut(t, s, a); r.Duplicate || r.Seq != 3 {
		t.Fatalf("Put over a stale tombstone = %+v", r)
	}
	if st, _ := s.Stats(m); st.Tombstones != 0 || st.Count != 2 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestBackgroundRetention(t *testing.T) {
	p := testParams()
	p.RetentionInterval = 5 * time.Millisecond
	p.Default = MailboxPolicy{MaxCount: 3}
	s := openMem(t, p)
	k := newKey(t)
	for range 10 {
		mustPut(t, s, seal(t, k, 300))
	}
	eventually(t, "the background job to evict", func() bool {
		st, err := s.Stats(mailboxOf(k))
		return err == nil && st.Count == 3
	})
}

func TestValueLogGC(t *testing.T) {
	dir := t.TempDir()
	p := diskParams()
	p.Badger.ValueLogFileSize = 1 << 20
	p.Default = MailboxPolicy{MaxCount: 10}
	s, err := Open(dir, p, WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	k := newKey(t)
	envs := make([]*envelope.Envelope, 4000)
	for i := range envs {
		envs[i] = seal(t, k, 1024)
	}
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < len(envs); i += 16 {
				if _, err := s.Put(t.Context(), envs[i]); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if n, err := s.EnforceRetention(t.Context()); err != nil || n != len(envs)-10 {
		t.Fatalf("removed %d, %v", n, err)
	}
	// Closing flushes the memtable and compacts L0 (CompactL0OnClose),
	// which drops the deleted keys and records how much of each value-log
	// file is garbage.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, p)
	n, err := s.runValueLogGC(t.Context())
	if err != nil {
		t.Fatalf("value-log GC: %v", err)
	}
	if n == 0 {
		t.Fatal("value-log GC rewrote nothing although almost every value is garbage")
	}
	if got := readAll(t, s, mailboxOf(k), 100); len(got) != 10 {
		t.Fatalf("after GC: %d envelopes, want 10", len(got))
	}
}

func compareIDs(a, b envelope.ID) int {
	switch {
	case bytesLess(a, b):
		return -1
	case a == b:
		return 0
	}
	return 1
}
