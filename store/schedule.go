package store

import (
	"container/heap"
	"math"
	"sync"
	"time"

	"github.com/meshnode/meshnode/envelope"
)

// The retention schedule: which mailboxes a retention pass looks at.
//
// A host holds 100,000 mailboxes or more, most of them idle; a pass that
// read every mailbox's state, oldest envelope and tombstones every
// RetentionInterval would cost hundreds of thousands of reads a minute to
// find nothing. So each mailbox has a due time, the earliest moment its
// retention could have anything to do, and a pass visits only the
// mailboxes that are due:
//
//	over MaxCount or MaxBytes, or a policy just set    now
//	MaxAge                                             oldest arrival + MaxAge
//	tombstones                                         earliest expiry
//
// A due time is only ever lowered between passes (atMost): the writer,
// after every commit, lowers it for each mailbox the commit changed to a
// bound that is never later than the true one (a Put: now + MaxAge, since
// the oldest envelope is no younger; tombstones written: now +
// TombstoneTTL; over a limit or a new policy: now). A pass takes the due
// mailboxes out, works on them, and puts each back at the exact time it
// read (its oldest envelope's expiry, its earliest tombstone's), lowered
// by whatever the writer recorded meanwhile. Too early costs one check;
// too late cannot happen. At open every mailbox that holds anything is
// due, so the first pass looks at all of them once (the default policy
// may have changed while the store was closed).
//
// The schedule lives in memory (about 100 bytes a mailbox); its owner is
// the mutex below, which is never held across Badger.
type schedule struct {
	mu  sync.Mutex
	due map[envelope.MailboxID]int64 // Unix nanoseconds
	q   dueHeap                      // may hold stale entries (lazy deletion)
}

// never is the due time of a mailbox retention has nothing to do for.
const never = math.MaxInt64

type dueItem struct {
	at int64
	m  envelope.MailboxID
}

type dueHeap []dueItem

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueItem)) }
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func newSchedule() *schedule {
	return &schedule{due: map[envelope.MailboxID]int64{}}
}

// atMost lowers m's due time to at (never: nothing to do).
func (s *schedule) atMost(m envelope.MailboxID, at int64) {
	if at == never {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.due[m]; ok && cur <= at {
		return
	}
	s.due[m] = at
	heap.Push(&s.q, dueItem{at: at, m: m})
	// Stale entries (a mailbox lowered again) are dropped as they surface;
	// rebuild when they outnumber the live ones.
	if len(s.q) > 2*len(s.due)+1024 {
		s.q = s.q[:0]
		for m, at := range s.due {
			s.q = append(s.q, dueItem{at: at, m: m})
		}
		heap.Init(&s.q)
	}
}

// take removes and returns the mailboxes due at now, earliest first.
func (s *schedule) take(now time.Time) []envelope.MailboxID {
	t := now.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []envelope.MailboxID
	for len(s.q) > 0 && s.q[0].at <= t {
		it := heap.Pop(&s.q).(dueItem)
		if cur, ok := s.due[it.m]; !ok || cur != it.at {
			continue // stale
		}
		delete(s.due, it.m)
		out = append(out, it.m)
	}
	return out
}

// len is the number of mailboxes with a due time.
func (s *schedule) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.due)
}

// dueAfterCommit is the bound the writer records for a mailbox a commit
// changed (see above).
func (s *Store) dueAfterCommit(st *mailboxState, policySet bool, now time.Time) int64 {
	if st.count == 0 && st.tombstones == 0 {
		return never
	}
	pol := s.policyOf(st)
	if policySet || (pol.MaxCount > 0 && int64(st.count) > pol.MaxCount) || (pol.MaxBytes > 0 && int64(st.bytes) > pol.MaxBytes) {
		return now.UnixNano()
	}
	at := int64(never)
	if pol.MaxAge > 0 && st.count > 0 {
		at = now.Add(pol.MaxAge).UnixNano()
	}
	if st.tombstones > 0 {
		at = min(at, now.Add(s.p.tombstoneTTL()).UnixNano())
	}
	return at
}
