package store

import (
	"cmp"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
	tu "github.com/meshnode/meshnode/internal/testutil"
)

// pauseWriter stops the writer goroutine so the test can run batches on
// it directly (it becomes the writer's owner), and restarts it at cleanup.
func pauseWriter(t *testing.T, s *Store) {
	s.w.stopAndWait()
	t.Cleanup(func() {
		s.w.stop, s.w.exited = make(chan struct{}), make(chan struct{})
		go s.w.run()
	})
}

func TestDuplicatesWithinOneBatch(t *testing.T) {
	s := openMem(t, testParams())
	k := newKey(t)
	a, b := seal(t, k, 400), seal(t, k, 400)
	pauseWriter(t, s)
	batch := []*op{{kind: opPut, env: a}, {kind: opPut, env: b}, {kind: opPut, env: a}, {kind: opPut, env: b}}
	for _, o := range batch {
		o.done = make(chan outcome, 1)
	}
	s.w.apply(batch)
	want := []Result{{Seq: 1}, {Seq: 2}, {Seq: 1, Duplicate: true}, {Seq: 2, Duplicate: true}}
	for i, o := range batch {
		out := <-o.done
		if out.err != nil || out.res != want[i] {
			t.Fatalf("op %d: %+v, want %+v", i, out, want[i])
		}
	}
	if st := s.statsOf(s.w.states[a.Mailbox()]); st.Count != 2 || st.Bytes != 800 {
		t.Fatalf("state after batch: %+v", st)
	}
}

// A batch larger than one Badger transaction is split, not failed.
func TestOversizedBatchIsSplit(t *testing.T) {
	s := openMem(t, testParams())
	k := newKey(t)
	envs := make([]*envelope.Envelope, 512)
	batch := make([]*op, len(envs))
	for i := range envs {
		envs[i] = seal(t, k, 300)
		batch[i] = &op{kind: opPut, env: envs[i], done: make(chan outcome, 1)}
	}
	// 512 records of ~500 bytes with keys exceed 15% of a 1 MiB memtable.
	if need := int64(len(envs) * 500); need <= s.p.Badger.maxBatch() {
		t.Fatalf("test batch of ~%d bytes fits one transaction (%d); make it bigger", need, s.p.Badger.maxBatch())
	}
	pauseWriter(t, s)
	s.w.apply(batch)
	for i, o := range batch {
		out := <-o.done
		if out.err != nil || out.res.Seq != uint64(i+1) {
			t.Fatalf("op %d: %+v", i, out)
		}
	}
	if u := s.Usage(); u.Count != int64(len(envs)) {
		t.Fatalf("Usage = %+v", u)
	}
}

// Quotas count what earlier operations of the same batch stored.
func TestQuotaWithinOneBatch(t *testing.T) {
	p := testParams()
	p.Default = MailboxPolicy{QuotaCount: 1}
	s := openMem(t, p)
	k := newKey(t)
	batch := []*op{{kind: opPut, env: seal(t, k, 300)}, {kind: opPut, env: seal(t, k, 300)}}
	for _, o := range batch {
		o.done = make(chan outcome, 1)
	}
	pauseWriter(t, s)
	s.w.apply(batch)
	if out := <-batch[0].done; out.err != nil {
		t.Fatal(out.err)
	}
	if out := <-batch[1].done; !errors.Is(out.err, ErrQuotaExceeded) {
		t.Fatalf("second Put of the batch = %v, want ErrQuotaExceeded", out.err)
	}
}

// A Put made while a commit is in progress goes straight to the writer's
// queue, where it joins the next batch: it does not first wait for that
// commit in a read (Badger makes a read begun during a commit wait for
// it), which made a busy host's Puts miss the batch after and halved its
// group commits. A duplicate among them is still found, by the writer.
func TestPutDuringCommitJoinsTheNextBatch(t *testing.T) {
	s := openMem(t, testParams())
	k := newKey(t)
	stored := seal(t, k, 400)
	if _, err := s.Put(t.Context(), stored); err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the store closes, if the test fails early
	var held atomic.Bool
	// Set before the next operation is handed to the writer, which reads
	// it only after receiving one.
	s.w.commit = func(txn *badger.Txn) error {
		if held.CompareAndSwap(false, true) {
			close(started)
			<-release
		}
		return txn.Commit()
	}
	results := make(chan Result, 3)
	put := func(e *envelope.Envelope) {
		go func() {
			res, err := s.Put(t.Context(), e)
			if err != nil {
				t.Error(err)
			}
			results <- res
		}()
	}
	put(seal(t, k, 400))
	<-started
	// Both reach the queue while the first commit is held.
	put(seal(t, k, 400))
	put(stored)
	tu.Eventually(t, time.Minute, func() bool { return len(s.w.ops) == 2 }, "Puts queued during the commit")
	unblock()
	var got []Result
	for range 3 {
		got = append(got, <-results)
	}
	slices.SortFunc(got, func(a, b Result) int { return cmp.Compare(a.Seq, b.Seq) })
	if want := []Result{{Seq: 1, Duplicate: true}, {Seq: 2}, {Seq: 3}}; !slices.Equal(got, want) {
		t.Fatalf("results %+v, want %+v", got, want)
	}
}
