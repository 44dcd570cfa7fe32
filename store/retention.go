package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
)

// EnforceRetention runs one retention pass over the mailboxes that are
// due (schedule.go: a pass costs what expires, not what is stored): it
// evicts the oldest envelopes beyond a mailbox's MaxAge, MaxBytes or
// MaxCount (in chunks of RetentionChunk, each its own transaction, so
// Puts interleave), purges tombstones that have expired, and schedules
// the mailbox's next check. It returns the number of envelopes evicted.
// The background job calls it every RetentionInterval. A mailbox whose
// retention failed, and those the pass did not reach, are due again at
// once.
func (s *Store) EnforceRetention(ctx context.Context) (removed int, err error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	now := s.cfg.now()
	due := s.ret.take(now)
	s.m.retentionChecked.Add(float64(len(due)))
	for i, m := range due {
		n, next, err := s.retainMailbox(ctx, m, now)
		removed += n
		if err != nil {
			for _, m := range due[i:] {
				s.ret.atMost(m, now.UnixNano())
			}
			return removed, err
		}
		s.ret.atMost(m, next)
	}
	return removed, nil
}

// retainMailbox applies m's retention at now and returns the envelopes
// evicted and when m is next due.
func (s *Store) retainMailbox(ctx context.Context, m envelope.MailboxID, now time.Time) (int, int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	n, ageDue, err := s.evictMailbox(ctx, m, now)
	if err != nil {
		return n, 0, err
	}
	tombDue, err := s.purgeTombstones(ctx, m, now)
	if err != nil {
		return n, 0, err
	}
	return n, min(ageDue, tombDue), nil
}

// evictMailbox checks from a snapshot whether m needs eviction (so a
// mailbox with nothing to evict costs no writer round trip), then has the
// writer evict chunk by chunk. It returns the envelopes evicted and when
// m's envelopes next need eviction (never: not by age, and within its
// count and byte limits).
func (s *Store) evictMailbox(ctx context.Context, m envelope.MailboxID, now time.Time) (int, int64, error) {
	due, err := s.evictionDue(m, now)
	if err != nil || due > now.UnixNano() {
		return 0, due, err
	}
	removed := 0
	for {
		out, err := s.w.submit(ctx, &op{kind: opEvict, mailbox: m, now: now, max: s.p.RetentionChunk})
		if err == nil {
			err = out.err
		}
		removed += out.removed
		if err != nil {
			return removed, 0, fmt.Errorf("store: retention of %s: %w", m.Short(), err)
		}
		if !out.more {
			due, err := s.evictionDue(m, now)
			return removed, due, err
		}
	}
}

// evictionDue reads from a snapshot when m next needs eviction at the
// earliest: now if it is over MaxCount or MaxBytes, its oldest envelope's
// arrival plus MaxAge, or never.
func (s *Store) evictionDue(m envelope.MailboxID, now time.Time) (int64, error) {
	due := int64(never)
	err := s.db.View(func(txn *badger.Txn) error {
		st, err := readState(txn, m)
		if err != nil || st.count == 0 {
			return err
		}
		pol := s.policyOf(st)
		if (pol.MaxCount > 0 && int64(st.count) > pol.MaxCount) || (pol.MaxBytes > 0 && int64(st.bytes) > pol.MaxBytes) {
			due = now.UnixNano()
			return nil
		}
		if pol.MaxAge <= 0 {
			return nil
		}
		item, err := txn.Get(arrivalKey(m, st.floor+1))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%w: oldest envelope (sequence %d) missing", ErrCorrupt, st.floor+1)
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			_, arrival, _, err := decodeArrivalHeader(v)
			due = arrival + int64(pol.MaxAge)
			return err
		})
	})
	if err != nil {
		return 0, fmt.Errorf("store: retention check of %s: %w", m.Short(), err)
	}
	return due, nil
}

// purgeTombstones scans the tombstones of m from a snapshot and has the
// writer delete those expired at now, RetentionChunk at a time (the
// writer re-checks each, so concurrent passes are harmless). It returns
// when the earliest of the others expires (never: none left).
func (s *Store) purgeTombstones(ctx context.Context, m envelope.MailboxID, now time.Time) (int64, error) {
	var from envelope.ID
	next := int64(never)
	for {
		expired, after, earliest, done, err := s.expiredTombstones(m, from, now)
		if err != nil {
			return 0, err
		}
		next = min(next, earliest)
		if len(expired) > 0 {
			out, err := s.w.submit(ctx, &op{kind: opPurge, mailbox: m, ids: expired, now: now})
			if err == nil {
				err = out.err
			}
			if err != nil {
				return 0, fmt.Errorf("store: purging tombstones of %s: %w", m.Short(), err)
			}
		}
		if done {
			return next, nil
		}
		from = after
	}
}

// expiredTombstones returns up to RetentionChunk expired tombstones of m
// with ID >= from, where to continue, the earliest expiry among the
// unexpired ones it saw (never: none), and whether the scan is complete.
func (s *Store) expiredTombstones(m envelope.MailboxID, from envelope.ID, now time.Time) ([]envelope.ID, envelope.ID, int64, bool, error) {
	var out []envelope.ID
	var next envelope.ID
	earliest := int64(never)
	done := true
	err := s.db.View(func(txn *badger.Txn) error {
		st, err := readState(txn, m)
		if err != nil || st.tombstones == 0 {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 100, Prefix: mailboxKey(prefixTombstone, m)})
		defer it.Close()
		for it.Seek(append(mailboxKey(prefixTombstone, m), from[:]...)); it.Valid(); it.Next() {
			id, err := idFromKey(it.Item().Key(), prefixTombstone)
			if err != nil {
				return err
			}
			if len(out) == s.p.RetentionChunk {
				next, done = id, false
				return nil
			}
			var expiry int64
			if err := it.Item().Value(func(v []byte) (err error) { expiry, err = decodeTombstone(v); return err }); err != nil {
				s.log.Warn("undecodable tombstone; purging it", "mailbox", m.Short(), "id", id.Short(), "err", err)
				expiry = 0
			}
			if expiry <= now.UnixNano() {
				out = append(out, id)
			} else {
				earliest = min(earliest, expiry)
			}
		}
		return nil
	})
	if err != nil {
		return nil, next, 0, true, fmt.Errorf("store: scanning tombstones of %s: %w", m.Short(), err)
	}
	return out, next, earliest, done, nil
}

func (s *Store) retentionLoop(ctx context.Context) {
	defer s.bg.Done()
	t := time.NewTicker(s.p.RetentionInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := s.EnforceRetention(ctx)
		switch {
		case err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, ErrClosed):
			s.log.Warn("retention pass failed; retrying next interval", "err", err, "evicted", n)
		case n > 0:
			s.log.Debug("retention pass", "evicted", n)
		}
	}
}

func (s *Store) gcLoop(ctx context.Context) {
	defer s.bg.Done()
	t := time.NewTicker(s.p.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.runValueLogGC(ctx); err != nil {
			s.log.Warn("value-log GC failed; retrying next interval", "err", err)
		}
	}
}

// runValueLogGC rewrites value-log files while Badger finds one with at
// least GCDiscardRatio garbage, and returns how many it rewrote.
func (s *Store) runValueLogGC(ctx context.Context) (int, error) {
	if s.p.InMemory {
		return 0, nil
	}
	n := 0
	for ctx.Err() == nil {
		if !s.disk.gcFits(s.p) {
			// A rewrite would cross the watermark (diskspace.go).
			s.log.Info("value-log GC skipped: a rewrite does not fit in the free disk space", "free", s.disk.free.Load())
			return n, nil
		}
		err := s.db.RunValueLogGC(s.p.GCDiscardRatio)
		switch {
		case err == nil:
			n++
			s.m.gcRewrites.Inc()
			continue
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			return n, nil
		default:
			return n, fmt.Errorf("store: value-log GC: %w", err)
		}
	}
	return n, nil
}
