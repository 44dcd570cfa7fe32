package store

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/meshnode/meshnode/internal/lsm"
)

// badgerOptions translates Params into Badger options. The reasons for the
// sizes are in DefaultParams and InMemoryParams; the fixed choices are here.
func badgerOptions(dir string, p Params, log *slog.Logger) badger.Options {
	b := p.Badger
	var o badger.Options
	if p.InMemory {
		o = badger.DefaultOptions("").WithInMemory(true)
	} else {
		o = badger.DefaultOptions(dir)
	}
	o = o.
		// Acknowledge only what is on stable storage: every commit fsyncs
		// the value log and the memtable WAL before Commit returns. Group
		// commit (one writer, many Puts per transaction) pays for it.
		WithSyncWrites(!p.InMemory).
		// One writer goroutine owns all writes, so there is nothing to
		// detect; this saves tracking read keys in every transaction.
		WithDetectConflicts(false).
		// Envelopes are immutable; no history needed.
		WithNumVersionsToKeep(1).
		// Compact L0 when closing: a restarted host starts with no L0
		// backlog, and the compaction records which value-log files hold
		// garbage (evicted envelopes), so the first GC after a restart
		// can reclaim them.
		WithCompactL0OnClose(!p.InMemory).
		// Ciphertext does not compress; don't spend the CPU.
		WithCompression(options.None).
		WithMemTableSize(b.MemTableSize).
		WithNumMemtables(b.NumMemtables).
		WithValueThreshold(b.ValueThreshold).
		WithBlockCacheSize(b.BlockCacheSize).
		WithIndexCacheSize(b.IndexCacheSize).
		WithNumCompactors(b.NumCompactors).
		WithNumLevelZeroTables(b.NumLevelZeroTables).
		WithNumLevelZeroTablesStall(b.NumLevelZeroTablesStall).
		WithValueLogFileSize(b.ValueLogFileSize).
		WithBaseTableSize(b.BaseTableSize).
		// Badger's expvar metrics are process-global and keyed by
		// directory; with hundreds of stores per process they only cost.
		// The store exports its own Prometheus metrics.
		WithMetricsEnabled(false).
		// Goroutines for Stream framework (unused by us): keep small.
		WithNumGoroutines(2).
		WithLogger(badgerLogger{log}).
		WithLoggingLevel(badger.WARNING)
	if b.NumCompactors == 0 {
		// The writer compacts on demand (newCompactor).
		o = lsm.Options(o, b.NumLevelZeroTables)
	}
	return o
}

// newCompactor is the on-demand compactor of a store without Badger
// compactors (nil otherwise; a nil Compactor does nothing).
func newCompactor(db *badger.DB, p Params, log *slog.Logger) *lsm.Compactor {
	if p.Badger.NumCompactors != 0 {
		return nil
	}
	return lsm.New(db, p.Badger.NumLevelZeroTables, p.Badger.MemTableSize, log)
}

// badgerLogger routes Badger's log lines to slog. Only warnings and errors
// pass: Badger's info lines (compactions, flushes) are too chatty for an
// operator's log.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) log(level slog.Level, format string, args ...any) {
	if !b.l.Enabled(context.Background(), level) {
		return
	}
	b.l.Log(context.Background(), level, "badger: "+strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func (b badgerLogger) Errorf(f string, a ...any)   { b.log(slog.LevelError, f, a...) }
func (b badgerLogger) Warningf(f string, a ...any) { b.log(slog.LevelWarn, f, a...) }
func (b badgerLogger) Infof(string, ...any)        {}
func (b badgerLogger) Debugf(string, ...any)       {}
