package store

import (
	"errors"
	"testing"

	"github.com/meshnode/meshnode/envelope"
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
