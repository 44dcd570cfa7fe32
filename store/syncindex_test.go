package store

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
)

// checkSyncIndex compares every summary the view gives at levels 0 to 5
// with the sum of the IDs Scan lists, and the IDs with want.
func checkSyncIndex(t *testing.T, s *Store, m envelope.MailboxID, want map[envelope.ID]bool) {
	t.Helper()
	v, err := s.SyncView(m)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	got := map[envelope.ID]bool{}
	if err := v.Scan(0, 0, func(id envelope.ID) bool { got[id] = true; return true }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("sync set holds %d IDs, want %d", len(got), len(want))
	}
	for id := range want {
		if !got[id] {
			t.Fatalf("sync set lacks %s", id.Short())
		}
	}
	for level := range 6 {
		sums := make([]NodeSum, 1<<(4*level))
		if err := v.Sums(0, 0, level, sums); err != nil && level <= 3 {
			t.Fatal(err)
		} else if level > 3 {
			// Sums goes at most 3 levels at once: ask per level-2 node.
			for n := range uint64(256) {
				if err := v.Sums(2, n, level-2, sums[n<<(4*(level-2)):(n+1)<<(4*(level-2))]); err != nil {
					t.Fatal(err)
				}
			}
		}
		want := make([]NodeSum, len(sums))
		for id := range got {
			if level == 0 {
				want[0].add(sumOfID(id))
			} else {
				want[nodeOf(id, level)].add(sumOfID(id))
			}
		}
		for i := range sums {
			if sums[i] != want[i] {
				t.Fatalf("level %d node %x: index %+v, IDs %+v", level, i, sums[i], want[i])
			}
			if level <= 3 && i%97 == 0 {
				one, err := v.Sum(level, uint64(i))
				if err != nil || one != want[i] {
					t.Fatalf("Sum(%d, %x) = %+v, %v", level, i, one, err)
				}
				var scanned NodeSum
				if err := v.Scan(level, uint64(i), func(id envelope.ID) bool { scanned.add(sumOfID(id)); return true }); err != nil || scanned != want[i] {
					t.Fatalf("Scan(%d, %x) sums to %+v, %v", level, i, scanned, err)
				}
			}
		}
	}
}

// TestSyncIndex follows the index through Puts, duplicates, retention
// (tombstones stay in the set), refused re-Puts, purges (tombstones leave
// it), a Put over a stale tombstone and a rebuild at Open.
func TestSyncIndex(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock()
	p := DefaultParams()
	p.RetentionInterval, p.GCInterval = 0, 0
	p.TombstoneTTL = time.Hour
	s, err := Open(dir, p, WithLogger(quietLogger()), WithClock(clock.now))
	if err != nil {
		t.Fatal(err)
	}
	k := newKey(t)
	m := mailboxOf(k)
	want := map[envelope.ID]bool{}
	var envs []*envelope.Envelope
	for range 600 {
		e := seal(t, k, 200)
		envs = append(envs, e)
		want[e.ID()] = true
	}
	putAllConcurrently(t, s, envs)
	mustPut(t, s, envs[0]) // a duplicate changes nothing
	checkSyncIndex(t, s, m, want)

	if err := s.SetPolicy(m, MailboxPolicy{MaxCount: 500}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.EnforceRetention(t.Context()); err != nil || n != 100 {
		t.Fatalf("evicted %d, %v", n, err)
	}
	checkSyncIndex(t, s, m, want) // tombstones are in the set
	byID := map[envelope.ID]*envelope.Envelope{}
	for _, e := range envs {
		byID[e.ID()] = e
	}
	var dead []envelope.ID
	err = s.RangeIDs(m, envelope.ID{}, envelope.ID{}, func(id envelope.ID, live bool) bool {
		if !live {
			dead = append(dead, id)
		}
		return true
	})
	if err != nil || len(dead) != 100 {
		t.Fatalf("%d tombstones, %v", len(dead), err)
	}

	clock.advance(2 * time.Hour)
	if err := s.ClearPolicy(m); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, byID[dead[0]]) // over a stale tombstone: the ID stays
	if _, err := s.EnforceRetention(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, id := range dead[1:] {
		delete(want, id)
	}
	checkSyncIndex(t, s, m, want)

	// A store without the index version record rebuilds the index.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := badger.Open(badgerOptions(dir, p, quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(txn *badger.Txn) error {
		if err := txn.Delete(keySyncVersion); err != nil {
			return err
		}
		// A stale record of a partial build must go too.
		return txn.Set(syncKey(m, 3, 7), encodeNodeSum(NodeSum{Count: 9}))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, p)
	checkSyncIndex(t, s, m, want)
}

func putAllConcurrently(t *testing.T, s *Store, envs []*envelope.Envelope) {
	t.Helper()
	errs := make(chan error, len(envs))
	for _, e := range envs {
		go func() { _, err := s.Put(t.Context(), e); errs <- err }()
	}
	for range envs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestSyncViewSnapshot: a view does not see later Puts.
func TestSyncViewSnapshot(t *testing.T) {
	s := openMem(t, testParams())
	k := newKey(t)
	m := mailboxOf(k)
	mustPut(t, s, seal(t, k, 200))
	v, err := s.SyncView(m)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	mustPut(t, s, seal(t, k, 200))
	if sum, err := v.Sum(0, 0); err != nil || sum.Count != 1 {
		t.Fatalf("view sees %d IDs, %v", sum.Count, err)
	}
	if err := v.Sums(1, 16, 1, make([]NodeSum, 16)); err == nil {
		t.Fatal("node 16 at level 1 accepted")
	}
}

func FuzzDecodeNodeSum(f *testing.F) {
	f.Add(encodeNodeSum(NodeSum{Limbs: [4]uint64{1, 2, 3, 4}, Count: 5}))
	f.Add(make([]byte, syncRecordSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeNodeSum(b)
		if err != nil {
			return
		}
		if got := encodeNodeSum(s); string(got) != string(b) || s.Count == 0 {
			t.Fatalf("round trip %x -> %+v -> %x", b, s, got)
		}
		_ = binary.BigEndian
	})
}

// A failed commit leaves the sync index and the writer's cache of it as
// they were: the next batch builds on what was committed.
func TestSyncIndexAfterFailedCommit(t *testing.T) {
	s := openMem(t, testParams())
	k := newKey(t)
	m := mailboxOf(k)
	want := map[envelope.ID]bool{}
	for range 20 {
		e := seal(t, k, 200)
		mustPut(t, s, e)
		want[e.ID()] = true
	}
	commit := s.w.commit
	s.w.commit = func(*badger.Txn) error { return errors.New("disk on fire") }
	if _, err := s.Put(t.Context(), seal(t, k, 200)); err == nil {
		t.Fatal("Put succeeded with a failing commit")
	}
	s.w.commit = commit
	for range 20 {
		e := seal(t, k, 200)
		mustPut(t, s, e)
		want[e.ID()] = true
	}
	checkSyncIndex(t, s, m, want)
}
