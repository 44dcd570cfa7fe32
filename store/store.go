package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
)

// Store is a durable envelope store: per mailbox, envelopes in arrival
// order and by ID, with retention, quotas and tombstones. It is safe for
// concurrent use. All writes go through one writer goroutine (writer.go);
// reads use Badger snapshots directly.
type Store struct {
	p    Params
	cfg  config
	log  *slog.Logger
	db   *badger.DB
	inst InstanceID
	m    *metrics
	w    *writer
	// disk watches the free space (nil in memory; diskspace.go).
	disk *disk
	adm  *admIndex // admission.go
	ret  *schedule // which mailboxes retention looks at (schedule.go)

	// mu guards closed; inflight counts public calls in progress so Close
	// can wait for them before it stops the writer and closes Badger.
	mu       sync.RWMutex
	closed   bool
	inflight sync.WaitGroup

	// Published by the writer after every commit.
	usageCount, usageBytes, usageTombstones, usageMailboxes atomic.Int64

	// subsMu guards subs and subsClosed. It is never held while calling
	// Badger or while holding mu (lock order: mu, then subsMu; never both
	// in practice).
	subsMu     sync.Mutex
	subs       map[envelope.MailboxID]map[*subscription]struct{}
	subsClosed bool

	bgCancel context.CancelFunc
	bg       sync.WaitGroup
}

// Result is the outcome of a successful Put.
type Result struct {
	// Seq is the envelope's arrival sequence number in its mailbox (for a
	// duplicate, the sequence number of the stored copy).
	Seq uint64
	// Duplicate reports that the envelope was already stored; nothing was
	// written.
	Duplicate bool
}

// Page is one page of a mailbox in arrival order.
type Page struct {
	Envelopes []*envelope.Envelope
	// Next is the cursor to resume from: it points after the last envelope
	// of this page (or where the request started, if the page is empty).
	Next Cursor
	// More reports that envelopes after Next existed when the page was read.
	More bool
}

// MailboxStats describes one mailbox.
type MailboxStats struct {
	Count      int64
	Bytes      int64
	FirstSeq   uint64 // sequence number of the oldest live envelope (0 if none)
	LastSeq    uint64 // last sequence number assigned (0 if none ever)
	Floor      uint64 // every sequence number <= Floor was removed by retention
	Tombstones int64
	Policy     MailboxPolicy // the effective policy
	Override   bool          // Policy was set with SetPolicy
}

// Usage is the store-wide total.
type Usage struct {
	Mailboxes  int64
	Count      int64
	Bytes      int64
	Tombstones int64
}

// Open opens (or creates) the store in dir. With p.InMemory, dir is
// ignored and nothing is persisted.
func Open(dir string, p Params, opts ...Option) (*Store, error) {
	cfg := config{logger: slog.Default(), now: time.Now}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	if !p.InMemory && dir == "" {
		return nil, fmt.Errorf("%w: empty directory for an on-disk store (set Params.InMemory for a memory store)", ErrInvalidParams)
	}
	log := cfg.logger.With("component", "store")
	var dk *disk
	if !p.InMemory {
		// Before Badger: on a full disk it would crash opening (diskspace.go).
		var err error
		if dk, err = openDisk(dir, p, log); err != nil {
			return nil, err
		}
	}
	db, err := badger.Open(badgerOptions(dir, p, log))
	if err != nil {
		return nil, fmt.Errorf("store: opening badger in %q: %w", dir, err)
	}
	s := &Store{p: p, cfg: cfg, log: log, db: db, disk: dk, subs: map[envelope.MailboxID]map[*subscription]struct{}{}}
	fail := func(err error) (*Store, error) {
		if cerr := db.Close(); cerr != nil {
			log.Warn("closing badger after failed open", "err", cerr)
		}
		return nil, err
	}
	if s.inst, err = initMeta(db, cfg.now()); err != nil {
		return fail(err)
	}
	states, err := loadStates(db)
	if err != nil {
		return fail(err)
	}
	if err := ensureSyncIndex(db, sortedMailboxes(states)); err != nil {
		return fail(err)
	}
	if s.adm, err = loadAdmission(db, states, p.Admission, cfg.now()); err != nil {
		return fail(err)
	}
	if s.m, err = newMetrics(cfg.reg, s.Usage); err != nil {
		return fail(err)
	}
	if dk != nil && cfg.reg != nil {
		for _, c := range dk.collectors() {
			if err := cfg.reg.Register(c); err != nil {
				return fail(fmt.Errorf("store: registering metrics: %w", err))
			}
		}
	}
	s.ret = newSchedule()
	for m, st := range states {
		if st.count > 0 || st.tombstones > 0 {
			s.ret.atMost(m, cfg.now().UnixNano())
		}
	}
	s.w = newWriter(s, states)
	go s.w.run()

	ctx, cancel := context.WithCancel(context.Background())
	s.bgCancel = cancel
	if p.RetentionInterval > 0 {
		s.bg.Add(1)
		go s.retentionLoop(ctx)
	}
	if p.GCInterval > 0 && !p.InMemory {
		s.bg.Add(1)
		go s.gcLoop(ctx)
	}
	if dk != nil {
		s.bg.Add(1)
		go func() { defer s.bg.Done(); dk.loop(ctx) }()
	}
	log.Debug("store open", "dir", dir, "in_memory", p.InMemory, "instance", s.inst.String(), "mailboxes", len(states))
	return s, nil
}

// initMeta checks the schema version and returns the instance ID, creating
// both in a fresh directory.
func initMeta(db *badger.DB, now time.Time) (InstanceID, error) {
	var inst InstanceID
	err := db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(keySchema)
		if errors.Is(err, badger.ErrKeyNotFound) {
			it := txn.NewIterator(badger.IteratorOptions{})
			it.Rewind()
			nonEmpty := it.Valid()
			it.Close()
			if nonEmpty {
				return fmt.Errorf("%w: the directory holds data but no schema record; it is not a meshnode store", ErrSchema)
			}
			// A random instance ID makes cursors of a wiped-and-recreated
			// store, or of another host, recognisably foreign.
			if _, err := rand.Read(inst[:]); err != nil {
				return err
			}
			if err := txn.Set(keySchema, encodeSchema(schemaVersion)); err != nil {
				return err
			}
			return txn.Set(keyMeta, encodeMeta(meta{instance: inst, created: now}))
		}
		if err != nil {
			return err
		}
		var v uint32
		if err := item.Value(func(b []byte) (err error) { v, err = decodeSchema(b); return err }); err != nil {
			return err
		}
		if v != schemaVersion {
			return fmt.Errorf("%w: schema version %d, this build reads %d", ErrSchema, v, schemaVersion)
		}
		item, err = txn.Get(keyMeta)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%w: meta record missing", ErrCorrupt)
		}
		if err != nil {
			return err
		}
		return item.Value(func(b []byte) error {
			m, err := decodeMeta(b)
			inst = m.instance
			return err
		})
	})
	if err != nil {
		return inst, fmt.Errorf("store: reading store meta: %w", err)
	}
	return inst, nil
}

func loadStates(db *badger.DB) (map[envelope.MailboxID]*mailboxState, error) {
	states := map[envelope.MailboxID]*mailboxState{}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 100, Prefix: []byte{prefixState}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			m, err := mailboxFromStateKey(it.Item().Key())
			if err != nil {
				return err
			}
			var st *mailboxState
			if err := it.Item().Value(func(b []byte) (err error) { st, err = decodeState(b); return err }); err != nil {
				return fmt.Errorf("mailbox %s: %w", m.Short(), err)
			}
			states[m] = st
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: loading mailbox states: %w", err)
	}
	return states, nil
}

// InstanceID returns the store's persistent random instance ID.
func (s *Store) InstanceID() InstanceID { return s.inst }

// Close stops the background jobs, waits for calls in progress, commits
// what the writer holds and closes Badger. It is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.bgCancel()
	s.bg.Wait()
	s.inflight.Wait()
	s.w.stopAndWait()
	s.closeSubscriptions()
	// Badger flushes its memtable as it closes: make room for that on a
	// disk something else filled (diskspace.go).
	s.disk.beforeClose(s.p)
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: closing badger: %w", err)
	}
	return nil
}

// enter registers a call in progress; every public method that touches
// Badger or the writer calls it first and leave when done.
func (s *Store) enter() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	s.inflight.Add(1)
	return nil
}

func (s *Store) leave() { s.inflight.Done() }

// Put stores env in its mailbox and returns once it is durably committed
// (fsynced), or with an error. The envelope is not re-verified (the caller
// checked the write signature before accepting it); its size is.
//
// A duplicate returns the stored copy's sequence number with
// Result.Duplicate and a nil error. An envelope removed by retention is
// refused with ErrExpired while its tombstone lives; a quota breach with
// ErrQuotaExceeded. If ctx ends first, Put returns ctx.Err() and the
// envelope may or may not be stored: retrying is safe (deduplication).
func (s *Store) Put(ctx context.Context, env *envelope.Envelope) (Result, error) {
	if env == nil {
		return Result{}, fmt.Errorf("%w: nil envelope", ErrInvalidArgument)
	}
	if env.Size() > s.p.MaxEnvelopeSize {
		s.m.rejections.WithLabelValues(reasonTooLarge).Inc()
		return Result{}, fmt.Errorf("%w: %d bytes, store limit %d", ErrTooLarge, env.Size(), s.p.MaxEnvelopeSize)
	}
	if err := s.enter(); err != nil {
		return Result{}, err
	}
	defer s.leave()
	if s.disk.refuse() {
		// Refused before queueing; the writer checks again (diskspace.go).
		s.m.rejections.WithLabelValues(reasonDiskFull).Inc()
		return Result{}, s.disk.refused()
	}
	// Fast path for an envelope we already hold (a gossip copy of what
	// arrived by direct relay or sync): it is already durable, so it needs
	// no trip through the writer. Only while no commit is in progress:
	// Badger makes a read begun during a commit wait until the commit is
	// fsynced, and every Put of a busy host would then wait out a commit
	// before queueing for the next, arriving too late to join it (group
	// commit would form half the batches). Under load, duplicates are
	// found by the writer instead, which checks every Put anyway.
	if !s.w.committing.Load() {
		if rec, ok, err := s.lookupIndex(env.Mailbox(), env.ID()); err == nil && ok {
			s.m.duplicates.Inc()
			return Result{Seq: rec.seq, Duplicate: true}, nil
		}
	}
	out, err := s.w.submit(ctx, &op{kind: opPut, env: env})
	if err != nil {
		return Result{}, err
	}
	return out.res, out.err
}

// lookupIndex reads the ID-index record of (m, id).
func (s *Store) lookupIndex(m envelope.MailboxID, id envelope.ID) (indexRecord, bool, error) {
	var rec indexRecord
	var found bool
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(indexKey(m, id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		return item.Value(func(b []byte) (err error) { rec, err = decodeIndex(b); return err })
	})
	return rec, found, err
}

// Has reports whether a live envelope with that ID is stored in m.
func (s *Store) Has(m envelope.MailboxID, id envelope.ID) (bool, error) {
	if err := s.enter(); err != nil {
		return false, err
	}
	defer s.leave()
	_, ok, err := s.lookupIndex(m, id)
	if err != nil {
		return false, fmt.Errorf("store: looking up %s in %s: %w", id.Short(), m.Short(), err)
	}
	return ok, nil
}

// Get returns the live envelope with that ID in m, or ErrNotFound.
func (s *Store) Get(m envelope.MailboxID, id envelope.ID) (*envelope.Envelope, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var env *envelope.Envelope
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(indexKey(m, id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		var rec indexRecord
		if err := item.Value(func(b []byte) (err error) { rec, err = decodeIndex(b); return err }); err != nil {
			return err
		}
		item, err = txn.Get(arrivalKey(m, rec.seq))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%w: index points to sequence %d, which holds nothing", ErrCorrupt, rec.seq)
		}
		if err != nil {
			return err
		}
		return item.Value(func(b []byte) (err error) {
			env, _, err = decodeArrival(b)
			if err == nil && env.ID() != id {
				err = fmt.Errorf("%w: index points to sequence %d, which holds %s", ErrCorrupt, rec.seq, env.ID().Short())
			}
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: get %s in %s: %w", id.Short(), m.Short(), err)
	}
	return env, nil
}

// readState reads the committed state of m (a fresh state if m is unknown).
func readState(txn *badger.Txn, m envelope.MailboxID) (*mailboxState, error) {
	item, err := txn.Get(stateKey(m))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return newMailboxState(), nil
	}
	if err != nil {
		return nil, err
	}
	var st *mailboxState
	err = item.Value(func(b []byte) (err error) { st, err = decodeState(b); return err })
	return st, err
}

// Page returns envelopes of m with arrival sequence after the cursor, in
// arrival order: at most limit of them and at most maxBytes of encodings,
// but always at least one if any remains. It reads one snapshot, so a page
// never shows an envelope whose predecessors it misses, and consecutive
// pages lose and repeat nothing while writes continue.
//
// A cursor not issued by this store for m, garbled, or beyond the last
// assigned sequence is ErrUnknownCursor; a cursor below the retention floor
// (envelopes after it were removed) is ErrExpiredCursor. A bad cursor is
// never read as "from the beginning".
func (s *Store) Page(m envelope.MailboxID, after Cursor, limit, maxBytes int) (Page, error) {
	var pg Page
	next, more, err := s.page(m, after, limit, maxBytes, func(b []byte) error {
		env, _, err := decodeArrival(b)
		if err != nil {
			return err
		}
		pg.Envelopes = append(pg.Envelopes, env)
		return nil
	})
	if err != nil {
		return Page{}, err
	}
	pg.Next, pg.More = next, more
	return pg, nil
}

// VisitPage is Page without decoding or copying, for serving pages to
// remote clients: it calls fn with each stored encoding of the page in
// arrival order, checked for length but neither parsed nor re-hashed (the client
// checks every envelope it receives: structure, mailbox binding, and the
// write signature or the AEAD). enc is the store's own memory, valid only
// until fn returns and never to be modified: fn copies what it keeps (a
// fetch host frames it straight into the buffer it sends, which it reuses
// page after page). An error from fn ends the walk and is returned,
// wrapped. Cursors, bounds and errors are those of Page.
func (s *Store) VisitPage(m envelope.MailboxID, after Cursor, limit, maxBytes int, fn func(enc []byte) error) (Cursor, bool, error) {
	return s.page(m, after, limit, maxBytes, func(b []byte) error {
		_, _, raw, err := decodeArrivalHeader(b)
		if err != nil {
			return err
		}
		if len(raw) > envelope.AbsoluteMaxSize {
			return fmt.Errorf("%w: stored envelope of %d bytes", ErrCorrupt, len(raw))
		}
		return fn(raw)
	})
}

// page walks the arrival records of m after the cursor, handing each value
// to add, within limit and maxBytes (always at least one envelope if any
// remains), and returns the cursor after the last one added.
func (s *Store) page(m envelope.MailboxID, after Cursor, limit, maxBytes int, add func(b []byte) error) (Cursor, bool, error) {
	if limit < 1 || maxBytes < 1 {
		return nil, false, fmt.Errorf("%w: page limit %d and byte limit %d must be positive", ErrInvalidArgument, limit, maxBytes)
	}
	if err := s.enter(); err != nil {
		return nil, false, err
	}
	defer s.leave()
	var next Cursor
	more := false
	err := s.db.View(func(txn *badger.Txn) error {
		st, err := readState(txn, m)
		if err != nil {
			return err
		}
		last := st.next - 1
		from := st.floor
		if len(after) > 0 {
			seq, err := decodeCursor(after, s.inst, m)
			if err != nil {
				return err
			}
			switch {
			case seq > last:
				return fmt.Errorf("%w: cursor at sequence %d, but the mailbox has assigned only %d", ErrUnknownCursor, seq, last)
			case seq < st.floor:
				return fmt.Errorf("%w: cursor at sequence %d, envelopes up to %d were removed", ErrExpiredCursor, seq, st.floor)
			}
			from = seq
		}
		pos, total, n := from, 0, 0
		// No value prefetching: it copies every value once more (add
		// copies or decodes each anyway), and a page's values are read in
		// key order from the value log, which the OS reads ahead.
		it := txn.NewIterator(badger.IteratorOptions{Prefix: mailboxKey(prefixArrival, m)})
		defer it.Close()
		for it.Seek(arrivalKey(m, from+1)); it.Valid(); it.Next() {
			if n == limit {
				more = true
				break
			}
			seq, err := seqFromArrivalKey(it.Item().Key())
			if err != nil {
				return err
			}
			if seq != pos+1 || seq > last {
				return fmt.Errorf("%w: arrival sequence %d follows %d (last assigned %d)", ErrCorrupt, seq, pos, last)
			}
			// The byte limit is checked on the exact size before adding (an
			// arrival record is the envelope plus a fixed header; Badger's
			// ValueSize is only approximate for value-log entries).
			full := false
			size := 0
			err = it.Item().Value(func(b []byte) error {
				size = len(b) - arrivalHeaderSize
				if n > 0 && total+size > maxBytes {
					full = true
					return nil
				}
				return add(b)
			})
			if err != nil {
				return fmt.Errorf("sequence %d: %w", seq, err)
			}
			if full {
				more = true
				break
			}
			n++
			total += size
			pos = seq
		}
		next = encodeCursor(s.inst, m, pos)
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("store: page of %s: %w", m.Short(), err)
	}
	return next, more, nil
}

func (s *Store) statsOf(st *mailboxState) MailboxStats {
	ms := MailboxStats{
		Count:      int64(st.count),
		Bytes:      int64(st.bytes),
		LastSeq:    st.next - 1,
		Floor:      st.floor,
		Tombstones: int64(st.tombstones),
		Policy:     s.policyOf(st),
		Override:   st.policy != nil,
	}
	if st.count > 0 {
		ms.FirstSeq = st.floor + 1
	}
	return ms
}

// Stats describes m. An unknown mailbox has zero stats and the default
// policy.
func (s *Store) Stats(m envelope.MailboxID) (MailboxStats, error) {
	if err := s.enter(); err != nil {
		return MailboxStats{}, err
	}
	defer s.leave()
	var st *mailboxState
	err := s.db.View(func(txn *badger.Txn) (err error) { st, err = readState(txn, m); return err })
	if err != nil {
		return MailboxStats{}, fmt.Errorf("store: stats of %s: %w", m.Short(), err)
	}
	return s.statsOf(st), nil
}

// Mailboxes lists every mailbox the store has state for (including ones
// whose envelopes all expired, and ones with only a policy), in ascending
// order.
func (s *Store) Mailboxes() ([]envelope.MailboxID, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	return s.mailboxes()
}

func (s *Store) mailboxes() ([]envelope.MailboxID, error) {
	var out []envelope.MailboxID
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixState}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			m, err := mailboxFromStateKey(it.Item().Key())
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: listing mailboxes: %w", err)
	}
	return out, nil
}

// Usage returns the store-wide totals as of the last commit.
func (s *Store) Usage() Usage {
	return Usage{
		Mailboxes:  s.usageMailboxes.Load(),
		Count:      s.usageCount.Load(),
		Bytes:      s.usageBytes.Load(),
		Tombstones: s.usageTombstones.Load(),
	}
}

// SetPolicy overrides the retention and quota policy of m (persisted). The
// new policy applies to the next Put and retention pass; lowering a quota
// does not evict anything by itself.
func (s *Store) SetPolicy(m envelope.MailboxID, p MailboxPolicy) error {
	if err := p.validate(); err != nil {
		return err
	}
	return s.policyOp(m, &p)
}

// ClearPolicy removes the override of m: the store defaults apply again.
func (s *Store) ClearPolicy(m envelope.MailboxID) error { return s.policyOp(m, nil) }

func (s *Store) policyOp(m envelope.MailboxID, p *MailboxPolicy) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	out, err := s.w.submit(context.Background(), &op{kind: opPolicy, mailbox: m, policy: p})
	if err == nil {
		err = out.err
	}
	if err != nil {
		return fmt.Errorf("store: setting policy of %s: %w", m.Short(), err)
	}
	return nil
}

// RangeIDs calls fn, in ascending ID order, for every ID the store knows
// in m within [lo, hi): live envelopes (live=true) and unexpired tombstones
// of envelopes removed by retention (live=false), so a sync peer does not
// re-send what was deliberately removed. A zero hi means no upper bound.
// fn returns false to stop. fn must not call back into the store's write
// methods (it runs inside a read snapshot).
func (s *Store) RangeIDs(m envelope.MailboxID, lo, hi envelope.ID, fn func(id envelope.ID, live bool) bool) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	now := s.cfg.now().UnixNano()
	unbounded := hi == envelope.ID{}
	err := s.db.View(func(txn *badger.Txn) error {
		live := newIDCursor(txn, prefixIndex, m, lo, hi, unbounded)
		defer live.close()
		dead := newIDCursor(txn, prefixTombstone, m, lo, hi, unbounded)
		defer dead.close()
		for {
			// Skip expired tombstones: Put would accept those IDs again.
			for dead.ok {
				var expiry int64
				if err := dead.it.Item().Value(func(b []byte) (err error) { expiry, err = decodeTombstone(b); return err }); err != nil {
					return err
				}
				if expiry > now {
					break
				}
				dead.next()
			}
			if live.err != nil || dead.err != nil {
				return errors.Join(live.err, dead.err)
			}
			var id envelope.ID
			var isLive bool
			switch {
			case live.ok && (!dead.ok || bytesLess(live.id, dead.id)):
				id, isLive = live.id, true
				live.next()
			case dead.ok:
				id = dead.id
				dead.next()
			default:
				return nil
			}
			if !fn(id, isLive) {
				return nil
			}
		}
	})
	if err != nil {
		return fmt.Errorf("store: ranging IDs of %s: %w", m.Short(), err)
	}
	return nil
}

func bytesLess(a, b envelope.ID) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// idCursor walks the index or tombstone keys of one mailbox within [lo, hi).
type idCursor struct {
	it        *badger.Iterator
	prefix    byte
	hi        envelope.ID
	unbounded bool
	ok        bool
	id        envelope.ID
	err       error
}

func newIDCursor(txn *badger.Txn, prefix byte, m envelope.MailboxID, lo, hi envelope.ID, unbounded bool) *idCursor {
	c := &idCursor{
		it:        txn.NewIterator(badger.IteratorOptions{Prefix: mailboxKey(prefix, m)}),
		prefix:    prefix,
		hi:        hi,
		unbounded: unbounded,
	}
	c.it.Seek(append(mailboxKey(prefix, m), lo[:]...))
	c.load()
	return c
}

func (c *idCursor) load() {
	c.ok = false
	if !c.it.Valid() {
		return
	}
	id, err := idFromKey(c.it.Item().Key(), c.prefix)
	if err != nil {
		c.err = err
		return
	}
	if !c.unbounded && !bytesLess(id, c.hi) {
		return
	}
	c.id, c.ok = id, true
}

func (c *idCursor) next() {
	c.it.Next()
	c.load()
}

func (c *idCursor) close() { c.it.Close() }

// subscription is one Subscribe channel.
type subscription struct{ ch chan envelope.ID }

// Subscribe returns a channel that receives the ID of every envelope newly
// stored in m (after its commit), and a function to cancel. Sends never
// block the writer: when the buffer is full a notification is dropped, so
// treat a receive as "something new arrived" and Page from your cursor.
// The channel is closed by cancel or by Close.
func (s *Store) Subscribe(m envelope.MailboxID) (<-chan envelope.ID, func()) {
	sub := &subscription{ch: make(chan envelope.ID, s.p.SubscriberBuffer)}
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	if s.subsClosed {
		close(sub.ch)
		return sub.ch, func() {}
	}
	if s.subs[m] == nil {
		s.subs[m] = map[*subscription]struct{}{}
	}
	s.subs[m][sub] = struct{}{}
	cancel := func() {
		s.subsMu.Lock()
		defer s.subsMu.Unlock()
		if _, ok := s.subs[m][sub]; ok {
			delete(s.subs[m], sub)
			if len(s.subs[m]) == 0 {
				delete(s.subs, m)
			}
			close(sub.ch)
		}
	}
	return sub.ch, cancel
}

func (s *Store) notify(stored []storedEnvelope) {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	for _, e := range stored {
		for sub := range s.subs[e.mailbox] {
			select {
			case sub.ch <- e.id:
			default:
			}
		}
	}
}

func (s *Store) closeSubscriptions() {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	s.subsClosed = true
	for _, subs := range s.subs {
		for sub := range subs {
			close(sub.ch)
		}
	}
	s.subs = nil
}
