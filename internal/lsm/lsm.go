// Package lsm compacts in-memory Badger databases on demand instead of
// by polling.
//
// Badger's compactors are goroutines that each wake every 50 ms to look
// for work (levels.go, runCompactor), whether or not anything was
// written: two per database, two databases per node (host store and
// member database), that is 80 wake-ups a second per idle node. A
// simulator of 2,000 nodes in one process spent both cores of the
// development machine on them before any message was sent. An in-memory
// database lives for one test or one simulation and is written in short
// bursts, so it runs with no compactor (Badger allows NumCompactors 0;
// only 1 is refused) and a Compactor compacts it when its writers have
// added enough tables to level 0.
//
// # Flow
//
// Writers report the bytes they committed (Wrote). Once a memtable's
// worth has been written since the last look, the Compactor reads level
// 0's table count; at Tables or more it starts one background compaction
// (DB.Flatten, which merges level 0 into the base level and drops
// overwritten and deleted versions), never two at a time. Close waits for
// a running compaction, and must be called before the database is closed.
//
// The stall limit (Badger's NumLevelZeroTablesStall, at which memtable
// flushes and then writes wait for compaction) is set far above Tables
// (Options): a writer that under-reports can make level 0 grow, which
// costs reads, but never stop writes with nothing running to unblock
// them.
//
// Measured (500 members, 2 hosts, 25 groups of 20, server strategy, 30 s
// warm-up, 2 shared cores): the idle warm-up costs about 6-15% of a core
// instead of 35-60%, and the whole run 30-33 s of CPU instead of 45-51 s
// (commit message of this paragraph: commands and load averages).
package lsm

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
)

const (
	// DefaultTables is the level-0 table count that starts a compaction
	// (Badger's NumLevelZeroTables default).
	DefaultTables = 5
	// StallTables is the level-0 table count at which Badger stalls
	// flushes. It is a backstop only: far above DefaultTables, so that a
	// compaction has long started before it could be reached.
	StallTables = 1 << 16
)

// Options sets what a Badger database compacted by a Compactor needs: no
// compactor goroutines, and level-0 limits that make compaction the
// Compactor's decision.
func Options(o badger.Options, tables int) badger.Options {
	return o.WithNumCompactors(0).
		WithNumLevelZeroTables(tables).
		WithNumLevelZeroTablesStall(StallTables)
}

// Compactor compacts one database opened with Options.
type Compactor struct {
	db     *badger.DB
	tables int
	every  int64
	log    *slog.Logger

	written atomic.Int64 // bytes since the last look at level 0

	mu      sync.Mutex
	running bool
	closed  bool
	done    sync.WaitGroup

	// compactions counts compactions started (tests).
	compactions atomic.Int64
}

// New returns a Compactor that looks at level 0 once every memTable
// bytes written (Badger's MemTableSize: a flush adds at most one table
// per memtable) and compacts at tables level-0 tables. A nil log drops
// compaction errors silently; they are never fatal (the next look
// retries).
func New(db *badger.DB, tables int, memTable int64, log *slog.Logger) *Compactor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Compactor{db: db, tables: max(tables, 1), every: max(memTable/2, 1), log: log}
}

// Wrote notes that n bytes were committed and, every memtable's worth,
// looks at level 0. It never blocks on a compaction.
func (c *Compactor) Wrote(n int64) {
	if c == nil || n <= 0 {
		return
	}
	if c.written.Add(n) < c.every {
		return
	}
	c.written.Store(0)
	c.Check()
}

// Check looks at level 0 now and starts a compaction if it holds Tables
// or more tables and none is running.
func (c *Compactor) Check() {
	if c == nil || c.level0() < c.tables {
		return
	}
	c.mu.Lock()
	if c.running || c.closed {
		c.mu.Unlock()
		return
	}
	c.running = true
	c.done.Add(1)
	c.mu.Unlock()
	c.compactions.Add(1)
	go func() {
		defer c.done.Done()
		// Flatten compacts until every table is on one level; writes go on
		// meanwhile and flushes are never stalled (StallTables).
		if err := c.db.Flatten(1); err != nil {
			c.log.Warn("compacting an in-memory database failed; retried after the next writes", "err", err)
		}
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
	}()
}

// level0 is the number of tables in level 0.
func (c *Compactor) level0() int {
	// Levels costs the same at any size (Tables would list every table);
	// it is what each of Badger's compactors computes 20 times a second.
	return c.db.Levels()[0].NumTables
}

// Close stops starting compactions and waits for a running one. Call it
// before closing the database.
func (c *Compactor) Close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.done.Wait()
}
