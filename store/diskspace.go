package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Free space. Badger writes its value log, write-ahead log and tables
// through memory maps, and a write into a mapped page the filesystem has
// no block for kills the process with SIGBUS: a host whose disk fills
// does not get an error, it dies, and dies again at the next start while
// Badger replays its memtables. So the store never lets Badger reach a
// full disk:
//
//   - Below the watermark (DiskParams) it refuses every Put with
//     ErrDiskFull and keeps serving reads. The writer checks the
//     filesystem (statfs) before each group commit and counts what the
//     batch will write, so a burst cannot overshoot; a background check
//     every CheckInterval moves the store between "full" and "not full"
//     (and logs each move), so it resumes by itself when space returns.
//   - The watermark is never below what Badger itself may still write
//     while Puts are refused (Headroom: flushing its memtables, a
//     compaction), so the housekeeping of a refusing store fits.
//   - A ballast file (EMERGENCY_BALLAST, BallastBytes of allocated
//     blocks) is kept in the store's directory while space allows. A
//     store opened on a full disk (filled by something else, or before
//     this watermark existed) deletes it first: Badger needs room to
//     open (a memtable header, the flush of replayed memtables), and then
//     serves reads and refuses writes. When the disk has room for it
//     again, above the watermark, the ballast is put back. A store
//     without a ballast that finds less than the room to open refuses to
//     open (ErrDiskFull) instead of crashing.
//   - Value-log GC, which rewrites live values before it frees a file,
//     runs only when a rewrite fits above the watermark.
//
// Retention and tombstone purges still run when the disk is full: they
// write little and are how a host's disk gets free again.

// BallastFile is the name of the ballast in the store's directory.
const BallastFile = "EMERGENCY_BALLAST"

// putOverhead is what one Put writes besides the envelope: the arrival
// header, the index record, the write-ahead log entry and their share of
// the next table flush, rounded up.
const putOverhead = 1 << 10

// DiskParams are the free-space limits of an on-disk store.
type DiskParams struct {
	// MinFreeBytes and MinFreePercent set the watermark: Puts are refused
	// while the filesystem holding the store has less free space than the
	// smaller of MinFreeBytes and MinFreePercent of its size (0 leaves a
	// bound out; both 0 leave only Headroom). The watermark is never
	// below Headroom.
	MinFreeBytes   int64
	MinFreePercent float64
	// BallastBytes is the size of the ballast file (0: none).
	BallastBytes int64
	// CheckInterval is how often the free space is checked in the
	// background (the writer also checks before every commit).
	CheckInterval time.Duration
}

// DefaultDiskParams: refuse writes below 256 MiB or 5% free, whichever is
// smaller (never below Headroom: 72 MiB for DefaultParams), and keep a
// ballast of 64 MiB, enough for Badger to open and flush the memtables of
// DefaultParams on a full disk. The store is not alone on its disk (the
// member and directory databases, logs), hence a margin well above the
// headroom; a host with a large disk may raise MinFreeBytes.
func DefaultDiskParams() DiskParams {
	return DiskParams{
		MinFreeBytes:   256 << 20,
		MinFreePercent: 5,
		BallastBytes:   64 << 20,
		CheckInterval:  2 * time.Second,
	}
}

func (d DiskParams) validate() error {
	switch {
	case d.MinFreeBytes < 0 || d.BallastBytes < 0:
		return fmt.Errorf("%w: Disk.MinFreeBytes %d and Disk.BallastBytes %d must not be negative", ErrInvalidParams, d.MinFreeBytes, d.BallastBytes)
	case d.MinFreePercent < 0 || d.MinFreePercent >= 100:
		return fmt.Errorf("%w: Disk.MinFreePercent %v outside [0, 100)", ErrInvalidParams, d.MinFreePercent)
	case d.CheckInterval <= 0:
		return fmt.Errorf("%w: Disk.CheckInterval must be positive", ErrInvalidParams)
	}
	return nil
}

// Headroom is what Badger may still write while Puts are refused: a
// flush of every memtable plus a new one, and a compaction's new tables
// before it deletes the old ones. The watermark is never below it.
func (b BadgerParams) Headroom() int64 {
	return int64(b.NumMemtables+1)*b.MemTableSize + 4*b.BaseTableSize
}

// openRoom is the least free space the store opens with: one memtable's
// flush, plus the headers of a new memtable and value-log file.
func (b BadgerParams) openRoom() int64 { return b.MemTableSize + 1<<20 }

// DiskStatus describes the filesystem that holds an on-disk store.
type DiskStatus struct {
	// Free and Total are the filesystem's free (available to this user)
	// and total bytes at the last check; Watermark is the free space
	// below which Puts are refused.
	Free, Total, Watermark int64
	// Full reports that Puts are refused: the largest envelope would take
	// the free space below the watermark.
	Full bool
	// Ballast is the size of the ballast file held now.
	Ballast int64
}

// disk watches the free space of an on-disk store. Its atomics are shared;
// room is the writer goroutine's alone.
type disk struct {
	dir      string
	p        DiskParams
	headroom int64
	maxPut   int64
	log      *slog.Logger
	statfs   func(dir string) (free, total int64, err error)

	free, total, watermark, ballast atomic.Int64
	full                            atomic.Bool
	// statfsFailed is set once statfs has failed (logged once; the store
	// then works without the check).
	statfsFailed atomic.Bool

	// room is how much the batch being built may still write before the
	// watermark (writer goroutine only).
	room int64
}

// openDisk checks the free space of dir before Badger opens it: on a full
// disk it deletes the ballast, and it refuses to open with less room than
// Badger needs.
func openDisk(dir string, p Params, log *slog.Logger) (*disk, error) {
	d := &disk{dir: dir, p: p.Disk, headroom: p.Badger.Headroom(), maxPut: int64(p.MaxEnvelopeSize + putOverhead), log: log, statfs: statfs}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: creating %s: %w", dir, err)
	}
	if fi, err := os.Stat(d.ballastPath()); err == nil {
		d.ballast.Store(fi.Size())
	}
	if !d.check() {
		return d, nil // no statfs here: no checks
	}
	if d.full.Load() && d.ballast.Load() > 0 {
		size := d.ballast.Load()
		if err := d.releaseBallast(); err != nil {
			return nil, err
		}
		d.log.Warn("the disk is full: released the emergency ballast so the store can open; it serves reads and refuses writes until space is freed",
			"dir", dir, "ballast", size, "free", d.free.Load(), "watermark", d.watermark.Load())
		d.check()
	}
	if need := p.Badger.openRoom(); d.free.Load() < need {
		return nil, fmt.Errorf("%w: %s has %d bytes free, and the store needs %d to open; free some space", ErrDiskFull, dir, d.free.Load(), need)
	}
	if d.full.Load() {
		d.log.Warn("the disk is nearly full: the store refuses writes until space is freed",
			"dir", dir, "free", d.free.Load(), "watermark", d.watermark.Load())
	}
	return d, nil
}

func (d *disk) ballastPath() string { return filepath.Join(d.dir, BallastFile) }

// check reads the free space and sets free, total, watermark and full.
// It returns false if the filesystem cannot be asked.
func (d *disk) check() bool {
	free, total, err := d.statfs(d.dir)
	if err != nil {
		if !d.statfsFailed.Swap(true) {
			d.log.Warn("cannot read the free space of the store's filesystem; writes are not checked against it", "dir", d.dir, "err", err)
		}
		d.full.Store(false)
		return false
	}
	d.statfsFailed.Store(false)
	w := int64(-1)
	if d.p.MinFreeBytes > 0 {
		w = d.p.MinFreeBytes
	}
	if d.p.MinFreePercent > 0 {
		if pct := int64(d.p.MinFreePercent / 100 * float64(total)); w < 0 || pct < w {
			w = pct
		}
	}
	w = max(w, d.headroom)
	d.free.Store(free)
	d.total.Store(total)
	d.watermark.Store(w)
	// Full: the largest Put would cross the watermark (so the state does
	// not flicker between a refusing writer and a check that finds a few
	// bytes above it).
	d.full.Store(free < w+d.maxPut)
	return true
}

// refused is the error of a Put refused for lack of space.
func (d *disk) refused() error {
	return fmt.Errorf("%w: %d bytes free on the store's filesystem, writes are refused below %d (free some space; the store resumes by itself)",
		ErrDiskFull, d.free.Load(), d.watermark.Load())
}

// refuse reports whether Puts are refused now (nil d: an in-memory store).
func (d *disk) refuse() bool { return d != nil && d.full.Load() }

// beginBatch checks the filesystem before a group commit and sets the
// room the batch may write into. Writer goroutine only.
func (d *disk) beginBatch() {
	if d == nil {
		return
	}
	if !d.check() {
		d.room = 1 << 62
		return
	}
	d.room = d.free.Load() - d.watermark.Load()
}

// take reserves room for one Put of size bytes in the batch being built.
// Writer goroutine only.
func (d *disk) take(size int) bool {
	if d == nil {
		return true
	}
	need := int64(size + putOverhead)
	if d.room < need {
		d.full.Store(true)
		return false
	}
	d.room -= need
	return true
}

// gcFits reports whether a value-log GC rewrite (at most the live part of
// one file) fits above the watermark.
func (d *disk) gcFits(p Params) bool {
	if d == nil || !d.check() {
		return true
	}
	rewrite := int64(float64(p.Badger.ValueLogFileSize) * (1 - p.GCDiscardRatio))
	return d.free.Load()-rewrite >= d.watermark.Load()
}

// loop checks the free space every CheckInterval: it logs each change
// between full and not full, and puts the ballast back once it fits.
func (d *disk) loop(ctx context.Context) {
	t := time.NewTicker(d.p.CheckInterval)
	defer t.Stop()
	wasFull := d.full.Load()
	for {
		if d.check() {
			full := d.full.Load()
			switch {
			case full && !wasFull:
				d.log.Warn("the disk is nearly full: refusing writes until space is freed (reads go on)",
					"dir", d.dir, "free", d.free.Load(), "watermark", d.watermark.Load())
			case !full && wasFull:
				d.log.Info("disk space is available again: accepting writes", "dir", d.dir, "free", d.free.Load())
			}
			wasFull = full
			d.keepBallast()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// keepBallast creates the ballast when it is missing (or short) and fits
// above the watermark, and gives it up when the disk is so full that
// Badger's own housekeeping may not fit (something else filled it).
func (d *disk) keepBallast() {
	size, have := d.p.BallastBytes, d.ballast.Load()
	free, w := d.free.Load(), d.watermark.Load()
	switch {
	case have > 0 && free < d.headroom:
		if err := d.releaseBallast(); err != nil {
			d.log.Error("could not release the emergency ballast", "err", err)
			return
		}
		d.log.Warn("the disk is almost out of space: released the emergency ballast for the store's housekeeping",
			"dir", d.dir, "ballast", have, "free", free)
	case size > 0 && have < size && free-(size-have) >= w:
		if err := d.writeBallast(size); err != nil {
			d.log.Warn("could not create the emergency ballast; trying again later", "path", d.ballastPath(), "err", err)
			return
		}
		d.check()
	}
}

// writeBallast writes the ballast with allocated blocks (fallocate, or
// zeros written; a sparse file would reserve nothing) and syncs it.
func (d *disk) writeBallast(size int64) (err error) {
	tmp := d.ballastPath() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if !allocate(f, size) {
		buf := make([]byte, 1<<20)
		for left := size; left > 0; {
			n := min(left, int64(len(buf)))
			if _, err := f.Write(buf[:n]); err != nil {
				return err
			}
			left -= n
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, d.ballastPath()); err != nil {
		return err
	}
	d.ballast.Store(size)
	return nil
}

func (d *disk) releaseBallast() error {
	if err := os.Remove(d.ballastPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: removing the emergency ballast: %w", err)
	}
	d.ballast.Store(0)
	return nil
}

// beforeClose gives up the ballast if Badger's flush at close may not fit.
func (d *disk) beforeClose(p Params) {
	if d == nil || !d.check() || d.ballast.Load() == 0 || d.free.Load() >= p.Badger.openRoom() {
		return
	}
	if err := d.releaseBallast(); err != nil {
		d.log.Error("could not release the emergency ballast", "err", err)
		return
	}
	d.log.Warn("the disk is almost out of space: released the emergency ballast so the store can close cleanly", "dir", d.dir)
}

func (d *disk) status() DiskStatus {
	if d == nil {
		return DiskStatus{}
	}
	return DiskStatus{Free: d.free.Load(), Total: d.total.Load(), Watermark: d.watermark.Load(),
		Full: d.full.Load(), Ballast: d.ballast.Load()}
}

// collectors are the disk gauges.
func (d *disk) collectors() []prometheus.Collector {
	const ns, sub = "meshnode", "store"
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "disk_free_bytes",
			Help: "Free bytes on the store's filesystem at the last check."}, func() float64 { return float64(d.free.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "disk_watermark_bytes",
			Help: "Free bytes below which the store refuses writes."}, func() float64 { return float64(d.watermark.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "disk_full",
			Help: "1 while the store refuses writes for lack of disk space."}, func() float64 { return b2f(d.full.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "disk_ballast_bytes",
			Help: "Size of the emergency ballast file held."}, func() float64 { return float64(d.ballast.Load()) }),
	}
}

// Disk describes the free space of the store's filesystem (zero for an
// in-memory store).
func (s *Store) Disk() DiskStatus { return s.disk.status() }

// CheckSpace returns ErrDiskFull, with the figures, while the store
// refuses writes for lack of disk space, and nil otherwise. Callers about
// to write something that will end up here check it first (a member's
// send records the message before it stores the envelope).
func (s *Store) CheckSpace() error {
	if s.disk.refuse() {
		return s.disk.refused()
	}
	return nil
}
