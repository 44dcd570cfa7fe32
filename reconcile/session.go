package reconcile

import (
	"crypto/rand"
	"fmt"
	"math"

	"github.com/meshnode/meshnode/envelope"
)

// Initiator runs the side of a session that speaks first. It is not safe
// for concurrent use; run one per session.
type Initiator struct {
	session
	started bool
}

// NewInitiator starts a session over set.
func NewInitiator(set Set, p Params) (*Initiator, error) {
	s, err := newSession(set, p)
	if err != nil {
		return nil, err
	}
	if _, err := rand.Read(s.h.salt[:]); err != nil {
		return nil, fmt.Errorf("reconcile: drawing the session salt: %w", err)
	}
	return &Initiator{session: s}, nil
}

// Initiate returns the first message: the salt and the fingerprints of
// every node at a starting level chosen from the size of the set.
func (in *Initiator) Initiate() ([]byte, error) {
	if in.started {
		return nil, fmt.Errorf("%w: Initiate called twice", ErrProtocol)
	}
	in.started = true
	msg, err := in.initiate()
	if err != nil {
		in.finished = true
	}
	return msg, err
}

// Reconcile processes the responder's message. It returns the reply to
// send (nil: send nothing) and whether the session is over. A non-nil
// reply must be sent even when done is true; after done, no further
// message is expected, and Have, NeedCount and Take tell the difference.
func (in *Initiator) Reconcile(msg []byte) (reply []byte, done bool, err error) {
	if !in.started {
		return nil, false, fmt.Errorf("%w: Reconcile before Initiate", ErrProtocol)
	}
	return in.handle(msg, false)
}

// Responder runs the side of a session that answers. It is not safe for
// concurrent use; run one per incoming session.
type Responder struct {
	session
}

// NewResponder starts the answering side of a session over set.
func NewResponder(set Set, p Params) (*Responder, error) {
	s, err := newSession(set, p)
	if err != nil {
		return nil, err
	}
	return &Responder{session: s}, nil
}

// Reconcile processes the initiator's message; the results mean what they
// mean for Initiator.Reconcile. Both sides learn the difference.
func (r *Responder) Reconcile(msg []byte) (reply []byte, done bool, err error) {
	return r.handle(msg, r.received == 0)
}

// entry is a node our last message put to the peer: it awaits an answer.
type entry struct {
	node   Node
	kind   kind
	listed int // kindList: keys listed
}

// peerEntry is a node the peer's last message put to us.
type peerEntry struct {
	node    Node
	kind    kind
	acc     Accumulator // kindFP: ours
	differs bool        // kindFP
	it      *item       // kindCells, kindList: the peer's
}

// session is the state both sides share: the protocol is symmetric once
// the first message is sent.
type session struct {
	set      Set
	p        Params
	h        hasher
	sent     []entry
	received int
	finished bool

	scanned, scanLimit int

	have      []envelope.ID
	need8     map[uint64]int // keys (resultBytes) of the peer's IDs we lack
	need6     map[uint64]int // list keys (listBytes) of the peer's IDs we lack
	needCount int
	truncated bool
}

func newSession(set Set, p Params) (session, error) {
	if set == nil {
		return session{}, fmt.Errorf("%w: nil Set", ErrInvalidParams)
	}
	if err := p.validate(); err != nil {
		return session{}, err
	}
	return session{set: set, p: p, need8: map[uint64]int{}, need6: map[uint64]int{}}, nil
}

// Have returns the IDs this side holds that the peer lacks, learnt so far
// (the caller sends them).
func (s *session) Have() []envelope.ID { return s.have }

// NeedCount returns how many of the peer's IDs this side lacks (the peer
// sends them; Take checks each arrival).
func (s *session) NeedCount() int { return s.needCount }

// Truncated reports that the difference was larger than Params.MaxLearnt
// and only part of it was recorded.
func (s *session) Truncated() bool { return s.truncated }

// Take reports whether id is one of the peer's IDs reconciliation said
// this side lacks, and crosses it off (a second Take of it is false).
func (s *session) Take(id envelope.ID) bool {
	k := s.h.key(id)
	if s.need8[k] > 0 {
		s.need8[k]--
		return true
	}
	if k6 := listKey(k); s.need6[k6] > 0 {
		s.need6[k6]--
		return true
	}
	return false
}

func (s *session) addHave(id envelope.ID) {
	if len(s.have) >= s.p.MaxLearnt {
		s.truncated = true
		return
	}
	s.have = append(s.have, id)
}

func (s *session) addNeed(m map[uint64]int, key uint64) {
	if s.needCount >= s.p.MaxLearnt {
		s.truncated = true
		return
	}
	m[key]++
	s.needCount++
}

// startLevel is the level of the first message's fingerprints: nodes of
// at least about 64 IDs, at most 256 of them.
func startLevel(n int) int {
	level := 0
	for level < 2 && (1<<(FanoutBits*(level+1)))*64 <= n {
		level++
	}
	return level
}

func (s *session) initiate() ([]byte, error) {
	root, err := s.set.Acc(Node{})
	if err != nil {
		return nil, fmt.Errorf("reconcile: the whole set: %w", err)
	}
	s.scanLimit = ScanPerID*root.Count() + s.p.ScanBudget
	level := startLevel(root.Count())
	accs, err := s.children(Node{}, level, root)
	if err != nil {
		return nil, err
	}
	msg := make([]byte, 0, 2+SaltSize+FingerprintSize*len(accs))
	msg = append(msg, ProtocolVersion)
	msg = append(msg, s.h.salt[:]...)
	msg = append(msg, byte(level))
	for i, a := range accs {
		fp := s.h.fingerprint(a)
		msg = append(msg, fp[:]...)
		s.sent = append(s.sent, entry{node: Node{}.Child(level, uint64(i)), kind: kindFP})
	}
	return msg, nil
}

// children returns the accumulators of n's descendants depth levels down
// (n itself for depth 0, whose accumulator is acc).
func (s *session) children(n Node, depth int, acc Accumulator) ([]Accumulator, error) {
	if depth == 0 {
		return []Accumulator{acc}, nil
	}
	out := make([]Accumulator, 1<<(FanoutBits*depth))
	if err := s.set.Children(n, depth, out); err != nil {
		return nil, fmt.Errorf("reconcile: children of %v: %w", n, err)
	}
	return out, nil
}

// scan reads the IDs of n within the session's scan budget.
func (s *session) scan(n Node, fn func(envelope.ID)) error {
	var over bool
	err := s.set.Scan(n, func(id envelope.ID) bool {
		s.scanned++
		if s.scanned > s.scanLimit {
			over = true
			return false
		}
		fn(id)
		return true
	})
	if err != nil {
		return fmt.Errorf("reconcile: IDs of %v: %w", n, err)
	}
	if over {
		return fmt.Errorf("%w: the peer made this side read more than %d IDs", ErrTooLarge, s.scanLimit)
	}
	return nil
}

func (s *session) handle(msg []byte, first bool) (reply []byte, done bool, err error) {
	if s.finished {
		return nil, false, fmt.Errorf("%w: the session has ended", ErrProtocol)
	}
	defer func() {
		if err != nil {
			s.finished = true
		}
	}()
	s.received++
	if s.received > s.p.MaxRounds {
		return nil, false, fmt.Errorf("%w: peer sent more than %d messages", ErrTooManyRounds, s.p.MaxRounds)
	}
	if len(msg) > s.p.MaxMessageSize {
		return nil, false, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(msg), s.p.MaxMessageSize)
	}
	if len(msg) == 0 {
		return nil, false, fmt.Errorf("%w: empty message", ErrMalformed)
	}
	if msg[0] != ProtocolVersion {
		return nil, false, fmt.Errorf("%w: version %d, this node speaks %d", ErrVersion, msg[0], ProtocolVersion)
	}
	d := &decoder{b: msg, off: 1}
	var pe []peerEntry
	if first {
		pe, err = s.readFirst(d)
	} else {
		pe, err = s.readReply(d)
	}
	if err != nil {
		return nil, false, err
	}
	if d.remaining() > 0 {
		return nil, false, fmt.Errorf("%w: %d bytes after the last item", ErrMalformed, d.remaining())
	}
	if len(pe) == 0 {
		// The peer's message was final: nothing to answer.
		s.sent, s.finished = nil, true
		return nil, true, nil
	}
	reply, err = s.answer(pe)
	if err != nil {
		return nil, false, err
	}
	done = len(s.sent) == 0
	s.finished = done
	return reply, done, nil
}

// readFirst reads the initiator's first message.
func (s *session) readFirst(d *decoder) ([]peerEntry, error) {
	salt, err := d.bytes(SaltSize)
	if err != nil {
		return nil, err
	}
	copy(s.h.salt[:], salt)
	level, err := d.byte()
	if err != nil {
		return nil, err
	}
	if level > 3 {
		return nil, fmt.Errorf("%w: starting level %d (at most 3)", ErrProtocol, level)
	}
	root, err := s.set.Acc(Node{})
	if err != nil {
		return nil, fmt.Errorf("reconcile: the whole set: %w", err)
	}
	s.scanLimit = ScanPerID*root.Count() + s.p.ScanBudget
	fps, err := d.fps(1 << (FanoutBits * int(level)))
	if err != nil {
		return nil, err
	}
	accs, err := s.children(Node{}, int(level), root)
	if err != nil {
		return nil, err
	}
	pe := make([]peerEntry, len(fps))
	for i := range fps {
		pe[i] = peerEntry{node: Node{}.Child(int(level), uint64(i)), kind: kindFP, acc: accs[i]}
		pe[i].differs = s.h.fingerprint(accs[i]) != fps[i]
	}
	return pe, nil
}

// readReply reads a message answering our last one and learns from it.
func (s *session) readReply(d *decoder) ([]peerEntry, error) {
	nfp := 0
	for _, e := range s.sent {
		if e.kind == kindFP {
			nfp++
		}
	}
	bits, err := d.bitmap(nfp)
	if err != nil {
		return nil, err
	}
	var pe []peerEntry
	fpi := 0
	for _, e := range s.sent {
		if e.kind == kindFP {
			differs := bits[fpi]
			fpi++
			if !differs {
				continue
			}
		}
		it, err := d.item(e.kind, e.node, e.listed)
		if err != nil {
			return nil, err
		}
		if pe, err = s.read(e, it, pe); err != nil {
			return nil, err
		}
		if len(pe) > s.p.maxEntries() {
			return nil, fmt.Errorf("%w: a message opens more than %d nodes", ErrTooLarge, s.p.maxEntries())
		}
	}
	return pe, nil
}

// read takes in the peer's item answering our entry e.
func (s *session) read(e entry, it *item, pe []peerEntry) ([]peerEntry, error) {
	switch it.mode {
	case modeSplit1, modeSplit2:
		depth := splitDepth(it.mode)
		acc, err := s.set.Acc(e.node)
		if err != nil {
			return nil, fmt.Errorf("reconcile: %v: %w", e.node, err)
		}
		accs, err := s.children(e.node, depth, acc)
		if err != nil {
			return nil, err
		}
		any := false
		for i, a := range accs {
			differs := s.h.fingerprint(a) != it.fps[i]
			any = any || differs
			pe = append(pe, peerEntry{node: e.node.Child(depth, uint64(i)), kind: kindFP, acc: a, differs: differs})
		}
		if !any {
			return nil, fmt.Errorf("%w: inconsistent fingerprints: %v differs, but the peer's %d children all match ours", ErrProtocol, e.node, len(accs))
		}
	case modeFP:
		acc, err := s.set.Acc(e.node)
		if err != nil {
			return nil, fmt.Errorf("reconcile: %v: %w", e.node, err)
		}
		if s.h.fingerprint(acc) == it.fps[0] {
			return nil, fmt.Errorf("%w: inconsistent fingerprints: the peer answers %v with a fingerprint equal to ours", ErrProtocol, e.node)
		}
		pe = append(pe, peerEntry{node: e.node, kind: kindFP, acc: acc, differs: true})
	case modeCells:
		pe = append(pe, peerEntry{node: e.node, kind: kindCells, it: it})
	case modeList:
		pe = append(pe, peerEntry{node: e.node, kind: kindList, it: it})
	case modeResult:
		return pe, s.readResult(e, it)
	case modeIDDiff:
		return pe, s.readIDDiff(e, it)
	}
	return pe, nil
}

// readResult learns from the peer's decoding of our cell table.
func (s *session) readResult(e entry, it *item) error {
	if len(it.lack) == 0 && len(it.extra) == 0 {
		return fmt.Errorf("%w: inconsistent: the peer decoded no difference in %v", ErrProtocol, e.node)
	}
	if len(it.lack) > 0 {
		want := make(map[uint64]int, len(it.lack))
		for _, k := range it.lack {
			want[k]++
		}
		found := 0
		err := s.scan(e.node, func(id envelope.ID) {
			if k := s.h.key(id); want[k] > 0 {
				want[k]--
				found++
				s.addHave(id)
			}
		})
		if err != nil {
			return err
		}
		if found != len(it.lack) {
			return fmt.Errorf("%w: the peer says it lacks %d of our IDs in %v; %d are ours", ErrProtocol, len(it.lack), e.node, found)
		}
	}
	for _, k := range it.extra {
		s.addNeed(s.need8, k)
	}
	return nil
}

// readIDDiff learns from the peer's answer to our ID list.
func (s *session) readIDDiff(e entry, it *item) error {
	mine, err := s.listOf(e.node)
	if err != nil {
		return err
	}
	if len(mine) != e.listed {
		return fmt.Errorf("reconcile: internal error: %v lists %d IDs, %d before (the set changed during the session)", e.node, len(mine), e.listed)
	}
	any := len(it.keys) > 0
	for i, lack := range it.bits {
		if lack {
			any = true
			s.addHave(mine[i].id)
		}
	}
	if !any {
		return fmt.Errorf("%w: inconsistent: the peer's answer to our list of %v shows no difference", ErrProtocol, e.node)
	}
	for _, k := range it.keys {
		s.addNeed(s.need6, k)
	}
	return nil
}

// keyed is an ID with its list key.
type keyed struct {
	key uint64
	id  envelope.ID
}

// listOf returns the IDs of n with their list keys, ordered by key (then
// ID): the order of an ID list.
func (s *session) listOf(n Node) ([]keyed, error) {
	var out []keyed
	err := s.scan(n, func(id envelope.ID) { out = append(out, keyed{listKey(s.h.key(id)), id}) })
	if err != nil {
		return nil, err
	}
	sortKeyed(out)
	return out, nil
}

// lambda estimates the expected differences per node at a level where k
// of m compared nodes differed (Poisson), and saturates when all did.
func lambda(m, k int) float64 {
	if k >= m {
		return math.Log(float64(m)) + 2
	}
	return -math.Log(1 - float64(k)/float64(m))
}

// expected is the expected number of differences in a node known to
// differ, at rate l.
func expected(l float64) float64 {
	if l < 1e-9 {
		return 1
	}
	return l / (1 - math.Exp(-l))
}

// emitted is one answer of our reply and what it teaches us once sent.
type emitted struct {
	it    *item
	learn func()
}

// answer builds our reply to the peer's entries pe.
func (s *session) answer(pe []peerEntry) ([]byte, error) {
	// The rate of differences at each level, from the fingerprints
	// compared.
	type tally struct{ m, k int }
	rates := map[int]*tally{}
	var bits []bool
	todo := 0
	for i := range pe {
		if pe[i].kind == kindFP {
			t := rates[pe[i].node.Level]
			if t == nil {
				t = &tally{}
				rates[pe[i].node.Level] = t
			}
			t.m++
			if pe[i].differs {
				t.k++
			}
			bits = append(bits, pe[i].differs)
			if !pe[i].differs {
				continue
			}
		}
		todo++
	}
	out := []byte{ProtocolVersion}
	out = append(out, packBits(bits)...)
	s.sent = s.sent[:0:0]
	entries := 0
	for i := range pe {
		p := &pe[i]
		if p.kind == kindFP && !p.differs {
			continue
		}
		todo--
		e := 2.0
		if p.kind == kindFP {
			t := rates[p.node.Level]
			e = expected(lambda(t.m, t.k))
		}
		em, err := s.respond(p, e)
		if err != nil {
			return nil, err
		}
		// Room must stay for a deferral (mode and fingerprint) of every
		// node still to answer, and for the nodes they open.
		if len(out)+em.it.cost()+todo*(1+FingerprintSize) > s.p.MaxMessageSize ||
			entries+em.it.entries()+todo > s.p.maxEntries() {
			if em, err = s.deferral(p); err != nil {
				return nil, err
			}
		}
		out = appendItem(out, em.it)
		entries += em.it.entries()
		if em.learn != nil {
			em.learn()
		}
		s.open(p.node, em.it)
	}
	if len(out) > s.p.MaxMessageSize {
		return nil, fmt.Errorf("reconcile: internal error: reply of %d bytes over the limit", len(out))
	}
	return out, nil
}

// open records the entries our item opens on node n.
func (s *session) open(n Node, it *item) {
	switch it.mode {
	case modeSplit1, modeSplit2:
		depth := splitDepth(it.mode)
		for i := range it.fps {
			s.sent = append(s.sent, entry{node: n.Child(depth, uint64(i)), kind: kindFP})
		}
	case modeFP:
		s.sent = append(s.sent, entry{node: n, kind: kindFP})
	case modeCells:
		s.sent = append(s.sent, entry{node: n, kind: kindCells})
	case modeList:
		s.sent = append(s.sent, entry{node: n, kind: kindList, listed: len(it.keys)})
	}
}

// deferral answers a node with our fingerprint: the peer acts on it next.
func (s *session) deferral(p *peerEntry) (emitted, error) {
	acc := p.acc
	if p.kind != kindFP {
		var err error
		if acc, err = s.set.Acc(p.node); err != nil {
			return emitted{}, fmt.Errorf("reconcile: %v: %w", p.node, err)
		}
	}
	return emitted{it: &item{mode: modeFP, fps: []Fingerprint{s.h.fingerprint(acc)}}}, nil
}

// respond is our preferred answer to one of the peer's entries.
func (s *session) respond(p *peerEntry, e float64) (emitted, error) {
	switch p.kind {
	case kindCells:
		return s.decodeCells(p)
	case kindList:
		return s.diffList(p)
	}
	return s.act(p.node, p.acc.Count(), e)
}

// act chooses what to do about a node whose fingerprints differ, holding
// c of our IDs and about e differences: list it (small, or dense in
// differences), send a one-cell table (about one difference), or split it.
func (s *session) act(n Node, c int, e float64) (emitted, error) {
	switch {
	case c <= 16 || (c <= s.p.MaxScanNode && e*16 >= float64(c)) || n.Level == MaxLevel:
		return s.list(n)
	case c <= s.p.MaxScanNode && e <= 1.3:
		return s.cells(n, 1)
	}
	depth := 1
	if e >= 48 && n.Level+2 <= MaxLevel {
		depth = 2
	}
	acc, err := s.set.Acc(n)
	if err != nil {
		return emitted{}, fmt.Errorf("reconcile: %v: %w", n, err)
	}
	accs, err := s.children(n, depth, acc)
	if err != nil {
		return emitted{}, err
	}
	it := &item{mode: modeSplit1, fps: make([]Fingerprint, len(accs))}
	if depth == 2 {
		it.mode = modeSplit2
	}
	for i, a := range accs {
		it.fps[i] = s.h.fingerprint(a)
	}
	return emitted{it: it}, nil
}

func (s *session) list(n Node) (emitted, error) {
	mine, err := s.listOf(n)
	if err != nil {
		return emitted{}, err
	}
	keys := make([]uint64, len(mine))
	for i, k := range mine {
		keys[i] = k.key
	}
	return emitted{it: &item{mode: modeList, keys: keys}}, nil
}

func (s *session) cells(n Node, c int) (emitted, error) {
	table := make([]cell, c)
	err := s.scan(n, func(id envelope.ID) { s.h.addKey(table, s.h.key(id), 1) })
	if err != nil {
		return emitted{}, err
	}
	return emitted{it: &item{mode: modeCells, cells: table}}, nil
}

// decodeCells answers the peer's cell table: the keys each side lacks if
// the difference decodes, else a list or a split of the node.
func (s *session) decodeCells(p *peerEntry) (emitted, error) {
	acc, err := s.set.Acc(p.node)
	if err != nil {
		return emitted{}, fmt.Errorf("reconcile: %v: %w", p.node, err)
	}
	if acc.Count() <= s.p.MaxScanNode {
		diff := append([]cell(nil), p.it.cells...)
		mine := map[uint64]envelope.ID{}
		err := s.scan(p.node, func(id envelope.ID) {
			k := s.h.key(id)
			mine[k] = id
			s.h.addKey(diff, k, -1)
		})
		if err != nil {
			return emitted{}, err
		}
		theirs, ours, ok := s.h.peel(diff)
		ok = ok && len(theirs)+len(ours) > 0
		for _, k := range theirs {
			_, held := mine[k]
			ok = ok && !held
		}
		for _, k := range ours {
			_, held := mine[k]
			ok = ok && held
		}
		if ok {
			it := &item{mode: modeResult, lack: sortKeys(theirs), extra: sortKeys(ours)}
			return emitted{it: it, learn: func() {
				for _, k := range theirs {
					s.addNeed(s.need8, k)
				}
				for _, k := range ours {
					s.addHave(mine[k])
				}
			}}, nil
		}
	}
	// At least two differences (or a table we could not check).
	return s.act(p.node, acc.Count(), 2)
}

// diffList answers the peer's ID list of a node.
func (s *session) diffList(p *peerEntry) (emitted, error) {
	acc, err := s.set.Acc(p.node)
	if err != nil {
		return emitted{}, fmt.Errorf("reconcile: %v: %w", p.node, err)
	}
	if acc.Count() > s.p.MaxScanNode && p.node.Level < MaxLevel {
		return s.act(p.node, acc.Count(), 2)
	}
	mine, err := s.listOf(p.node)
	if err != nil {
		return emitted{}, err
	}
	theirs := p.it.keys
	bits := make([]bool, len(theirs))
	var extra []keyed
	i, j := 0, 0
	for i < len(theirs) || j < len(mine) {
		switch {
		case j == len(mine) || (i < len(theirs) && theirs[i] < mine[j].key):
			bits[i] = true
			i++
		case i == len(theirs) || mine[j].key < theirs[i]:
			extra = append(extra, mine[j])
			j++
		default:
			i++
			j++
		}
	}
	keys := make([]uint64, len(extra))
	for k, x := range extra {
		keys[k] = x.key
	}
	it := &item{mode: modeIDDiff, bits: bits, keys: keys}
	return emitted{it: it, learn: func() {
		for k, lack := range bits {
			if lack {
				s.addNeed(s.need6, theirs[k])
			}
		}
		for _, x := range extra {
			s.addHave(x.id)
		}
	}}, nil
}
