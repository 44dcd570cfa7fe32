package store

import (
	"sync"
	"testing"

	"github.com/meshnode/meshnode/envelope"
)

// TestInMemoryStoreCompactsOnDemand: an in-memory store runs without
// Badger's polling compactors (InMemoryParams), so its writer must compact
// level 0 itself, without ever stalling a Put, and keep every envelope.
func TestInMemoryStoreCompactsOnDemand(t *testing.T) {
	p := testParams()
	if p.Badger.NumCompactors != 0 {
		t.Fatalf("InMemoryParams has %d compactors; want 0 (compaction on demand)", p.Badger.NumCompactors)
	}
	s := openMem(t, p)
	k := newKey(t)
	mb := mailboxOf(k)
	// 20 MiB through 1 MiB memtables: 20 flushes into level 0, four times
	// NumLevelZeroTables.
	const n, size = 2560, 8 << 10
	envs := make([]*envelope.Envelope, n)
	for i := range envs {
		envs[i] = seal(t, k, size)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				mustPut(t, s, envs[i])
			}
		})
	}
	wg.Wait()
	if c := s.w.compact; c == nil {
		t.Fatal("no on-demand compactor for an in-memory store without compactors")
	}
	// A compaction may still be running; Close (in Cleanup) waits for it.
	// Level 0 was compacted: without it, it would hold about 20 tables.
	if l0 := s.db.Levels()[0].NumTables; l0 > p.Badger.NumLevelZeroTables+p.Badger.NumMemtables+2 {
		t.Errorf("level 0 holds %d tables after 20 MiB of Puts; want it compacted near %d", l0, p.Badger.NumLevelZeroTables)
	}
	got := 0
	for cur := Cursor(nil); ; {
		pg, err := s.Page(mb, cur, 500, 8<<20)
		if err != nil {
			t.Fatal(err)
		}
		got += len(pg.Envelopes)
		cur = pg.Next
		if !pg.More {
			break
		}
	}
	if got != n {
		t.Fatalf("paged %d envelopes after compaction; want %d", got, n)
	}
	for _, e := range envs[:50] {
		if ok, err := s.Has(mb, e.ID()); err != nil || !ok {
			t.Fatalf("Has %s = %v, %v after compaction", e.ID().Short(), ok, err)
		}
	}
}
