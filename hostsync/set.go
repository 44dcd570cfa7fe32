package hostsync

import (
	"fmt"
	"sync"
	"time"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/reconcile"
	"github.com/meshnode/meshnode/store"
)

// StoreSet is a reconcile.Set over a store's ID index: the live envelopes
// of one mailbox and the tombstones of those removed by retention
// (store.RangeIDs). Tombstones belong in the set so that a peer still
// holding an envelope this host expired sees no difference and does not
// send it back (the store would refuse it anyway, with store.ErrExpired).
//
// Every Fingerprint scans its range, O(range); a session does about one
// scan of the set per round. The Service reconciles from a Snapshot
// instead when the mailbox fits Params.SnapshotCacheIDs.
type StoreSet struct {
	st *store.Store
	m  envelope.MailboxID
}

var _ reconcile.Set = StoreSet{}

// NewStoreSet returns the set of mailbox m in st.
func NewStoreSet(st *store.Store, m envelope.MailboxID) StoreSet { return StoreSet{st: st, m: m} }

// Fingerprint implements reconcile.Set.
func (s StoreSet) Fingerprint(lo, hi reconcile.Bound) (reconcile.Fingerprint, int, error) {
	var acc reconcile.Accumulator
	err := s.Range(lo, hi, func(id envelope.ID) bool { acc.Add(id); return true })
	return acc.Fingerprint(), acc.Count(), err
}

// Range implements reconcile.Set.
func (s StoreSet) Range(lo, hi reconcile.Bound, fn func(envelope.ID) bool) error {
	if lo.IsInfinity() || lo.Compare(hi) >= 0 {
		return nil
	}
	from, _ := lo.Value()
	// store.RangeIDs reads a zero upper bound as "no bound": Infinity maps
	// to it, and a finite bound of zero (Lowest) holds nothing, which the
	// check above already returned for.
	to, _ := hi.Value()
	return s.st.RangeIDs(s.m, from, to, func(id envelope.ID, _ bool) bool { return fn(id) })
}

// Snapshot reads the IDs of mailbox m (live and tombstoned) into an
// in-memory set: one scan, after which a session's fingerprints cost
// O(log n). It holds 64 bytes per ID.
func Snapshot(st *store.Store, m envelope.MailboxID) (*reconcile.MemSet, error) {
	var ids []envelope.ID
	err := st.RangeIDs(m, envelope.ID{}, envelope.ID{}, func(id envelope.ID, _ bool) bool {
		ids = append(ids, id)
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("hostsync: reading the IDs of %s: %w", m.Short(), err)
	}
	return reconcile.NewMemSet(ids...), nil
}

// snapshotMaxAge bounds how long a cached snapshot is reused while the
// mailbox seems unchanged: RangeIDs hides tombstones once they expire,
// which changes the set without changing the mailbox's counters.
const snapshotMaxAge = time.Minute

// setCache keeps recent snapshots, keyed by the mailbox's counters
// (last sequence, floor, tombstones): any Put, eviction or purge changes
// one of them. Sessions share the cached sets read-only.
type setCache struct {
	st    *store.Store
	limit int // total IDs held

	mu    sync.Mutex
	sets  map[envelope.MailboxID]*cachedSet
	total int
}

type cachedSet struct {
	key   setKey
	set   *reconcile.MemSet
	built time.Time
}

type setKey struct {
	last, floor uint64
	tombstones  int64
}

func newSetCache(st *store.Store, limit int) *setCache {
	return &setCache{st: st, limit: limit, sets: make(map[envelope.MailboxID]*cachedSet)}
}

// get returns a set to reconcile m from: a cached or fresh snapshot, or
// the store itself for a mailbox too large to snapshot.
func (c *setCache) get(m envelope.MailboxID) (reconcile.Set, error) {
	// Counters first: a snapshot read after them is at least as new, so a
	// key never claims more than its set holds.
	ms, err := c.st.Stats(m)
	if err != nil {
		return nil, fmt.Errorf("hostsync: stats of %s: %w", m.Short(), err)
	}
	key := setKey{last: ms.LastSeq, floor: ms.Floor, tombstones: ms.Tombstones}
	size := int(ms.Count + ms.Tombstones)
	if size > c.limit {
		return NewStoreSet(c.st, m), nil
	}
	now := time.Now()
	c.mu.Lock()
	if e, ok := c.sets[m]; ok && e.key == key && now.Sub(e.built) < snapshotMaxAge {
		c.mu.Unlock()
		return e.set, nil
	}
	c.mu.Unlock()

	set, err := Snapshot(c.st, m)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.sets[m]; ok {
		c.total -= old.set.Len()
		delete(c.sets, m)
	}
	// Make room by dropping other snapshots (sessions using them keep
	// their reference until they end).
	for other, e := range c.sets {
		if c.total+set.Len() <= c.limit {
			break
		}
		c.total -= e.set.Len()
		delete(c.sets, other)
	}
	if c.total+set.Len() <= c.limit {
		c.sets[m] = &cachedSet{key: key, set: set, built: now}
		c.total += set.Len()
	}
	return set, nil
}

// forget drops the snapshot of m.
func (c *setCache) forget(m envelope.MailboxID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.sets[m]; ok {
		c.total -= e.set.Len()
		delete(c.sets, m)
	}
}
