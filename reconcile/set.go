package reconcile

import (
	"bytes"
	"slices"
	"sort"
	"sync"

	"github.com/meshnode/meshnode/envelope"
)

// Set is one side's view of a mailbox's envelope IDs, cut into the trie
// of Node. A session reads it from one goroutine; it must not change
// during a session (the store hands out a read snapshot), or the checks
// that catch an inconsistent peer would blame the peer for our changes.
type Set interface {
	// Acc returns the accumulator of the IDs in n.
	Acc(n Node) (Accumulator, error)
	// Children fills out (16^depth entries) with the accumulators of the
	// descendants of n depth levels down, in ID order.
	Children(n Node, depth int, out []Accumulator) error
	// Scan calls fn for each ID in n in ascending order until fn returns
	// false.
	Scan(n Node, fn func(envelope.ID) bool) error
}

// MemSet is an in-memory Set: a sorted slice of distinct IDs and the
// prefix sums of their accumulators, so Acc costs two binary searches.
// It is safe for concurrent use; sessions see it as of each call (use
// Freeze for a fixed view).
type MemSet struct {
	mu     sync.RWMutex
	ids    []envelope.ID // ascending, distinct
	prefix []sum256      // prefix[i] is the sum of ids[:i]
}

var _ Set = (*MemSet)(nil)

// NewMemSet returns a set holding ids (duplicates dropped).
func NewMemSet(ids ...envelope.ID) *MemSet {
	s := &MemSet{prefix: make([]sum256, 1)}
	s.Add(ids...)
	return s
}

func compareIDs(a, b envelope.ID) int { return bytes.Compare(a[:], b[:]) }

// Add inserts ids; those already present are ignored. It costs O(n).
func (s *MemSet) Add(ids ...envelope.ID) {
	if len(ids) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	all := append(slices.Clone(s.ids), ids...)
	slices.SortFunc(all, compareIDs)
	all = slices.Compact(all)
	s.ids = all
	s.prefix = make([]sum256, len(all)+1)
	for i, id := range all {
		s.prefix[i+1] = s.prefix[i].add(sumOf(id))
	}
}

// Has reports whether id is in the set.
func (s *MemSet) Has(id envelope.ID) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := slices.BinarySearchFunc(s.ids, id, compareIDs)
	return ok
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

// span returns the positions [i, j) of the IDs in n. Callers hold mu.
func (s *MemSet) span(n Node) (int, int) {
	lo, hi, last := n.Bounds()
	i := sort.Search(len(s.ids), func(k int) bool { return compareIDs(s.ids[k], lo) >= 0 })
	if last {
		return i, len(s.ids)
	}
	j := sort.Search(len(s.ids), func(k int) bool { return compareIDs(s.ids[k], hi) >= 0 })
	return i, j
}

// Acc implements Set.
func (s *MemSet) Acc(n Node) (Accumulator, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	i, j := s.span(n)
	return Accumulator{sum: s.prefix[j].sub(s.prefix[i]), count: uint64(j - i)}, nil
}

// Children implements Set.
func (s *MemSet) Children(n Node, depth int, out []Accumulator) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for k := range out {
		i, j := s.span(n.Child(depth, uint64(k)))
		out[k] = Accumulator{sum: s.prefix[j].sub(s.prefix[i]), count: uint64(j - i)}
	}
	return nil
}

// Scan implements Set. fn runs on a copy, without the lock held.
func (s *MemSet) Scan(n Node, fn func(envelope.ID) bool) error {
	s.mu.RLock()
	i, j := s.span(n)
	ids := slices.Clone(s.ids[i:j])
	s.mu.RUnlock()
	for _, id := range ids {
		if !fn(id) {
			return nil
		}
	}
	return nil
}
