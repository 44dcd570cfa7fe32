package store

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnode/meshnode/envelope"
)

// Option configures a Store beyond its Params.
type Option func(*config) error

type config struct {
	logger *slog.Logger
	reg    prometheus.Registerer
	now    func() time.Time
}

// WithLogger sets the logger (default slog.Default()). Badger's own log
// lines are routed to it at warning level and above.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidParams)
		}
		c.logger = l
		return nil
	}
}

// WithRegisterer registers the store's Prometheus metrics with r. Without
// it the metrics are kept but not registered.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(c *config) error {
		if r == nil {
			return fmt.Errorf("%w: nil registerer", ErrInvalidParams)
		}
		c.reg = r
		return nil
	}
}

// WithClock replaces time.Now for arrival times, retention and tombstone
// expiry (tests drive retention with a fake clock).
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", ErrInvalidParams)
		}
		c.now = now
		return nil
	}
}

// MailboxPolicy is the retention and quota policy of a mailbox. A zero
// field means "no limit".
//
// Retention limits (MaxAge, MaxBytes, MaxCount) are targets enforced by the
// retention job, which evicts the oldest envelopes until the mailbox is
// within them. Quotas (QuotaBytes, QuotaCount) are hard: a Put that would
// exceed one is rejected with ErrQuotaExceeded. A quota therefore has to be
// at least the matching retention limit, and should leave room for what
// arrives between two retention passes.
type MailboxPolicy struct {
	MaxAge     time.Duration
	MaxBytes   int64
	MaxCount   int64
	QuotaBytes int64
	QuotaCount int64
}

func (p MailboxPolicy) validate() error {
	switch {
	case p.MaxAge < 0, p.MaxBytes < 0, p.MaxCount < 0, p.QuotaBytes < 0, p.QuotaCount < 0:
		return fmt.Errorf("%w: negative limit in policy %+v (0 means no limit)", ErrInvalidParams, p)
	case p.QuotaBytes > 0 && p.MaxBytes > p.QuotaBytes:
		return fmt.Errorf("%w: byte quota %d below byte retention limit %d", ErrInvalidParams, p.QuotaBytes, p.MaxBytes)
	case p.QuotaCount > 0 && p.MaxCount > p.QuotaCount:
		return fmt.Errorf("%w: count quota %d below count retention limit %d", ErrInvalidParams, p.QuotaCount, p.MaxCount)
	}
	return nil
}

// BadgerParams sizes the Badger instance. DefaultParams and InMemoryParams
// explain each choice; doc.go summarises them.
type BadgerParams struct {
	// MemTableSize is the size of one memtable. Badger also caps one
	// transaction at 15% of it.
	MemTableSize int64
	// NumMemtables is how many memtables may exist (one mutable, the rest
	// waiting to be flushed).
	NumMemtables int
	// ValueThreshold: values at least this long go to the value log, shorter
	// ones stay in the LSM tree.
	ValueThreshold int64
	// BlockCacheSize caches decompressed/decrypted blocks. We use neither
	// compression nor encryption, so 0 (reads go through mmap and the OS
	// page cache) is right.
	BlockCacheSize int64
	// IndexCacheSize bounds memory for table indexes and bloom filters; 0
	// keeps all of them in memory.
	IndexCacheSize int64
	// NumCompactors is the number of Badger's compaction goroutines: at
	// least 2 (Badger refuses 1), or, for an in-memory store only, 0: the
	// store then compacts on demand (package internal/lsm) when its writes
	// have put NumLevelZeroTables tables in level 0, instead of having
	// compactors poll every 50 ms (InMemoryParams).
	NumCompactors int
	// NumLevelZeroTables and NumLevelZeroTablesStall: L0 tables before
	// compaction starts, and before writes stall.
	NumLevelZeroTables      int
	NumLevelZeroTablesStall int
	// ValueLogFileSize is the size of one value-log file (unit of value-log GC).
	ValueLogFileSize int64
	// BaseTableSize is the size of an L0/L1 SSTable.
	BaseTableSize int64
}

// Params are the store's tunables. Start from DefaultParams (disk) or
// InMemoryParams (tests, simulator) and change what you need.
type Params struct {
	// InMemory keeps everything in memory (Open ignores dir). Nothing
	// survives Close.
	InMemory bool
	// MaxEnvelopeSize is the largest envelope encoding Put accepts.
	MaxEnvelopeSize int
	// Default is the policy of every mailbox without an override (SetPolicy).
	Default MailboxPolicy
	// GlobalQuotaBytes caps the envelope bytes of the whole store (0: none).
	GlobalQuotaBytes int64
	// Admission protects established mailboxes from new ones (budgets of
	// new mailboxes, a reserved share of GlobalQuotaBytes, eviction of the
	// newest first): admission.go.
	Admission AdmissionParams
	// TombstoneTTL is how long a tombstone of an evicted envelope blocks its
	// re-insertion and is reported by RangeIDs. 0 means 2×Default.MaxAge, or
	// 7 days when there is no MaxAge.
	TombstoneTTL time.Duration
	// RetentionInterval is the period of the background retention pass (0
	// disables it; EnforceRetention still works).
	RetentionInterval time.Duration
	// RetentionChunk is the most envelopes or tombstones one retention
	// transaction removes, so Puts interleave with a long eviction.
	RetentionChunk int
	// GCInterval is the period of value-log GC (0 disables it; in-memory
	// stores have no value log).
	GCInterval time.Duration
	// GCDiscardRatio: a value-log file is rewritten when at least this
	// fraction of it is garbage. In (0, 1).
	GCDiscardRatio float64
	// MaxBatchCount and MaxBatchBytes bound one group commit.
	MaxBatchCount int
	MaxBatchBytes int
	// SubscriberBuffer is the channel capacity of Subscribe.
	SubscriberBuffer int
	// Badger sizes the underlying Badger instance.
	Badger BadgerParams
	// Disk are the free-space limits of an on-disk store (diskspace.go).
	Disk DiskParams
}

// DefaultParams are for a host storing on disk, sized for a small machine
// (2 cores, a few hundred MiB of RAM for the store).
func DefaultParams() Params {
	return Params{
		MaxEnvelopeSize: envelope.DefaultMaxSize,
		Default: MailboxPolicy{
			MaxAge:     30 * 24 * time.Hour,
			MaxBytes:   256 << 20,
			QuotaBytes: 512 << 20,
		},
		GlobalQuotaBytes:  8 << 30,
		Admission:         DefaultAdmissionParams(),
		RetentionInterval: time.Minute,
		RetentionChunk:    256,
		GCInterval:        10 * time.Minute,
		GCDiscardRatio:    0.5,
		MaxBatchCount:     512,
		MaxBatchBytes:     4 << 20,
		SubscriberBuffer:  64,
		Disk:              DefaultDiskParams(),
		Badger: BadgerParams{
			// 16 MiB memtables: with envelopes in the value log a memtable
			// holds only keys, value pointers and small index records
			// (~150 bytes per envelope), i.e. ~100k envelopes, and caps one
			// transaction at 2.4 MiB of such entries.
			MemTableSize: 16 << 20,
			// One mutable memtable and two being flushed: enough to absorb a
			// burst while L0 flushes, 48 MiB at most.
			NumMemtables: 3,
			// Envelopes are padded ciphertexts of ~1 KiB and up. Anything of
			// 512 bytes or more (every arrival record) goes to the value
			// log, so compaction on a 2-core machine moves only keys and
			// 20-byte index records, not the envelopes; the price is a
			// second fsync per commit (value log and WAL) and value-log GC
			// after retention.
			ValueThreshold: 512,
			// Ciphertext does not compress, so compression is off and a
			// block cache would only copy what the page cache already holds.
			BlockCacheSize: 0,
			// Bound bloom filters and table indexes so a large store does not
			// pin them all in RAM.
			IndexCacheSize: 32 << 20,
			// Two compactors (the minimum Badger accepts; one prioritises
			// L0) so compaction takes at most the machine's two cores.
			NumCompactors:           2,
			NumLevelZeroTables:      5,
			NumLevelZeroTablesStall: 15,
			// 256 MiB value-log files: GC rewrites one file at a time, so
			// smaller files mean shorter GC pauses and faster reclamation.
			ValueLogFileSize: 256 << 20,
			BaseTableSize:    2 << 20,
		},
	}
}

// InMemoryParams are for tests and the simulator, where hundreds of stores
// share one process: small memtables and no caches. doc.go lists the memory
// measured per store.
func InMemoryParams() Params {
	p := DefaultParams()
	p.InMemory = true
	p.GCInterval = 0
	p.MaxBatchBytes = 128 << 10
	p.Badger = BadgerParams{
		// 1 MiB memtables (the minimum we accept): Badger allocates each
		// memtable's skiplist arena up front as one Go slice of
		// MemTableSize + 2×15% (1.3 MiB), which dominates a small store's
		// heap. 15% of it (150 KiB) bounds one transaction, which still
		// fits a largest (64 KiB) envelope.
		MemTableSize: 1 << 20,
		NumMemtables: 2,
		// In memory Badger keeps every value in the LSM tree but still
		// refuses values above ValueThreshold, so it must exceed the largest
		// arrival record (and stay within 15% of MemTableSize).
		ValueThreshold: 128 << 10,
		BlockCacheSize: 0,
		IndexCacheSize: 0,
		// No compactor goroutines: each of Badger's wakes every 50 ms,
		// written to or not, and a simulator runs thousands of stores in
		// one process (two compactors per store were 40 wake-ups a second
		// per store, most of an idle 2,000-node simulation's CPU). The
		// writer compacts on demand instead (lsm.Compactor), at
		// NumLevelZeroTables tables in level 0.
		NumCompactors:           0,
		NumLevelZeroTables:      5,
		NumLevelZeroTablesStall: 15,
		ValueLogFileSize:        1 << 20, // unused in memory, but Badger checks the range
		BaseTableSize:           512 << 10,
	}
	return p
}

// tombstoneTTL is the effective TombstoneTTL.
func (p Params) tombstoneTTL() time.Duration {
	switch {
	case p.TombstoneTTL > 0:
		return p.TombstoneTTL
	case p.Default.MaxAge > 0:
		return 2 * p.Default.MaxAge
	}
	return 7 * 24 * time.Hour
}

// badgerMaxBatch is Badger's cap on one transaction (15% of a memtable).
func (b BadgerParams) maxBatch() int64 { return 15 * b.MemTableSize / 100 }

func (p Params) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidParams}, args...)...)
	}
	b := p.Badger
	switch {
	case p.MaxEnvelopeSize <= envelope.Overhead || p.MaxEnvelopeSize > envelope.AbsoluteMaxSize:
		return bad("MaxEnvelopeSize %d outside (%d, %d]", p.MaxEnvelopeSize, envelope.Overhead, envelope.AbsoluteMaxSize)
	case p.GlobalQuotaBytes < 0:
		return bad("GlobalQuotaBytes %d is negative (0 means no quota)", p.GlobalQuotaBytes)
	case p.TombstoneTTL < 0:
		return bad("TombstoneTTL %v is negative (0 means the default)", p.TombstoneTTL)
	case p.RetentionInterval < 0, p.GCInterval < 0:
		return bad("negative RetentionInterval %v or GCInterval %v (0 disables the job)", p.RetentionInterval, p.GCInterval)
	case p.RetentionChunk < 1:
		return bad("RetentionChunk %d must be at least 1", p.RetentionChunk)
	case p.GCDiscardRatio <= 0 || p.GCDiscardRatio >= 1:
		return bad("GCDiscardRatio %v outside (0, 1)", p.GCDiscardRatio)
	case p.MaxBatchCount < 1:
		return bad("MaxBatchCount %d must be at least 1", p.MaxBatchCount)
	case p.MaxBatchBytes < p.MaxEnvelopeSize:
		return bad("MaxBatchBytes %d below MaxEnvelopeSize %d", p.MaxBatchBytes, p.MaxEnvelopeSize)
	case p.SubscriberBuffer < 1:
		return bad("SubscriberBuffer %d must be at least 1", p.SubscriberBuffer)
	case b.MemTableSize < 1<<20:
		return bad("Badger.MemTableSize %d below 1 MiB", b.MemTableSize)
	case b.NumMemtables < 1:
		return bad("Badger.NumMemtables %d must be at least 1", b.NumMemtables)
	case b.NumCompactors == 0 && !p.InMemory:
		return bad("Badger.NumCompactors 0 is for in-memory stores (compacted on demand); an on-disk store needs at least 2")
	case b.NumCompactors == 1 || b.NumCompactors < 0:
		return bad("Badger.NumCompactors %d: Badger needs at least 2 (or 0 in memory)", b.NumCompactors)
	case b.ValueThreshold < 1 || b.ValueThreshold > 1<<20 || b.ValueThreshold > b.maxBatch():
		return bad("Badger.ValueThreshold %d outside [1, min(1 MiB, 15%% of MemTableSize = %d)]", b.ValueThreshold, b.maxBatch())
	case b.BlockCacheSize < 0, b.IndexCacheSize < 0:
		return bad("negative Badger cache size")
	case b.NumLevelZeroTables < 1 || b.NumLevelZeroTablesStall <= b.NumLevelZeroTables:
		return bad("Badger.NumLevelZeroTables %d must be at least 1 and below NumLevelZeroTablesStall %d", b.NumLevelZeroTables, b.NumLevelZeroTablesStall)
	case b.ValueLogFileSize < 1<<20 || b.ValueLogFileSize >= 2<<30:
		return bad("Badger.ValueLogFileSize %d outside [1 MiB, 2 GiB)", b.ValueLogFileSize)
	case b.BaseTableSize < 64<<10:
		return bad("Badger.BaseTableSize %d below 64 KiB", b.BaseTableSize)
	}
	if p.InMemory && b.ValueThreshold < int64(p.MaxEnvelopeSize+arrivalHeaderSize) {
		return bad("in memory Badger refuses values above Badger.ValueThreshold %d; it must be at least MaxEnvelopeSize+%d = %d",
			b.ValueThreshold, arrivalHeaderSize, p.MaxEnvelopeSize+arrivalHeaderSize)
	}
	// A single Put must always fit in one transaction. Values below the
	// threshold (all of them in memory) count in full.
	if p.InMemory || int64(p.MaxEnvelopeSize+arrivalHeaderSize) < b.ValueThreshold {
		if need := int64(p.MaxEnvelopeSize + 1024); need > b.maxBatch() {
			return bad("MaxEnvelopeSize %d does not fit one Badger transaction (15%% of MemTableSize = %d); raise Badger.MemTableSize", p.MaxEnvelopeSize, b.maxBatch())
		}
	}
	if err := p.Default.validate(); err != nil {
		return fmt.Errorf("Params.Default: %w", err)
	}
	if err := p.Admission.validate(); err != nil {
		return err
	}
	if !p.InMemory {
		return p.Disk.validate()
	}
	return nil
}
