package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/meshnode/meshnode/envelope"
	tu "github.com/meshnode/meshnode/internal/testutil"
)

// smallDiskParams size a store for a filesystem of a few dozen MiB:
// 1 MiB memtables, a watermark of 6 MiB and a 3 MiB ballast.
func smallDiskParams() Params {
	p := DefaultParams()
	p.MaxBatchBytes = 128 << 10
	p.Badger.MemTableSize = 1 << 20
	p.Badger.NumMemtables = 2
	p.Badger.ValueLogFileSize = 2 << 20
	p.Badger.BaseTableSize = 64 << 10
	p.Badger.IndexCacheSize = 1 << 20
	p.Disk = DiskParams{MinFreeBytes: 6 << 20, BallastBytes: 3 << 20, CheckInterval: 20 * time.Millisecond}
	// One new mailbox fills the disk: no budgets of new mailboxes
	// (admission.go) in the way.
	p.Admission = AdmissionParams{}
	return p
}

// fillDisk puts envelopes of 4 KiB from 8 writers until the store refuses
// them all with ErrDiskFull, and returns the acknowledged ones.
func fillDisk(t *testing.T, s *Store, k []byte) []*envelope.Envelope {
	t.Helper()
	var mu sync.Mutex
	var acked []*envelope.Envelope
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100_000; i++ {
				env := seal(t, k, 4<<10)
				_, err := s.Put(context.Background(), env)
				if errors.Is(err, ErrDiskFull) {
					return
				}
				if err != nil {
					t.Errorf("Put: %v", err)
					return
				}
				mu.Lock()
				acked = append(acked, env)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return acked
}

// checkAll reads back every acknowledged envelope.
func checkAll(t *testing.T, s *Store, acked []*envelope.Envelope) {
	t.Helper()
	for _, env := range acked {
		got, err := s.Get(env.Mailbox(), env.ID())
		if err != nil || got.ID() != env.ID() {
			t.Fatalf("acknowledged envelope %s: %v", env.ID().Short(), err)
		}
	}
	if n := s.Usage().Count; n != int64(len(acked)) {
		t.Fatalf("store holds %d envelopes, %d were acknowledged", n, len(acked))
	}
}

func expectRefused(t *testing.T, s *Store, p Params, k []byte) {
	t.Helper()
	if _, err := s.Put(context.Background(), seal(t, k, 1<<10)); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Put on a full disk: %v, want ErrDiskFull", err)
	}
	if st := s.Disk(); !st.Full || st.Free >= st.Watermark+int64(p.MaxEnvelopeSize+putOverhead) {
		t.Fatalf("disk status on a full disk: %+v", st)
	}
}

// A store on a small filesystem: filled by its own Puts it refuses them
// with ErrDiskFull and keeps serving reads; it opens on a disk something
// else filled to the last byte (giving up its ballast) and refuses writes
// there; it resumes by itself when space is freed; and it never loses an
// acknowledged envelope. Badger writes through memory maps, so without
// these checks the process dies of SIGBUS here.
func TestDiskFull(t *testing.T) {
	mnt := tu.SmallFS(t, 32<<20)
	dir := filepath.Join(mnt, "store")
	filler := filepath.Join(mnt, "filler")
	p := smallDiskParams()
	k := newKey(t)
	m := mailboxOf(k)

	open := func() *Store {
		t.Helper()
		s, err := Open(dir, p, WithLogger(quietLogger()))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	}
	closeStore := func(s *Store) {
		t.Helper()
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}

	// 1. Filled by its own writes.
	s := open()
	tu.Eventually(t, time.Minute, func() bool { return s.Disk().Ballast == p.Disk.BallastBytes }, "the ballast to be written")
	acked := fillDisk(t, s, k)
	if len(acked) < 100 {
		t.Fatalf("only %d envelopes fit before the disk was full", len(acked))
	}
	expectRefused(t, s, p, k)
	checkAll(t, s, acked)
	pg, err := s.Page(m, nil, 10, 1<<20)
	if err != nil || len(pg.Envelopes) != 10 {
		t.Fatalf("Page on a full disk: %d envelopes, %v", len(pg.Envelopes), err)
	}
	closeStore(s)

	// 2. Something else takes the rest, to the last byte; the store opens
	// anyway (on the ballast's room) and serves reads.
	tu.FillFS(t, filler)
	s = open()
	if _, err := os.Stat(filepath.Join(dir, BallastFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the ballast is still there after opening on a full disk (%v)", err)
	}
	expectRefused(t, s, p, k)
	checkAll(t, s, acked)

	// 3. Space comes back: writes resume without a restart, and the
	// ballast is put back.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	var more []*envelope.Envelope
	tu.Eventually(t, time.Minute, func() bool {
		env := seal(t, k, 4<<10)
		_, err := s.Put(context.Background(), env)
		if err == nil {
			more = append(more, env)
		}
		return err == nil
	}, "writes to resume once space was freed")
	acked = append(acked, more...)
	tu.Eventually(t, time.Minute, func() bool { return s.Disk().Ballast == p.Disk.BallastBytes }, "the ballast to be put back")

	// 4. The disk fills under the running store: the ballast goes, so
	// that Badger's housekeeping and its flush at close fit.
	tu.FillFS(t, filler)
	tu.Eventually(t, time.Minute, func() bool { return s.Disk().Full && s.Disk().Ballast == 0 }, "the store to notice the full disk and give up its ballast")
	expectRefused(t, s, p, k)
	closeStore(s)

	// Nothing acknowledged was lost.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	s = open()
	defer closeStore(s)
	checkAll(t, s, acked)
	if _, err := s.Put(context.Background(), seal(t, k, 1<<10)); err != nil {
		t.Fatalf("Put after space returned: %v", err)
	}
}

// Without a ballast and without room to open, the store refuses to open
// with ErrDiskFull instead of letting Badger crash.
func TestDiskFullNoRoomToOpen(t *testing.T) {
	mnt := tu.SmallFS(t, 8<<20)
	p := smallDiskParams()
	p.Disk.BallastBytes = 0
	tu.FillFS(t, filepath.Join(mnt, "filler"))
	s, err := Open(filepath.Join(mnt, "store"), p, WithLogger(quietLogger()))
	if err == nil {
		s.Close()
		t.Fatal("a store opened on a disk without room for Badger")
	}
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Open on a full disk: %v, want ErrDiskFull", err)
	}
}

// The watermark is the smaller of the two bounds, never below what Badger
// needs for its own housekeeping.
func TestDiskWatermark(t *testing.T) {
	p := smallDiskParams()
	const gib = 1 << 30
	for _, c := range []struct {
		bytes   int64
		percent float64
		total   int64
		want    int64
	}{
		{gib, 5, 100 * gib, gib},                // 1 GiB < 5 GiB
		{gib, 5, 10 * gib, gib / 2},             // 5% of 10 GiB
		{gib, 5, 20 << 20, p.Badger.Headroom()}, // 5% of 20 MiB is below the headroom
		{0, 0, 100 * gib, p.Badger.Headroom()},
		{0, 10, 100 * gib, 10 * gib},
	} {
		d := &disk{dir: t.TempDir(), p: DiskParams{MinFreeBytes: c.bytes, MinFreePercent: c.percent, CheckInterval: time.Second},
			headroom: p.Badger.Headroom(), log: quietLogger(),
			statfs: func(string) (int64, int64, error) { return c.total / 2, c.total, nil }}
		d.check()
		if got := d.watermark.Load(); got != c.want {
			t.Errorf("MinFreeBytes %d, MinFreePercent %v, disk of %d: watermark %d, want %d", c.bytes, c.percent, c.total, got, c.want)
		}
	}
}
