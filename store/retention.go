package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
)

// EnforceRetention runs one retention pass over every mailbox: it evicts
// the oldest envelopes beyond the mailbox's MaxAge, MaxBytes or MaxCount
// (in chunks of RetentionChunk, each its own transaction, so Puts
// interleave), and purges tombstones that have expired. It returns the
// number of envelopes evicted. The background job calls it every
// RetentionInterval.
func (s *Store) EnforceRetention(ctx context.Context) (removed int, err error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	mbs, err := s.mailboxes()
	if err != nil {
		return 0, err
	}
	for _, m := range mbs {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		n, err := s.evictMailbox(ctx, m)
		removed += n
		if err != nil {
			return removed, err
		}
		if err := s.purgeTombstones(ctx, m); err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// evictMailbox checks from a snapshot whether m needs eviction (so a pass
// over idle mailboxes costs no writer round trips), then has the writer
// evict chunk by chunk.
func (s *Store) evictMailbox(ctx context.Context, m envelope.MailboxID) (int, error) {
	now := s.cfg.now()
	need, err := s.needsEviction(m, now)
	if err != nil || !need {
		return 0, err
	}
	removed := 0
	for {
		out, err := s.w.submit(ctx, &op{kind: opEvict, mailbox: m, now: now, max: s.p.RetentionChunk})
		if err == nil {
			err = out.err
		}
		removed += out.removed
		if err != nil {
			return removed, fmt.Errorf("store: retention of %s: %w", m.Short(), err)
		}
		if !out.more {
			return removed, nil
		}
	}
}

func (s *Store) needsEviction(m envelope.MailboxID, now time.Time) (bool, error) {
	var need bool
	err := s.db.View(func(txn *badger.Txn) error {
		st, err := readState(txn, m)
		if err != nil || st.count == 0 {
			return err
		}
		pol := s.policyOf(st)
		if (pol.MaxCount > 0 && int64(st.count) > pol.MaxCount) || (pol.MaxBytes > 0 && int64(st.bytes) > pol.MaxBytes) {
			need = true
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
			need = arrival+int64(pol.MaxAge) <= now.UnixNano()
			return err
		})
	})
	if err != nil {
		return false, fmt.Errorf("store: retention check of %s: %w", m.Short(), err)
	}
	return need, nil
}

// purgeTombstones scans the tombstones of m from a snapshot and has the
// writer delete the expired ones, RetentionChunk at a time (the writer
// re-checks each, so concurrent passes are harmless).
func (s *Store) purgeTombstones(ctx context.Context, m envelope.MailboxID) error {
	now := s.cfg.now()
	var from envelope.ID
	for {
		expired, next, done, err := s.expiredTombstones(m, from, now)
		if err != nil {
			return err
		}
		if len(expired) > 0 {
			out, err := s.w.submit(ctx, &op{kind: opPurge, mailbox: m, ids: expired, now: now})
			if err == nil {
				err = out.err
			}
			if err != nil {
				return fmt.Errorf("store: purging tombstones of %s: %w", m.Short(), err)
			}
		}
		if done {
			return nil
		}
		from = next
	}
}

// expiredTombstones returns up to RetentionChunk expired tombstones of m
// with ID >= from, where to continue, and whether the scan is complete.
func (s *Store) expiredTombstones(m envelope.MailboxID, from envelope.ID, now time.Time) ([]envelope.ID, envelope.ID, bool, error) {
	var out []envelope.ID
	var next envelope.ID
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
			}
		}
		return nil
	})
	if err != nil {
		return nil, next, true, fmt.Errorf("store: scanning tombstones of %s: %w", m.Short(), err)
	}
	return out, next, done, nil
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
