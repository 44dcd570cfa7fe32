// Package store is the envelope store of every meshnode host: a Badger
// database holding, per mailbox, the opaque envelopes the host was given,
// in arrival order and by envelope ID, with retention, quotas and
// tombstones. It knows nothing of groups or secrets; it sees only
// *envelope.Envelope values and their mailbox tags.
//
// # Flow
//
// Reads (Has, Get, Page, Stats, Mailboxes, RangeIDs) run on Badger read
// snapshots, concurrently with everything else. Badger makes a read begun
// while a commit is in progress wait until that commit is fsynced, so the
// write path avoids them: Put looks for a duplicate itself only while no
// commit is in progress (otherwise the writer finds it), or a busy host's
// Puts would each wait out a commit before queueing and miss the next
// batch too. Pages read values straight from the value log's memory map
// (no prefetching, which would copy each value once more).
//
// Writes (Put, SetPolicy, retention) go to one writer goroutine that owns
// every write and the in-memory copy of the mailbox states:
//
//	Put ──► ops channel ──► writer: take one op, drain what else is queued
//	                        (≤ MaxBatchCount ops, ≤ MaxBatchBytes)
//	                        one Badger transaction for all of them:
//	                          dedupe (ID index, also within the batch)
//	                          tombstone check, quota checks
//	                          arrival record + ID index + mailbox state
//	                        Commit (SyncWrites: value log and WAL fsynced)
//	        ◄── answer ──── then answer every op, notify subscribers
//
// This is group commit. An fsync costs the same for one envelope as for
// hundreds, so while the writer commits one batch the next one queues up,
// and the batch size follows the load with no timer and no added latency
// for a lone Put. A single writer also means sequence numbers are assigned
// in commit order with no gaps and no locks, conflict detection can be off,
// and a snapshot always sees a prefix of each mailbox's sequence (which is
// what makes paging lose and repeat nothing). Everything one envelope
// needs (arrival record, ID index, mailbox state) is in the same
// transaction, so a crash leaves all of it or none; Put returns only after
// the commit, so an acknowledged envelope survives a crash. If the commit
// fails, nothing of the batch was written and every op gets the error.
// Rejections (quota, tombstone, size) write nothing. Put does not verify
// the write signature (the relay and fetch layers do before they hand an
// envelope over); stored envelopes are hash-checked on every read. Quotas
// count envelope encodings only, not keys, indexes or tombstones.
//
// Retention (EnforceRetention, run every RetentionInterval) looks only at
// the mailboxes that are due (an in-memory schedule of when each could
// next have something to do, schedule.go, so a pass on a host of 100,000
// idle mailboxes reads nothing). It first checks a snapshot for those
// over MaxCount, MaxBytes or MaxAge, then has the
// writer evict the oldest envelopes, RetentionChunk per transaction: each
// eviction deletes the arrival record and ID index, writes a tombstone and
// moves the mailbox's floor. Tombstones live TombstoneTTL; while they do,
// Put of that ID is ErrExpired and RangeIDs reports the ID as known but not
// live, so set reconciliation does not resurrect what retention removed.
// Expired tombstones are purged by the same pass. Value-log GC runs every
// GCInterval (RunValueLogGC until ErrNoRewrite).
//
// # Invariant
//
// A mailbox's live envelopes are exactly the sequence numbers
// (floor, next-1]: sequence numbers are assigned without gaps (a rejected
// Put takes none) and retention removes oldest first. Hence count =
// next-1-floor, which the state decoder checks.
//
// # Cursors
//
// A cursor is opaque to callers. Version 1 is 21 bytes:
//
//	offset  size  field
//	0       1     version (0x01)
//	1       8     store-instance ID (random, drawn when the store was created)
//	9       8     seq: the last arrival sequence the holder has seen, big-endian
//	17      4     check: SHA-256("meshnode/v1/store-cursor" ‖ instance ‖ mailbox ‖ seq)[:4]
//
// An empty cursor means "from the beginning" (from the floor). Any other
// cursor must decode with this store's instance ID and the requested
// mailbox's check value, and have seq ≤ next-1; otherwise Page fails with
// ErrUnknownCursor (a cursor of another host, of a wiped store, of another
// mailbox, or garbled). A cursor with seq < floor fails with
// ErrExpiredCursor: envelopes after it were removed. A bad cursor is never
// treated as "from the beginning" or as "nothing more": nwaku's store
// answered an invalid cursor with results (waku-org/nwaku#2634) and a
// valid one with an empty page (#2745). The check is for detecting
// mistakes, not a MAC: cursors are not secrets and grant nothing.
//
// # Byte layout (schema version 1)
//
// All integers are big-endian; times are Unix nanoseconds (int64 as uint64).
// Keys start with a one-byte prefix; mailbox is the 32-byte tag, id the
// 32-byte envelope ID.
//
//	key                         value
//	"v"                         schema version: uint32 (1)
//	"n"                         meta: version(1)=1 ‖ instance(8) ‖ created(8)            17 bytes
//	"s" ‖ mailbox               mailbox state (below)                                    42 or 82 bytes
//	"m" ‖ mailbox ‖ seq(8)      arrival record: id(32) ‖ arrival(8) ‖ envelope encoding
//	"i" ‖ mailbox ‖ id          ID index: seq(8) ‖ arrival(8) ‖ size(4)                   20 bytes
//	"t" ‖ mailbox ‖ id          tombstone: expiry(8)                                       8 bytes
//	"x" ‖ mailbox ‖ level ‖ node  sync index: sum of IDs(32) ‖ count(8), levels 2 and 3    40 bytes
//	"X"                         sync index version: uint32 (1)
//	"a" ‖ mailbox               admission: version(1)=1 ‖ created(8) (admission.go)       9 bytes
//
// Mailbox state:
//
//	offset  size  field
//	0       1     version (0x01)
//	1       8     next: next arrival sequence to assign (first is 1)
//	9       8     count: live envelopes (= next-1-floor)
//	17      8     bytes: sum of live envelope encodings
//	25      8     floor: every seq ≤ floor was removed by retention
//	33      8     tombstones: tombstones held
//	41      1     flags: bit 0 = policy override follows; other bits zero
//	42      40    policy (only with bit 0): MaxAge ns ‖ MaxBytes ‖ MaxCount ‖ QuotaBytes ‖ QuotaCount (int64 each, ≥ 0)
//
// The sync index (syncindex.go) keeps, per mailbox, the sum and count of
// the IDs of the ID index and tombstones in each node of a trie of
// fan-out 16 at levels 2 and 3, updated in the same transaction as every
// Put and tombstone purge; SyncView reads it for set reconciliation.
//
// The arrival index serves Page (a prefix scan from floor+1 or the cursor)
// and retention (oldest first). The ID index serves dedupe, Has, Get and
// RangeIDs (keys sorted by ID within a mailbox). Tombstones serve the
// re-insert check and RangeIDs. The state record is rewritten in the same
// transaction as every change to its mailbox. State records are never
// deleted: next and floor must outlive the envelopes so old cursors keep
// meaning what they meant.
//
// Every decoder checks exact lengths and versions and returns ErrCorrupt
// (never panics); stored envelopes are re-decoded and must hash to the
// recorded ID. Each decoder has a Fuzz target.
//
// # Badger tuning
//
// See DefaultParams and InMemoryParams for the reasoning behind each
// size. In short: SyncWrites on disk (acknowledge only what is fsynced);
// DetectConflicts off (single writer); no compression (ciphertext) and so
// no block cache; 16 MiB × 3 memtables; ValueThreshold 512 bytes so
// envelopes live in the value log and compaction moves only keys and
// small index records; a 32 MiB index cache bounding bloom filters and
// table indexes; 2 compactors for a 2-core machine; 256 MiB value-log
// files; L0 compacted on Close; Badger's logger routed to slog at warning
// level; Badger's own expvar metrics off (the store exports Prometheus
// metrics instead).
//
// In memory (InMemoryParams): 1 MiB × 2 memtables, no caches, values in
// the LSM tree, and no compactor goroutines: Badger's poll every 50 ms
// whether or not anything was written (two per store were 40 wake-ups a
// second per store, most of an idle 2,000-node simulation's CPU), so the
// writer counts what it commits and, every half memtable, looks at level
// 0 and compacts it in the background (internal/lsm) once it holds
// NumLevelZeroTables tables. Badger allocates a memtable's skiplist arena (1.3 MiB)
// up front, which is most of a small store's footprint:
// BenchmarkInMemoryFootprint measures 1.46 MiB of Go heap per store
// holding 100 1-KiB envelopes (100 stores in one process), so a
// simulator with 300 nodes needs about 450 MiB for its stores.
//
// # Measured throughput
//
// 2-core VM (AMD Turin-class), go1.26.8, shared with other jobs, from
// go test ./store -run '^$' -bench . -benchtime 3000x:
//
//	BenchmarkPut/disk/writers=2     3.6 ms/put    1.0 puts/commit   (one fsync pair per Put)
//	BenchmarkPut/disk/writers=16    0.55 ms/put   6.3 puts/commit
//	BenchmarkPut/disk/writers=128   0.089 ms/put  62 puts/commit    (~11,000 durable Puts/s)
//	BenchmarkPut/memory/writers=16  25 µs/put     7.4 puts/commit
//	BenchmarkPage/disk              0.47 ms per page of 100 1-KiB envelopes (~215 MB/s)
//	BenchmarkPage/memory            0.42 ms per page of 100 1-KiB envelopes (~245 MB/s)
//
// A commit costs about 3 ms here (fsync of the value log and of the WAL;
// keeping envelopes in the LSM tree saved only ~20% of it in a trial, not
// worth the compaction cost), so durable throughput comes from group
// commit: it grows almost linearly with the number of concurrent Puts.
package store
