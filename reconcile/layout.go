package reconcile

import (
	"fmt"
	"sort"

	"github.com/meshnode/meshnode/envelope"
)

// An item is one range of a reply that needs more than a Skip, before it
// is laid out within the message limits.
type itemKind int

const (
	itemSplit itemKind = iota // fingerprints differ: B sub-range fingerprints
	itemList                  // fingerprints differ, few IDs: our ID list
	itemDiff                  // the peer listed its IDs: our IDDiff
)

type sub struct {
	hi Bound
	fp Fingerprint
}

type item struct {
	kind   itemKind
	lo, hi Bound
	fp     Fingerprint // itemSplit, itemList: our fingerprint of [lo, hi)
	count  int         // itemSplit: our IDs in [lo, hi)
	subs   []sub       // itemSplit, once computed
	// itemList: our IDs. itemDiff: our IDs the peer lacks, ascending; all
	// of them if complete, else the first few and stop the next one.
	ids      []envelope.ID
	complete bool
	stop     envelope.ID
	theirs   []envelope.ID // itemDiff: the peer's list
	lack     []bool        // itemDiff: lack[i]: we lack theirs[i] (known below stop)
	// lead is the Skip range needed before the item: none if the item
	// before it ends where it starts (every form of an item ends at its hi,
	// a group at its last item's hi), so costs are exact but for the bound
	// of a partial difference.
	lead cost
}

// cost counts what a piece of a message spends of each limit.
type cost struct{ bytes, ranges, ids int }

func (c cost) add(d cost) cost { return cost{c.bytes + d.bytes, c.ranges + d.ranges, c.ids + d.ids} }
func (c cost) sub(d cost) cost { return cost{c.bytes - d.bytes, c.ranges - d.ranges, c.ids - d.ids} }
func (c cost) within(l cost) bool {
	return c.bytes <= l.bytes && c.ranges <= l.ranges && c.ids <= l.ids
}

// skipCost is the Skip range that precedes a range starting at lo when
// the range before it ended below lo.
func skipCost(lo Bound) cost { return cost{lo.encodedLen() + 1, 1, 0} }

func fpCost(hi Bound) cost { return cost{hi.encodedLen() + 1 + FingerprintSize, 1, 0} }

func diffCost(hiLen, nbit, k int) cost {
	return cost{hiLen + 1 + uvarintLen(uint64(nbit)) + (nbit+7)/8 + uvarintLen(uint64(k)) + IDSize*k, 1, k}
}

// minSplitCost is the least a split can cost: every sub-range bound takes
// at least two bytes. Layout checks it before computing a split.
func (s *session) minSplitCost(it *item) cost {
	b := min(s.p.Branching, it.count)
	return it.lead.add(cost{b * (2 + 1 + FingerprintSize), b, 0})
}

// fullCost is the cost of the item sent whole; false if it is a difference
// too large to have been gathered whole, or a split that cannot fit in
// room (it is computed only when it might).
func (s *session) fullCost(it *item, room cost) (cost, bool, error) {
	c := it.lead
	switch it.kind {
	case itemSplit:
		if it.subs == nil {
			if !s.minSplitCost(it).within(room) {
				return cost{}, false, nil
			}
			subs, err := s.split(it.lo, it.hi, it.count)
			if err != nil {
				return cost{}, false, err
			}
			it.subs = subs
		}
		for _, s := range it.subs {
			c = c.add(fpCost(s.hi))
		}
	case itemList:
		n := len(it.ids)
		c = c.add(cost{it.hi.encodedLen() + 1 + uvarintLen(uint64(n)) + IDSize*n, 1, n})
	case itemDiff:
		if !it.complete {
			return cost{}, false, nil
		}
		c = c.add(diffCost(it.hi.encodedLen(), len(it.theirs), len(it.ids)))
	}
	return c, true, nil
}

// deferCost is the cost of answering the item with our fingerprint of its
// range: the peer finds it differs and takes the next step itself.
func (it *item) deferCost() cost { return it.lead.add(fpCost(it.hi)) }

// partialCost is a difference cut after k of our IDs: an IDDiff up to a
// bound mid, then our fingerprint of [mid, to).
func (it *item) partialCost(k int, to Bound) cost {
	return it.lead.add(diffCost(maxBoundLen, len(it.theirs), k)).add(fpCost(to))
}

// maxPartial returns the largest k >= 1 whose partialCost fits in room, or 0.
func (it *item) maxPartial(room cost, to Bound) int {
	kmax := len(it.ids)
	if it.complete {
		kmax-- // all of them is the full form
	}
	base := it.partialCost(0, to)
	if kmax < 1 || base.ranges > room.ranges {
		return 0
	}
	// partialCost(0) counts a 1-byte varint for k; allow 3 (k < 2^21).
	k := min(kmax, (room.bytes-base.bytes-2)/IDSize, room.ids)
	return max(k, 0)
}

type how int

const (
	howNone    how = iota // not sent: covered by a group
	howFull               // sent as computed
	howPartial            // difference up to a bound, then a fingerprint
	howDefer              // our fingerprint of the range
	howGroup              // our fingerprint of this and the next items up to end
)

type choice struct {
	how how
	k   int // howPartial: our IDs sent
	end int // howGroup: the group is items[i:end]
}

// Layout limits.
const (
	// deferShare: the first plan is used only if deferring every item
	// takes at most budget/deferShare, so upgrades get the rest.
	deferShare = 2
	// tailGroups is the number of fingerprints the second plan spends on
	// the items it cannot send whole.
	tailGroups = 64
)

// tailReserve is the most the second plan's group fingerprints take: a
// Skip and a fingerprint range each.
func tailReserve() cost {
	group := cost{2*maxBoundLen + 2 + FingerprintSize, 2, 0}
	return cost{tailGroups * group.bytes, tailGroups * group.ranges, 0}
}

// upgradeOrder is the order in which the first plan upgrades deferred
// items: differences first (they answer the peer's ID lists, which are
// wasted if not answered), then ID lists (they end a range), then splits.
var upgradeOrder = [...]itemKind{itemDiff, itemList, itemSplit}

// layout turns items into the ranges of a reply within the limits.
//
// First plan, when the ranges are few: start with every item deferred
// (answered with our fingerprint of its range, so the peer takes the next
// step itself and no work is lost), then send items whole, or differences
// in part, while the budget lasts.
//
// Second plan, when deferring everything would crowd the message: send
// items whole in order while they fit, then cover the rest with at most
// tailGroups fingerprints of runs of items, which the peer splits again.
// Params.validate ensures the first item always fits, so every message
// makes progress and a session ends.
func (s *session) layout(items []item, l *learner) ([]wireRange, []pendingList, error) {
	budget := cost{s.p.MaxMessageSize - 1, s.p.MaxRanges, s.p.MaxIDs}
	plan := make([]choice, len(items))

	prev := Lowest()
	for i := range items {
		items[i].lead = cost{}
		if items[i].lo != prev {
			items[i].lead = skipCost(items[i].lo)
		}
		prev = items[i].hi
	}
	var used cost
	for i := range items {
		plan[i] = choice{how: howDefer}
		used = used.add(items[i].deferCost())
	}
	share := cost{budget.bytes / deferShare, budget.ranges / deferShare, budget.ids}
	if used.within(share) {
		for _, kind := range upgradeOrder {
			for i := range items {
				it := &items[i]
				if it.kind != kind {
					continue
				}
				rest := used.sub(it.deferCost())
				c, ok, err := s.fullCost(it, budget.sub(rest))
				if err != nil {
					return nil, nil, err
				}
				if ok && rest.add(c).within(budget) {
					plan[i], used = choice{how: howFull}, rest.add(c)
					continue
				}
				if it.kind == itemDiff {
					if k := it.maxPartial(budget.sub(rest), it.hi); k > 0 {
						plan[i], used = choice{how: howPartial, k: k}, rest.add(it.partialCost(k, it.hi))
					}
				}
			}
		}
		return s.emit(items, plan, l)
	}

	clear(plan)
	used = cost{}
	reserve := tailReserve()
	tail := len(items)
	for i := range items {
		it := &items[i]
		c, ok, err := s.fullCost(it, budget.sub(used.add(reserve)))
		if err != nil {
			return nil, nil, err
		}
		if ok && used.add(c).add(reserve).within(budget) {
			plan[i], used = choice{how: howFull}, used.add(c)
			continue
		}
		tail = i
		if it.kind == itemDiff {
			if k := it.maxPartial(budget.sub(used.add(reserve)), it.hi); k > 0 {
				plan[i] = choice{how: howPartial, k: k}
				tail = i + 1
			}
		}
		break
	}
	if rem := len(items) - tail; rem > 0 {
		g := (rem + tailGroups - 1) / tailGroups
		for j := tail; j < len(items); j += g {
			plan[j] = choice{how: howGroup, end: min(j+g, len(items))}
		}
	}
	return s.emit(items, plan, l)
}

// writer appends ranges, inserting a Skip range wherever the next range
// does not start where the last one ended.
type writer struct {
	out []wireRange
	cur Bound
}

func (w *writer) add(lo Bound, r wireRange) {
	if lo != w.cur {
		w.out = append(w.out, wireRange{hi: lo, mode: modeSkip})
	}
	w.out = append(w.out, r)
	w.cur = r.hi
}

func (s *session) fingerprintRange(lo, hi Bound) (wireRange, error) {
	fp, _, err := s.set.Fingerprint(lo, hi)
	if err != nil {
		return wireRange{}, fmt.Errorf("reconcile: fingerprint of [%v, %v): %w", lo, hi, err)
	}
	return wireRange{hi: hi, mode: modeFingerprint, fp: fp}, nil
}

// emit writes the planned ranges, records our ID lists as pending and
// learns from the differences sent (the peer learns the same from them).
func (s *session) emit(items []item, plan []choice, l *learner) ([]wireRange, []pendingList, error) {
	w := writer{cur: Lowest()}
	var pend []pendingList
	for i := range items {
		it := &items[i]
		switch plan[i].how {
		case howNone:
			continue
		case howFull:
			switch it.kind {
			case itemSplit:
				lo := it.lo
				for _, sb := range it.subs {
					w.add(lo, wireRange{hi: sb.hi, mode: modeFingerprint, fp: sb.fp})
					lo = sb.hi
				}
			case itemList:
				w.add(it.lo, wireRange{hi: it.hi, mode: modeIDList, ids: it.ids})
				pend = append(pend, pendingList{lo: it.lo, hi: it.hi, ids: it.ids})
			case itemDiff:
				w.add(it.lo, diffRange(it, it.hi, len(it.ids), len(it.theirs), l))
			}
		case howPartial:
			k := plan[i].k
			next := it.stop
			if k < len(it.ids) {
				next = it.ids[k]
			}
			mid := between(it.ids[k-1], next)
			nbit := sort.Search(len(it.theirs), func(j int) bool { return mid.CompareID(it.theirs[j]) <= 0 })
			w.add(it.lo, diffRange(it, mid, k, nbit, l))
			r, err := s.fingerprintRange(mid, it.hi)
			if err != nil {
				return nil, nil, err
			}
			w.add(mid, r)
		case howDefer:
			r := wireRange{hi: it.hi, mode: modeFingerprint, fp: it.fp}
			if it.kind == itemDiff {
				var err error
				if r, err = s.fingerprintRange(it.lo, it.hi); err != nil {
					return nil, nil, err
				}
			}
			w.add(it.lo, r)
		case howGroup:
			r, err := s.fingerprintRange(it.lo, items[plan[i].end-1].hi)
			if err != nil {
				return nil, nil, err
			}
			w.add(it.lo, r)
		}
	}
	if err := s.checkLimits(w.out); err != nil {
		return nil, nil, err
	}
	return w.out, pend, nil
}

// diffRange builds the IDDiff answering it's list up to hi, with k of our
// IDs and nbit bits, and learns what it says.
func diffRange(it *item, hi Bound, k, nbit int, l *learner) wireRange {
	bits := make([]byte, (nbit+7)/8)
	for j := range nbit {
		if it.lack[j] {
			bits[j/8] |= 1 << (j % 8)
			l.addNeed(it.theirs[j])
		}
	}
	for _, id := range it.ids[:k] {
		l.addHave(id)
	}
	return wireRange{hi: hi, mode: modeIDDiff, ids: it.ids[:k], bits: bits, nbit: nbit}
}

// checkLimits is a last guard: the layout's costs are upper bounds, so a
// reply over the limits is a bug here, never the peer's doing.
func (s *session) checkLimits(out []wireRange) error {
	size, ids := 1, 0
	for i := range out {
		size += out[i].encodedLen()
		ids += len(out[i].ids)
	}
	if size > s.p.MaxMessageSize || len(out) > s.p.MaxRanges || ids > s.p.MaxIDs {
		return fmt.Errorf("reconcile: internal error: reply of %d bytes, %d ranges, %d IDs over the limits",
			size, len(out), ids)
	}
	return nil
}
