package lsm

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

const memTable = 1 << 20

func open(t *testing.T) *badger.DB {
	t.Helper()
	o := badger.DefaultOptions("").WithInMemory(true).WithLogger(nil).
		WithMemTableSize(memTable).WithNumMemtables(2).WithNumVersionsToKeep(1).
		WithCompression(options.None).WithBaseTableSize(256 << 10).WithValueThreshold(64 << 10)
	db, err := badger.Open(Options(o, 3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// value is 1,000 incompressible bytes that differ per key and round.
func value(k, round int) []byte {
	seed := sha256.Sum256(fmt.Appendf(nil, "%d/%d", k, round))
	return bytes.Repeat(seed[:], 32)[:1000]
}

// write writes rounds × 2,000 keys of 1 KB (each round overwrites the
// previous one's keys), reporting every commit to c (nil: to nobody).
func write(t *testing.T, db *badger.DB, c *Compactor, rounds int) {
	t.Helper()
	for r := range rounds {
		for batch := range 20 {
			n := 0
			err := db.Update(func(txn *badger.Txn) error {
				for k := batch * 100; k < (batch+1)*100; k++ {
					v := value(k, r)
					if err := txn.Set(fmt.Appendf(nil, "k%05d", k), v); err != nil {
						return err
					}
					n += len(v) + 6
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			c.Wrote(int64(n))
		}
	}
}

func level0(db *badger.DB) int { return db.Levels()[0].NumTables }

func TestWithoutCompactorLevel0Grows(t *testing.T) {
	// The control: with no compactor goroutine and nobody compacting,
	// level 0 keeps every flushed memtable (the Compactor is what stops
	// that), and writes never stall.
	db := open(t)
	write(t, db, nil, 10)
	if n := level0(db); n < 10 {
		t.Fatalf("level 0 holds %d tables after 20 MB of writes without compaction; want at least 10", n)
	}
	if size := db.Levels()[0].Size; size < 15<<20 {
		t.Fatalf("level 0 holds %d bytes after 20 MB of writes without compaction; want at least 15 MiB", size)
	}
}

func TestCompactorKeepsLevel0Small(t *testing.T) {
	db := open(t)
	c := New(db, 3, memTable, nil)
	write(t, db, c, 10)
	if c.compactions.Load() == 0 {
		t.Fatal("no compaction started while writing")
	}
	// Flushes that completed during the last compaction may have left
	// level 0 at the limit again: the next look compacts them.
	for range 10 {
		c.Check()
		c.done.Wait()
		if level0(db) < 3 {
			break
		}
	}
	c.Close()
	// Up to NumMemtables flushes may still land after the last look.
	if n := level0(db); n >= 3+2 {
		t.Errorf("level 0 holds %d tables; want fewer than 5", n)
	}
	// Compaction keeps the latest version of every key.
	err := db.View(func(txn *badger.Txn) error {
		for k := range 2000 {
			it, err := txn.Get(fmt.Appendf(nil, "k%05d", k))
			if err != nil {
				return fmt.Errorf("key %d: %w", k, err)
			}
			v, err := it.ValueCopy(nil)
			if err != nil {
				return err
			}
			if !bytes.Equal(v, value(k, 9)) {
				return fmt.Errorf("key %d: an old version after compaction", k)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Overwritten versions are dropped: the tables hold about one round.
	var size int64
	for _, l := range db.Levels() {
		size += l.Size
	}
	t.Logf("%d compactions; level 0: %d tables; %d bytes in tables", c.compactions.Load(), level0(db), size)
	if size > 10<<20 {
		t.Errorf("tables hold %d bytes for 2 MB of live data: old versions were kept", size)
	}
}

func TestCloseWaitsForCompaction(t *testing.T) {
	db := open(t)
	c := New(db, 1, memTable, nil)
	write(t, db, c, 3)
	c.Check()
	c.Close()
	c.Check() // after Close: starts nothing
	n := c.compactions.Load()
	write(t, db, c, 2)
	if c.compactions.Load() != n {
		t.Error("a compaction started after Close")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestNilCompactor(t *testing.T) {
	var c *Compactor
	c.Wrote(1 << 30)
	c.Check()
	c.Close()
}
