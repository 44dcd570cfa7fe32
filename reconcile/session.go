package reconcile

import (
	"fmt"
	"slices"
	"sort"

	"github.com/meshnode/meshnode/envelope"
)

// Initiator runs the side of a session that speaks first. It is not safe
// for concurrent use; run one per session.
type Initiator struct {
	s       session
	started bool
}

// NewInitiator starts a session over set.
func NewInitiator(set Set, p Params) (*Initiator, error) {
	s, err := newSession(set, p)
	if err != nil {
		return nil, err
	}
	return &Initiator{s: s}, nil
}

// Initiate returns the first message: B fingerprints over the whole ID
// space, or the whole set as an ID list when it is small.
func (in *Initiator) Initiate() ([]byte, error) {
	if in.started {
		return nil, fmt.Errorf("%w: Initiate called twice", ErrProtocol)
	}
	in.started = true
	msg, err := in.s.initiate()
	if err != nil {
		in.s.finished = true
	}
	return msg, err
}

// Reconcile processes the responder's message. It returns the reply to
// send (nil: send nothing), the IDs this side has that the responder lacks
// (have) and those the responder has that this side lacks (need), learnt
// from this message and not reported before, and whether the session is
// over. A non-nil reply must be sent even when done is true; after done,
// no further message is expected.
func (in *Initiator) Reconcile(msg []byte) (reply []byte, have, need []envelope.ID, done bool, err error) {
	if !in.started {
		return nil, nil, nil, false, fmt.Errorf("%w: Reconcile before Initiate", ErrProtocol)
	}
	return in.s.handle(msg)
}

// Responder runs the side of a session that answers. It is not safe for
// concurrent use; run one per incoming session.
type Responder struct {
	s session
}

// NewResponder starts the answering side of a session over set.
func NewResponder(set Set, p Params) (*Responder, error) {
	s, err := newSession(set, p)
	if err != nil {
		return nil, err
	}
	return &Responder{s: s}, nil
}

// Reconcile processes the initiator's message; the results mean what they
// mean for Initiator.Reconcile. The responder learns the same difference
// as the initiator (mirrored), so either side can start the transfers.
func (r *Responder) Reconcile(msg []byte) (reply []byte, have, need []envelope.ID, done bool, err error) {
	return r.s.handle(msg)
}

// pendingList is an ID list of our last message, kept to read the bitmap
// of the peer's answer.
type pendingList struct {
	lo, hi Bound
	ids    []envelope.ID
}

// session is the state both sides share: the protocol is symmetric once
// the first message is sent.
type session struct {
	set      Set
	p        Params
	pending  []pendingList            // ID lists of our last message, ascending
	reported map[envelope.ID]struct{} // IDs already returned as have or need
	received int
	finished bool // done or failed: no more messages accepted
}

func newSession(set Set, p Params) (session, error) {
	if set == nil {
		return session{}, fmt.Errorf("%w: nil Set", ErrInvalidParams)
	}
	if err := p.validate(); err != nil {
		return session{}, err
	}
	return session{set: set, p: p, reported: make(map[envelope.ID]struct{})}, nil
}

// learner collects what one message taught us, skipping IDs reported
// earlier in the session (a range deferred after its difference was
// computed can be reconciled twice).
type learner struct {
	s          *session
	have, need []envelope.ID
}

func (l *learner) addHave(id envelope.ID) {
	if _, ok := l.s.reported[id]; !ok {
		l.s.reported[id] = struct{}{}
		l.have = append(l.have, id)
	}
}

func (l *learner) addNeed(id envelope.ID) {
	if _, ok := l.s.reported[id]; !ok {
		l.s.reported[id] = struct{}{}
		l.need = append(l.need, id)
	}
}

func (s *session) initiate() ([]byte, error) {
	lo, hi := Lowest(), Infinity()
	fp, n, err := s.set.Fingerprint(lo, hi)
	if err != nil {
		return nil, fmt.Errorf("reconcile: fingerprint of the whole set: %w", err)
	}
	it, err := s.differs(lo, hi, fp, n)
	if err != nil {
		return nil, err
	}
	l := learner{s: s}
	out, pend, err := s.layout([]item{it}, &l)
	if err != nil {
		return nil, err
	}
	s.pending = pend
	return encodeMessage(out), nil
}

func (s *session) handle(msg []byte) (reply []byte, have, need []envelope.ID, done bool, err error) {
	if s.finished {
		return nil, nil, nil, false, fmt.Errorf("%w: the session has ended", ErrProtocol)
	}
	defer func() {
		if err != nil {
			s.finished = true
		}
	}()
	s.received++
	if s.received > s.p.MaxRounds {
		return nil, nil, nil, false, fmt.Errorf("%w: peer sent more than %d messages", ErrTooManyRounds, s.p.MaxRounds)
	}
	rs, err := decodeMessage(msg, s.p)
	if err != nil {
		return nil, nil, nil, false, err
	}
	l := learner{s: s}
	items, waiting, err := s.process(rs, &l)
	if err != nil {
		return nil, nil, nil, false, err
	}
	out, pend, err := s.layout(items, &l)
	if err != nil {
		return nil, nil, nil, false, err
	}
	s.pending = pend
	done = true
	for i := range out {
		if out[i].mode == modeFingerprint || out[i].mode == modeIDList {
			done = false // we will wait for the peer's answer
		}
	}
	if done {
		s.finished = true
	}
	// The peer waits for an answer only if it sent something to answer.
	if waiting {
		reply = encodeMessage(out)
	} else if len(out) > 0 {
		return nil, nil, nil, false, fmt.Errorf("reconcile: internal error: reply to a final message")
	}
	return reply, l.have, l.need, done, nil
}

// process answers each range of a message: Skip and IDDiff ranges settle
// at once; Fingerprint and IDList ranges become items of the reply. It
// reports whether the peer waits for a reply.
func (s *session) process(rs []wireRange, l *learner) ([]item, bool, error) {
	var items []item
	waiting := false
	pend := s.pending
	collect := s.p.MaxIDs // our-only IDs we may still gather for differences
	lo := Lowest()
	for i := range rs {
		r := &rs[i]
		switch r.mode {
		case modeFingerprint:
			waiting = true
			fp, n, err := s.set.Fingerprint(lo, r.hi)
			if err != nil {
				return nil, false, fmt.Errorf("reconcile: fingerprint of [%v, %v): %w", lo, r.hi, err)
			}
			if fp != r.fp {
				it, err := s.differs(lo, r.hi, fp, n)
				if err != nil {
					return nil, false, err
				}
				items = append(items, it)
			}
		case modeIDList:
			waiting = true
			it, differ, err := s.diff(lo, r.hi, r.ids, &collect)
			if err != nil {
				return nil, false, err
			}
			if differ {
				items = append(items, it)
			}
		case modeIDDiff:
			if err := s.applyDiff(lo, r, &pend, l); err != nil {
				return nil, false, err
			}
		}
		lo = r.hi
	}
	return items, waiting, nil
}

// differs builds the item for a range [lo, hi) whose fingerprints differ
// and where we hold n IDs with fingerprint fp: our ID list if n is small,
// else a split into Branching sub-ranges.
func (s *session) differs(lo, hi Bound, fp Fingerprint, n int) (item, error) {
	if n < s.p.IDListThreshold {
		ids := make([]envelope.ID, 0, n)
		err := s.set.Range(lo, hi, func(id envelope.ID) bool {
			ids = append(ids, id)
			return len(ids) < s.p.IDListThreshold
		})
		if err != nil {
			return item{}, fmt.Errorf("reconcile: IDs of [%v, %v): %w", lo, hi, err)
		}
		if len(ids) < s.p.IDListThreshold {
			return item{kind: itemList, lo: lo, hi: hi, fp: fp, ids: ids}, nil
		}
		n = len(ids) // the set grew meanwhile: split instead
	}
	// The split itself is computed by layout, only if it is sent.
	return item{kind: itemSplit, lo: lo, hi: hi, fp: fp, count: n}, nil
}

// split cuts [lo, hi), holding about n >= 2 of our IDs, into min(B, n)
// sub-ranges of nearly equal counts, each bounded by the shortest prefix
// that separates its neighbours, and fingerprints them.
func (s *session) split(lo, hi Bound, n int) ([]sub, error) {
	buckets := min(s.p.Branching, n)
	if is, ok := s.set.(IndexedSet); ok {
		subs, ok, err := splitIndexed(is, lo, hi, n, buckets)
		if err != nil || ok {
			return subs, err
		}
		// The set changed under us; the scan below copes.
	}
	var (
		subs []sub
		acc  Accumulator
		prev envelope.ID
		i    int
		j    = 1
	)
	err := s.set.Range(lo, hi, func(id envelope.ID) bool {
		if j < buckets && i == j*n/buckets {
			subs = append(subs, sub{hi: between(prev, id), fp: acc.Fingerprint()})
			acc = Accumulator{}
			j++
		}
		acc.Add(id)
		prev = id
		i++
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("reconcile: IDs of [%v, %v): %w", lo, hi, err)
	}
	return append(subs, sub{hi: hi, fp: acc.Fingerprint()}), nil
}

// splitIndexed is split by look-ups. It reports false if the set no longer
// matches n.
func splitIndexed(is IndexedSet, lo, hi Bound, n, buckets int) ([]sub, bool, error) {
	bounds := make([]Bound, buckets+1)
	bounds[0], bounds[buckets] = lo, hi
	for j := 1; j < buckets; j++ {
		k := j * n / buckets
		prev, ok1, err := is.Nth(lo, k-1)
		if err != nil {
			return nil, false, fmt.Errorf("reconcile: ID %d of [%v, %v): %w", k-1, lo, hi, err)
		}
		next, ok2, err := is.Nth(lo, k)
		if err != nil {
			return nil, false, fmt.Errorf("reconcile: ID %d of [%v, %v): %w", k, lo, hi, err)
		}
		if !ok1 || !ok2 || hi.CompareID(next) <= 0 {
			return nil, false, nil
		}
		bounds[j] = between(prev, next)
		if bounds[j].Compare(bounds[j-1]) <= 0 {
			return nil, false, nil
		}
	}
	subs := make([]sub, buckets)
	for j := range subs {
		fp, _, err := is.Fingerprint(bounds[j], bounds[j+1])
		if err != nil {
			return nil, false, fmt.Errorf("reconcile: fingerprint of [%v, %v): %w", bounds[j], bounds[j+1], err)
		}
		subs[j] = sub{hi: bounds[j+1], fp: fp}
	}
	return subs, true, nil
}

// diff compares the peer's ID list of [lo, hi) with ours. It gathers at
// most *collect of our IDs the peer lacks (the rest of the range is then
// answered in a later round) and reports false if the range is equal.
func (s *session) diff(lo, hi Bound, theirs []envelope.ID, collect *int) (item, bool, error) {
	it := item{kind: itemDiff, lo: lo, hi: hi, theirs: theirs, lack: make([]bool, len(theirs)), complete: true}
	j := 0
	err := s.set.Range(lo, hi, func(id envelope.ID) bool {
		for j < len(theirs) && compareIDs(theirs[j], id) < 0 {
			it.lack[j] = true
			j++
		}
		if j < len(theirs) && theirs[j] == id {
			j++
			return true
		}
		if len(it.ids) == *collect {
			it.complete, it.stop = false, id
			return false
		}
		it.ids = append(it.ids, id)
		return true
	})
	if err != nil {
		return item{}, false, fmt.Errorf("reconcile: IDs of [%v, %v): %w", lo, hi, err)
	}
	*collect -= len(it.ids)
	if it.complete {
		for ; j < len(theirs); j++ {
			it.lack[j] = true
		}
		if len(it.ids) == 0 && !slices.Contains(it.lack, true) {
			return item{}, false, nil
		}
	}
	return it, true, nil
}

// applyDiff reads the peer's answer to one of our ID lists.
func (s *session) applyDiff(lo Bound, r *wireRange, pend *[]pendingList, l *learner) error {
	for len(*pend) > 0 && (*pend)[0].hi.Compare(lo) <= 0 {
		*pend = (*pend)[1:]
	}
	if len(*pend) == 0 || (*pend)[0].lo.Compare(lo) > 0 || (*pend)[0].hi.Compare(r.hi) < 0 {
		return fmt.Errorf("%w: IDDiff [%v, %v) answers no ID list of ours", ErrProtocol, lo, r.hi)
	}
	ids := (*pend)[0].ids
	a := sort.Search(len(ids), func(i int) bool { return lo.CompareID(ids[i]) <= 0 })
	b := sort.Search(len(ids), func(i int) bool { return r.hi.CompareID(ids[i]) <= 0 })
	mine := ids[a:b]
	if r.nbit != len(mine) {
		return fmt.Errorf("%w: IDDiff [%v, %v) has %d bits for our %d IDs", ErrProtocol, lo, r.hi, r.nbit, len(mine))
	}
	for _, id := range r.ids {
		if _, found := slices.BinarySearchFunc(mine, id, compareIDs); found {
			return fmt.Errorf("%w: IDDiff [%v, %v) offers ID %s we listed", ErrProtocol, lo, r.hi, id.Short())
		}
	}
	for i, id := range mine {
		if r.bits[i/8]&(1<<(i%8)) != 0 {
			l.addHave(id)
		}
	}
	for _, id := range r.ids {
		l.addNeed(id)
	}
	return nil
}
