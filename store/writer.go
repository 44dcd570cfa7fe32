package store

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/lsm"
)

// The writer goroutine owns every write to Badger and the in-memory copy of
// the mailbox states and usage totals. It takes the first pending operation,
// drains whatever else is queued (up to MaxBatchCount operations or
// MaxBatchBytes of envelopes), applies all of them in one Badger
// transaction and commits it: with SyncWrites the commit fsyncs, so one
// fsync acknowledges the whole batch (group commit). While it commits, new
// Puts queue up and form the next batch, so the batch size adapts to load
// with no timer. Only after the commit does it answer the operations.

type opKind uint8

const (
	opPut opKind = iota
	opPolicy
	opEvict
	opPurge
)

type op struct {
	kind    opKind
	env     *envelope.Envelope // opPut
	mailbox envelope.MailboxID // other kinds
	policy  *MailboxPolicy     // opPolicy: nil clears the override
	now     time.Time          // opEvict, opPurge
	max     int                // opEvict
	ids     []envelope.ID      // opPurge
	done    chan outcome
}

func (o *op) cost() int {
	if o.kind == opPut {
		return o.env.Size()
	}
	return 1 << 10
}

type outcome struct {
	res     Result
	removed int  // opEvict, opPurge
	more    bool // opEvict: the chunk was full, there may be more to evict
	err     error
}

type storedEnvelope struct {
	mailbox envelope.MailboxID
	id      envelope.ID
}

type usageTotals struct{ count, bytes, tombstones int64 }

type writer struct {
	s      *Store
	ops    chan *op
	stop   chan struct{}
	exited chan struct{}
	states map[envelope.MailboxID]*mailboxState
	usage  usageTotals
	// syncCache holds sync index records as last committed (syncindex.go),
	// so a batch reads Badger only for nodes it has not seen recently.
	syncCache map[syncNodeKey]NodeSum
	// committing is set while a Badger commit is in progress. Badger makes
	// every read transaction begun meanwhile wait until that commit is
	// written and fsynced; Put skips its duplicate check then (see Put).
	committing atomic.Bool
	// commit commits a transaction: txn.Commit, or a stand-in in tests.
	commit func(*badger.Txn) error
	// compact is told what each commit wrote; it compacts an in-memory
	// store without Badger compactors (nil otherwise).
	compact *lsm.Compactor
}

// recordOverhead is what a batch writes besides the envelopes, per
// operation (keys, index, state and sync index records), for the
// compactor's count.
const recordOverhead = 256

func newWriter(s *Store, states map[envelope.MailboxID]*mailboxState) *writer {
	w := &writer{
		s:       s,
		ops:     make(chan *op, 2*s.p.MaxBatchCount),
		stop:    make(chan struct{}),
		exited:  make(chan struct{}),
		states:  states,
		commit:  func(txn *badger.Txn) error { return txn.Commit() },
		compact: newCompactor(s.db, s.p, s.log),
	}
	for _, st := range states {
		w.usage.count += int64(st.count)
		w.usage.bytes += int64(st.bytes)
		w.usage.tombstones += int64(st.tombstones)
	}
	w.publish()
	return w
}

func (w *writer) publish() {
	w.s.usageCount.Store(w.usage.count)
	w.s.usageBytes.Store(w.usage.bytes)
	w.s.usageTombstones.Store(w.usage.tombstones)
	w.s.usageMailboxes.Store(int64(len(w.states)))
}

// submit hands o to the writer and waits for its outcome. The caller holds
// a Store.enter, so the writer is running until the call returns.
func (w *writer) submit(ctx context.Context, o *op) (outcome, error) {
	o.done = make(chan outcome, 1)
	select {
	case w.ops <- o:
	case <-ctx.Done():
		return outcome{}, ctx.Err()
	}
	select {
	case out := <-o.done:
		return out, nil
	case <-ctx.Done():
		return outcome{}, ctx.Err()
	}
}

// stopAndWait lets the writer finish what is queued and exit, and waits
// for a compaction it started. Called by Close after every caller has
// left.
func (w *writer) stopAndWait() {
	close(w.stop)
	<-w.exited
	w.compact.Close()
}

func (w *writer) run() {
	defer close(w.exited)
	for {
		select {
		case o := <-w.ops:
			w.collect(o)
		case <-w.stop:
			for {
				select {
				case o := <-w.ops:
					w.collect(o)
				default:
					return
				}
			}
		}
	}
}

func (w *writer) collect(first *op) {
	batch, size := []*op{first}, first.cost()
	for len(batch) < w.s.p.MaxBatchCount && size < w.s.p.MaxBatchBytes {
		select {
		case o := <-w.ops:
			batch = append(batch, o)
			size += o.cost()
			continue
		default:
		}
		break
	}
	w.apply(batch)
}

// apply commits batch and answers its operations. If Badger finds the
// transaction too big (our byte bound is an estimate), it retries the two
// halves: the transaction was discarded, so nothing was written.
func (w *writer) apply(batch []*op) {
	now := w.s.cfg.now()
	outs, b, err := w.build(batch, now)
	if errors.Is(err, badger.ErrTxnTooBig) && len(batch) > 1 {
		h := len(batch) / 2
		w.apply(batch[:h])
		w.apply(batch[h:])
		return
	}
	if err != nil {
		err = fmt.Errorf("store: committing %d operations: %w", len(batch), err)
		w.s.log.Error("commit failed; nothing of the batch was stored", "ops", len(batch), "err", err)
		for _, o := range batch {
			if o.kind == opPut {
				w.s.m.rejections.WithLabelValues(reasonError).Inc()
			}
			o.done <- outcome{err: err}
		}
		return
	}
	w.install(b)
	written := 0
	for _, o := range batch {
		written += o.cost() + recordOverhead
	}
	w.compact.Wrote(int64(written))
	m := w.s.m
	m.batchSize.Observe(float64(len(batch)))
	m.puts.Add(float64(len(b.stored)))
	m.bytes.Add(float64(b.storedBytes))
	m.duplicates.Add(float64(b.dups))
	for r, n := range b.rejections {
		m.rejections.WithLabelValues(r).Add(float64(n))
	}
	for r, n := range b.evictions {
		m.evictions.WithLabelValues(r).Add(float64(n))
	}
	m.tombPurged.Add(float64(b.purged))
	if len(b.stored) > 0 {
		w.s.notify(b.stored)
	}
	for i, o := range batch {
		o.done <- outs[i]
	}
}

// batch is the working state of one transaction: copies of the mailbox
// states it touches (installed only after the commit) and what it did.
type batch struct {
	w           *writer
	txn         *badger.Txn
	states      map[envelope.MailboxID]*mailboxState
	dirty       map[envelope.MailboxID]bool
	delta       usageTotals
	stored      []storedEnvelope
	storedBytes int64
	dups        int
	purged      int
	rejections  map[string]int
	evictions   map[string]int
	sync        map[syncNodeKey]*syncDelta // sync index changes (syncindex.go)
	now         time.Time
	policySet   map[envelope.MailboxID]bool // opPolicy in this batch (schedule.go)
	adm         batchAdmission              // admission.go
}

func (b *batch) state(m envelope.MailboxID) *mailboxState {
	if st, ok := b.states[m]; ok {
		return st
	}
	st := newMailboxState()
	if cur, ok := b.w.states[m]; ok {
		st = cur.clone()
	}
	b.states[m] = st
	return st
}

func (b *batch) reject(reason string, err error) outcome {
	b.rejections[reason]++
	return outcome{err: err}
}

// policyOf is the effective policy of a mailbox state.
func (s *Store) policyOf(st *mailboxState) MailboxPolicy {
	if st.policy != nil {
		return *st.policy
	}
	return s.p.Default
}

// build runs the batch in one transaction and commits it. A non-nil error
// means nothing was written; per-operation failures are in the outcomes.
func (w *writer) build(ops []*op, now time.Time) ([]outcome, *batch, error) {
	txn := w.s.db.NewTransaction(true)
	defer txn.Discard()
	b := &batch{
		w: w, txn: txn, now: now,
		states:     map[envelope.MailboxID]*mailboxState{},
		dirty:      map[envelope.MailboxID]bool{},
		rejections: map[string]int{},
		evictions:  map[string]int{},
	}
	outs := make([]outcome, len(ops))
	w.s.disk.beginBatch()
	for i, o := range ops {
		var err error
		switch o.kind {
		case opPut:
			outs[i], err = b.put(o.env, now)
		case opPolicy:
			st := b.state(o.mailbox)
			st.policy = o.policy
			b.dirty[o.mailbox] = true
			if b.policySet == nil {
				b.policySet = map[envelope.MailboxID]bool{}
			}
			b.policySet[o.mailbox] = true
		case opEvict:
			outs[i], err = b.evict(o.mailbox, o.now, o.max)
		case opPurge:
			outs[i], err = b.purge(o.mailbox, o.ids, o.now)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	for m := range b.dirty {
		if err := txn.Set(stateKey(m), encodeState(b.states[m])); err != nil {
			return nil, nil, err
		}
	}
	if err := b.flushSync(); err != nil {
		return nil, nil, err
	}
	start := time.Now()
	w.committing.Store(true)
	err := w.commit(txn)
	w.committing.Store(false)
	if err != nil {
		return nil, nil, err
	}
	if len(b.dirty) > 0 {
		w.s.m.commit.Observe(time.Since(start).Seconds())
	}
	return outs, b, nil
}

func (w *writer) install(b *batch) {
	for m := range b.dirty {
		w.states[m] = b.states[m]
		w.s.ret.atMost(m, w.s.dueAfterCommit(b.states[m], b.policySet[m], b.now))
	}
	w.usage.count += b.delta.count
	w.usage.bytes += b.delta.bytes
	w.usage.tombstones += b.delta.tombstones
	w.installSync(b)
	w.installAdmission(b)
	w.publish()
}

// put stores one envelope unless it is a duplicate, tombstoned, or over a
// quota. Checks read through the transaction, so a duplicate earlier in
// the same batch is found too. The error return is for Badger failures
// that must abort the whole batch.
func (b *batch) put(env *envelope.Envelope, now time.Time) (outcome, error) {
	m, id, size := env.Mailbox(), env.ID(), int64(env.Size())
	item, err := b.txn.Get(indexKey(m, id))
	switch {
	case err == nil:
		var rec indexRecord
		if err := item.Value(func(v []byte) (err error) { rec, err = decodeIndex(v); return err }); err != nil {
			return b.reject(reasonError, fmt.Errorf("store: index of %s: %w", id.Short(), err)), nil
		}
		b.dups++
		return outcome{res: Result{Seq: rec.seq, Duplicate: true}}, nil
	case !errors.Is(err, badger.ErrKeyNotFound):
		return outcome{}, err
	}

	// A mailbox's state counts its tombstones exactly (every write and
	// delete of one updates the count in the same transaction), so a
	// mailbox with none needs no lookup: the common case of a mailbox
	// that retention has never touched.
	st := b.state(m)
	tk := tombstoneKey(m, id)
	staleTombstone := false
	item = nil
	err = badger.ErrKeyNotFound
	if st.tombstones > 0 {
		item, err = b.txn.Get(tk)
	}
	switch {
	case err == nil:
		var expiry int64
		if err := item.Value(func(v []byte) (err error) { expiry, err = decodeTombstone(v); return err }); err != nil {
			return b.reject(reasonError, fmt.Errorf("store: tombstone of %s: %w", id.Short(), err)), nil
		}
		if expiry > now.UnixNano() {
			return b.reject(reasonExpired, fmt.Errorf("%w: %s was removed by retention from %s; refused until %s",
				ErrExpired, id.Short(), m.Short(), time.Unix(0, expiry).UTC().Format(time.RFC3339))), nil
		}
		staleTombstone = true
	case !errors.Is(err, badger.ErrKeyNotFound):
		return outcome{}, err
	}

	if out, stop, err := b.admit(m, st, size, now); stop || err != nil {
		return out, err
	}
	pol := b.w.s.policyOf(st)
	switch {
	case pol.QuotaCount > 0 && int64(st.count)+1 > pol.QuotaCount:
		return b.reject(reasonQuotaMailbox, fmt.Errorf("%w: mailbox %s holds %d envelopes, quota %d",
			ErrQuotaExceeded, m.Short(), st.count, pol.QuotaCount)), nil
	case pol.QuotaBytes > 0 && int64(st.bytes)+size > pol.QuotaBytes:
		return b.reject(reasonQuotaMailbox, fmt.Errorf("%w: mailbox %s holds %d bytes, +%d exceeds quota %d",
			ErrQuotaExceeded, m.Short(), st.bytes, size, pol.QuotaBytes)), nil
	}
	if q := b.w.s.p.GlobalQuotaBytes; q > 0 {
		if used := b.w.usage.bytes + b.delta.bytes; used+size > q {
			return b.reject(reasonQuotaGlobal, fmt.Errorf("%w: %w: store holds %d bytes, +%d exceeds global quota %d",
				ErrQuotaExceeded, ErrStoreFull, used, size, q)), nil
		}
	}

	if !b.w.s.disk.take(int(size)) {
		return b.reject(reasonDiskFull, b.w.s.disk.refused()), nil
	}

	// Every check passed: write the arrival record and the ID index (and
	// drop a stale tombstone, and note a new mailbox's creation) in this
	// transaction.
	if err := b.noteCreated(m, st, now); err != nil {
		return outcome{}, err
	}
	seq := st.next
	if err := b.txn.Set(arrivalKey(m, seq), encodeArrival(id, now.UnixNano(), env.Bytes())); err != nil {
		return outcome{}, err
	}
	if err := b.txn.Set(indexKey(m, id), encodeIndex(indexRecord{seq: seq, arrival: now.UnixNano(), size: uint32(size)})); err != nil {
		return outcome{}, err
	}
	if staleTombstone {
		// The ID stays in the sync set: its tombstone becomes a live entry.
		if err := b.txn.Delete(tk); err != nil {
			return outcome{}, err
		}
		st.tombstones--
		b.delta.tombstones--
	} else {
		b.syncAdd(m, id)
	}
	st.next++
	st.count++
	st.bytes += uint64(size)
	b.dirty[m] = true
	b.delta.count++
	b.delta.bytes += size
	b.stored = append(b.stored, storedEnvelope{mailbox: m, id: id})
	b.storedBytes += size
	return outcome{res: Result{Seq: seq}}, nil
}

type victim struct {
	seq    uint64
	id     envelope.ID
	size   uint64
	reason string
}

// evict removes up to max of the oldest envelopes of m that violate its
// retention policy at now, moves the floor past them and writes their
// tombstones.
func (b *batch) evict(m envelope.MailboxID, now time.Time, max int) (outcome, error) {
	if _, known := b.w.states[m]; !known && b.states[m] == nil {
		return outcome{}, nil
	}
	st := b.state(m)
	pol := b.w.s.policyOf(st)
	if st.count == 0 {
		return outcome{}, nil
	}
	victims, err := b.victims(m, st, pol, now, max)
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return outcome{err: fmt.Errorf("store: evicting from %s: %w", m.Short(), err)}, nil
		}
		return outcome{}, err
	}
	expiry := encodeTombstone(now.Add(b.w.s.p.tombstoneTTL()).UnixNano())
	for _, v := range victims {
		for _, err := range []error{
			b.txn.Delete(arrivalKey(m, v.seq)),
			b.txn.Delete(indexKey(m, v.id)),
			b.txn.Set(tombstoneKey(m, v.id), expiry),
		} {
			if err != nil {
				return outcome{}, err
			}
		}
		st.count--
		st.bytes -= v.size
		st.floor = v.seq
		st.tombstones++
		b.delta.count--
		b.delta.bytes -= int64(v.size)
		b.delta.tombstones++
		b.evictions[v.reason]++
	}
	if len(victims) > 0 {
		b.dirty[m] = true
	}
	return outcome{removed: len(victims), more: len(victims) == max}, nil
}

func (b *batch) victims(m envelope.MailboxID, st *mailboxState, pol MailboxPolicy, now time.Time, max int) ([]victim, error) {
	it := b.txn.NewIterator(badger.IteratorOptions{Prefix: mailboxKey(prefixArrival, m)})
	defer it.Close()
	count, bytes := int64(st.count), int64(st.bytes)
	var out []victim
	want := st.floor + 1
	for it.Seek(arrivalKey(m, want)); it.Valid() && len(out) < max; it.Next() {
		seq, err := seqFromArrivalKey(it.Item().Key())
		if err != nil {
			return nil, err
		}
		if seq != want {
			return nil, fmt.Errorf("%w: arrival sequence %d where %d was expected", ErrCorrupt, seq, want)
		}
		var v victim
		var arrival int64
		err = it.Item().Value(func(val []byte) error {
			id, at, raw, err := decodeArrivalHeader(val)
			v.id, arrival, v.size = id, at, uint64(len(raw))
			return err
		})
		if err != nil {
			return nil, err
		}
		switch {
		case pol.MaxCount > 0 && count > pol.MaxCount:
			v.reason = evictCount
		case pol.MaxBytes > 0 && bytes > pol.MaxBytes:
			v.reason = evictBytes
		case pol.MaxAge > 0 && arrival+int64(pol.MaxAge) <= now.UnixNano():
			v.reason = evictAge
		default:
			return out, nil
		}
		v.seq = seq
		out = append(out, v)
		count--
		bytes -= int64(v.size)
		want++
	}
	return out, nil
}

// purge deletes the tombstones among ids of m that have expired by now.
func (b *batch) purge(m envelope.MailboxID, ids []envelope.ID, now time.Time) (outcome, error) {
	n := 0
	for _, id := range ids {
		tk := tombstoneKey(m, id)
		item, err := b.txn.Get(tk)
		if errors.Is(err, badger.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return outcome{}, err
		}
		var expiry int64
		if err := item.Value(func(v []byte) (err error) { expiry, err = decodeTombstone(v); return err }); err != nil {
			// Unreadable tombstone: it blocks nothing useful; remove it, but
			// say so.
			b.w.s.log.Warn("removing undecodable tombstone", "mailbox", m.Short(), "id", id.Short(), "err", err)
			expiry = 0
		}
		if expiry > now.UnixNano() {
			continue
		}
		if err := b.txn.Delete(tk); err != nil {
			return outcome{}, err
		}
		b.syncRemove(m, id)
		n++
	}
	if n > 0 {
		st := b.state(m)
		d := min(st.tombstones, uint64(n)) // never below zero, even if the counter drifted
		st.tombstones -= d
		b.delta.tombstones -= int64(d)
		b.dirty[m] = true
		b.purged += n
	}
	return outcome{removed: n}, nil
}
