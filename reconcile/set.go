package reconcile

import (
	"bytes"
	"slices"
	"sort"
	"sync"

	"github.com/meshnode/meshnode/envelope"
)

// Set is the caller's view of one mailbox's envelope IDs. The store
// implements it over its ID index; MemSet implements it in memory.
// Methods may be called while the set changes (new envelopes arriving):
// the protocol then converges more slowly but stays correct, and a later
// session picks up what this one missed.
type Set interface {
	// Fingerprint returns the fingerprint and the number of the IDs in
	// [lo, hi). Accumulator computes it from the IDs.
	Fingerprint(lo, hi Bound) (Fingerprint, int, error)
	// Range calls fn for each ID in [lo, hi) in ascending byte order, until
	// fn returns false.
	Range(lo, hi Bound, fn func(envelope.ID) bool) error
}

// IndexedSet is a Set that can also find the k-th ID of a range without
// iterating, so splitting a range into B sub-ranges costs 2B look-ups and
// B fingerprints instead of a scan of the range. It is optional: sessions
// use it when the Set has it.
type IndexedSet interface {
	Set
	// Nth returns the ID at position k (from 0) among the IDs >= lo, and
	// false if there are not that many.
	Nth(lo Bound, k int) (envelope.ID, bool, error)
}

// MemSet is an in-memory IndexedSet: a sorted slice of distinct IDs and the
// prefix sums of their fingerprint sums, so Fingerprint, Nth and the start
// of Range cost two binary searches (O(log n)). Add costs O(n + k log k)
// for k new IDs. It is safe for concurrent use.
type MemSet struct {
	mu     sync.RWMutex
	ids    []envelope.ID // ascending, distinct
	prefix []sum256      // prefix[i] is the sum of ids[:i]; len(ids)+1 entries
}

var _ IndexedSet = (*MemSet)(nil)

// NewMemSet returns a set holding ids (duplicates are dropped).
func NewMemSet(ids ...envelope.ID) *MemSet {
	s := &MemSet{prefix: make([]sum256, 1)}
	s.Add(ids...)
	return s
}

func compareIDs(a, b envelope.ID) int { return bytes.Compare(a[:], b[:]) }

// Add inserts ids; those already present are ignored.
func (s *MemSet) Add(ids ...envelope.ID) {
	if len(ids) == 0 {
		return
	}
	add := slices.Clone(ids)
	slices.SortFunc(add, compareIDs)
	add = slices.Compact(add)

	s.mu.Lock()
	defer s.mu.Unlock()
	first := sort.Search(len(s.ids), func(i int) bool { return compareIDs(s.ids[i], add[0]) >= 0 })
	merged := make([]envelope.ID, 0, len(s.ids)+len(add))
	merged = append(merged, s.ids[:first]...)
	i, j := first, 0
	for i < len(s.ids) || j < len(add) {
		switch {
		case j == len(add):
			merged = append(merged, s.ids[i])
			i++
		case i == len(s.ids):
			merged = append(merged, add[j])
			j++
		default:
			switch c := compareIDs(s.ids[i], add[j]); {
			case c < 0:
				merged = append(merged, s.ids[i])
				i++
			case c > 0:
				merged = append(merged, add[j])
				j++
			default:
				merged = append(merged, s.ids[i])
				i++
				j++
			}
		}
	}
	s.ids = merged
	prefix := make([]sum256, len(merged)+1)
	copy(prefix, s.prefix[:first+1])
	for k := first; k < len(merged); k++ {
		prefix[k+1] = prefix[k].add(sumOf(merged[k]))
	}
	s.prefix = prefix
}

// Has reports whether id is in the set.
func (s *MemSet) Has(id envelope.ID) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, found := slices.BinarySearchFunc(s.ids, id, compareIDs)
	return found
}

// Len returns the number of IDs.
func (s *MemSet) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.ids)
}

// IDs returns a copy of the IDs in ascending order.
func (s *MemSet) IDs() []envelope.ID {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.ids)
}

// index returns the position of the first ID >= b. Callers hold mu.
func (s *MemSet) index(b Bound) int {
	if b.inf {
		return len(s.ids)
	}
	return sort.Search(len(s.ids), func(i int) bool { return b.CompareID(s.ids[i]) <= 0 })
}

// Fingerprint implements Set.
func (s *MemSet) Fingerprint(lo, hi Bound) (Fingerprint, int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	i, j := s.index(lo), s.index(hi)
	if j < i {
		j = i
	}
	return s.prefix[j].sub(s.prefix[i]).fingerprint(uint64(j - i)), j - i, nil
}

// Range implements Set. fn runs without the lock held, on a snapshot taken
// in chunks, so it may call back into the set.
func (s *MemSet) Range(lo, hi Bound, fn func(envelope.ID) bool) error {
	const chunk = 256
	var buf [chunk]envelope.ID
	for {
		s.mu.RLock()
		i, j := s.index(lo), s.index(hi)
		n := copy(buf[:], s.ids[i:max(i, j)])
		s.mu.RUnlock()
		for _, id := range buf[:n] {
			if !fn(id) {
				return nil
			}
		}
		if n < chunk {
			return nil
		}
		// Continue just above the last ID delivered.
		next := buf[n-1]
		if !increment(&next) {
			return nil
		}
		lo = BoundOf(next)
	}
}

// increment sets id to id+1 as a big-endian integer, reporting false on
// overflow (id was all 0xff).
func increment(id *envelope.ID) bool {
	for i := IDSize - 1; i >= 0; i-- {
		id[i]++
		if id[i] != 0 {
			return true
		}
	}
	return false
}

// Nth implements IndexedSet.
func (s *MemSet) Nth(lo Bound, k int) (envelope.ID, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	i := s.index(lo) + k
	if k < 0 || i >= len(s.ids) {
		return envelope.ID{}, false, nil
	}
	return s.ids[i], true, nil
}
