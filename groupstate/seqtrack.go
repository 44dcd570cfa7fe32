package groupstate

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"
)

// SeqRange is an inclusive range of sequence numbers.
type SeqRange struct {
	First, Last uint64
}

// Len is the number of sequence numbers in the range.
func (r SeqRange) Len() uint64 { return r.Last - r.First + 1 }

// SeqStatus says whether an observed sequence number is new.
type SeqStatus uint8

const (
	// SeqNew: the first time this author's sequence number was seen.
	SeqNew SeqStatus = 1
	// SeqDuplicate: already seen, a replay (or the same message fetched
	// from a second host); drop it.
	SeqDuplicate SeqStatus = 2
)

// String returns "new" or "duplicate".
func (s SeqStatus) String() string {
	switch s {
	case SeqNew:
		return "new"
	case SeqDuplicate:
		return "duplicate"
	}
	return fmt.Sprintf("SeqStatus(%d)", uint8(s))
}

// Observation is the outcome of SeqTracker.Observe.
type Observation struct {
	Status SeqStatus
	// Late is true when a higher sequence number of the author had already
	// been seen: the message arrived out of order or filled a gap.
	Late bool
	// Gaps are the author's missing sequence numbers below the highest
	// seen, after this observation, ascending.
	Gaps []SeqRange
}

// SeqTracker records, per author of one group (per membership of a
// managed group: MembershipKey), which sequence numbers have been seen, as sorted disjoint ranges: its size grows with the number of
// gaps, not of messages (100k in-order messages are one range). It lets a
// member detect replays and messages a host dropped or withheld.
//
// The zero value is ready to use. A SeqTracker is not safe for concurrent
// use; its owner (the group's event loop) serialises access.
//
// Note that an author can make everyone see a huge gap by skipping
// sequence numbers; callers bound how hard they try to fill a gap.
type SeqTracker struct {
	// seen maps an author to its seen ranges: sorted by First, disjoint
	// and never adjacent (adjacent ranges are merged).
	seen map[[32]byte][]SeqRange
	// owners maps a sequence space that is not its author's key (a
	// membership) to its author (SetOwner).
	owners map[[32]byte][32]byte
}

// SetOwner records the author of a sequence space (a membership): Owner
// names it in gap notices. A space that is its author's key needs none.
func (t *SeqTracker) SetOwner(key, author [32]byte) {
	if key == author {
		return
	}
	if t.owners == nil {
		t.owners = make(map[[32]byte][32]byte)
	}
	t.owners[key] = author
}

// Owner returns the author of a sequence space: the one SetOwner
// recorded, else the key itself.
func (t *SeqTracker) Owner(key [32]byte) [32]byte {
	if a, ok := t.owners[key]; ok {
		return a
	}
	return key
}

// NewSeqTracker returns an empty tracker.
func NewSeqTracker() *SeqTracker { return &SeqTracker{} }

// Observe records that author's message seq arrived.
func (t *SeqTracker) Observe(author [32]byte, seq uint64) (Observation, error) {
	if seq == 0 {
		return Observation{}, fmt.Errorf("%w: 0 (sequences start at 1)", ErrBadSeq)
	}
	if t.seen == nil {
		t.seen = make(map[[32]byte][]SeqRange)
	}
	rs := t.seen[author]
	// i is the first range entirely above seq.
	i := sort.Search(len(rs), func(i int) bool { return rs[i].First > seq })
	if i > 0 && rs[i-1].Last >= seq {
		return Observation{Status: SeqDuplicate, Late: true, Gaps: gapsOf(rs)}, nil
	}
	obs := Observation{Status: SeqNew, Late: i < len(rs)}
	joinLeft := i > 0 && rs[i-1].Last+1 == seq
	joinRight := i < len(rs) && rs[i].First-1 == seq
	switch {
	case joinLeft && joinRight:
		rs[i-1].Last = rs[i].Last
		rs = slices.Delete(rs, i, i+1)
	case joinLeft:
		rs[i-1].Last = seq
	case joinRight:
		rs[i].First = seq
	default:
		rs = slices.Insert(rs, i, SeqRange{seq, seq})
	}
	t.seen[author] = rs
	obs.Gaps = gapsOf(rs)
	return obs, nil
}

// Seen reports whether author's seq has been observed.
func (t *SeqTracker) Seen(author [32]byte, seq uint64) bool {
	rs := t.seen[author]
	i := sort.Search(len(rs), func(i int) bool { return rs[i].First > seq })
	return i > 0 && rs[i-1].Last >= seq
}

// Highest returns the highest sequence number seen from author (0 if none).
func (t *SeqTracker) Highest(author [32]byte) uint64 {
	rs := t.seen[author]
	if len(rs) == 0 {
		return 0
	}
	return rs[len(rs)-1].Last
}

// SeenRanges returns the ranges of author's sequence numbers seen,
// ascending (NewSeenSet makes a removal's seen set of them).
func (t *SeqTracker) SeenRanges(author [32]byte) []SeqRange { return slices.Clone(t.seen[author]) }

// AuthorGaps returns author's missing sequence numbers below the highest
// seen, ascending.
func (t *SeqTracker) AuthorGaps(author [32]byte) []SeqRange { return gapsOf(t.seen[author]) }

// Gaps returns the missing sequence numbers of every author that has any.
func (t *SeqTracker) Gaps() map[[32]byte][]SeqRange {
	out := make(map[[32]byte][]SeqRange)
	for a, rs := range t.seen {
		if g := gapsOf(rs); len(g) > 0 {
			out[a] = g
		}
	}
	return out
}

// Close marks every number of a sequence space seen, once its membership
// has ended and every number still admissible has arrived
// (MembershipSettled): from then on every payload of the space is a
// replay, and the space costs one range whatever its history was.
func (t *SeqTracker) Close(key [32]byte) {
	if t.seen == nil {
		t.seen = make(map[[32]byte][]SeqRange)
	}
	t.seen[key] = []SeqRange{{First: 1, Last: math.MaxUint64}}
}

// Closed reports whether a space was closed (Close).
func (t *SeqTracker) Closed(key [32]byte) bool {
	rs := t.seen[key]
	return len(rs) == 1 && rs[0] == SeqRange{First: 1, Last: math.MaxUint64}
}

// ClosedSpaces lists the closed spaces.
func (t *SeqTracker) ClosedSpaces() [][32]byte {
	var out [][32]byte
	for k := range t.seen {
		if t.Closed(k) {
			out = append(out, k)
		}
	}
	return out
}

// covers reports whether every number of r was seen in key's space.
func (t *SeqTracker) covers(key [32]byte, r SeqRange) bool {
	rs := t.seen[key]
	i := sort.Search(len(rs), func(i int) bool { return rs[i].First > r.First })
	return i > 0 && rs[i-1].Last >= r.Last
}

// MembershipSettled reports whether the sequence space key of a
// membership that ev ended can be closed (SeqTracker.Close) and the
// records of its messages forgotten: ev removed the member (a demoted
// member still posts what a reader may), and every number ev admits (its
// seen set, or the numbers below its limit) has been seen. Any later
// payload of the membership is then either one of those, a replay, or
// one ev refuses (Chain.AdmitPayload: ErrRevoked) — nothing left to
// admit, so nothing is reopened by forgetting. A removal that admits
// every number (one made before limits existed) never settles.
func MembershipSettled(t *SeqTracker, key [32]byte, ev *Event) bool {
	if ev == nil || ev.Kind != EventRemove {
		return false
	}
	switch {
	case ev.Seen != nil:
		if ev.Seen.Upto > 0 && !t.covers(key, SeqRange{First: 1, Last: ev.Seen.Upto}) {
			return false
		}
		for _, r := range ev.Seen.Extra {
			if !t.covers(key, r) {
				return false
			}
		}
		return true
	case ev.SeqLimit > 1:
		return t.covers(key, SeqRange{First: 1, Last: ev.SeqLimit - 1})
	case ev.SeqLimit == 1:
		return true
	}
	return false
}

// Authors returns the number of authors seen.
func (t *SeqTracker) Authors() int { return len(t.seen) }

// Ranges returns the number of stored ranges (a measure of its size).
func (t *SeqTracker) Ranges() int {
	n := 0
	for _, rs := range t.seen {
		n += len(rs)
	}
	return n
}

// gapsOf returns the complement of rs in [1, highest].
func gapsOf(rs []SeqRange) []SeqRange {
	var gaps []SeqRange
	next := uint64(1)
	for _, r := range rs {
		if r.First > next {
			gaps = append(gaps, SeqRange{next, r.First - 1})
		}
		next = r.Last + 1
	}
	return gaps
}

// SeqTracker encoding, version 2 (integers big-endian):
//
//	1   version (0x02)
//	4   space count A
//	per space, strictly ascending by key:
//	    32  key (a membership's sequence space, or an author's key)
//	    1   owner flag: 0 (the key is the author's) or 1, then
//	    [32 the author's key, different from the key]
//	    4   range count R (>= 1)
//	    R × (8 first, 8 last): first >= 1, first <= last, each range
//	        starting at least 2 above the previous last (disjoint, not
//	        adjacent)
//
// Version 1 is the same without the owner flag and owner (every key its
// own author); it is still read.
const (
	seqTrackerV1      = 1
	seqTrackerVersion = 2
)

const (
	seqAuthorHeader = 32 + 4
	seqRangeSize    = 16
)

// MarshalBinary encodes the tracker canonically.
func (t *SeqTracker) MarshalBinary() ([]byte, error) {
	authors := make([][32]byte, 0, len(t.seen))
	for a, rs := range t.seen {
		if len(rs) > 0 {
			authors = append(authors, a)
		}
	}
	slices.SortFunc(authors, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	b := make([]byte, 0, 5+len(authors)*(seqAuthorHeader+1)+len(t.owners)*32+t.Ranges()*seqRangeSize)
	b = append(b, seqTrackerVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(authors)))
	for _, a := range authors {
		rs := t.seen[a]
		b = append(b, a[:]...)
		if o, ok := t.owners[a]; ok {
			b = append(b, 1)
			b = append(b, o[:]...)
		} else {
			b = append(b, 0)
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(rs)))
		for _, r := range rs {
			b = binary.BigEndian.AppendUint64(b, r.First)
			b = binary.BigEndian.AppendUint64(b, r.Last)
		}
	}
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary wrote, accepting only the
// canonical encoding, and replaces t's state.
func (t *SeqTracker) UnmarshalBinary(data []byte) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrSeqTrackerMalformed, fmt.Sprintf(format, args...))
	}
	d := newDecoder(data)
	v := d.u8()
	if !d.ok || v != seqTrackerVersion && v != seqTrackerV1 {
		return bad("version %d, want %d", v, seqTrackerVersion)
	}
	na := d.u32()
	if !d.ok || uint64(na) > uint64(d.remaining()/(seqAuthorHeader+seqRangeSize)) {
		return bad("author count %d does not fit the %d remaining bytes", na, d.remaining())
	}
	seen := make(map[[32]byte][]SeqRange, na)
	var owners map[[32]byte][32]byte
	var prev [32]byte
	for i := range na {
		var a [32]byte
		copy(a[:], d.take(len(a)))
		if v >= 2 {
			switch flag := d.u8(); {
			case !d.ok:
			case flag == 1:
				var o [32]byte
				copy(o[:], d.take(len(o)))
				if !d.ok || o == a {
					return bad("author %d: owner is the key itself", i)
				}
				if owners == nil {
					owners = make(map[[32]byte][32]byte)
				}
				owners[a] = o
			case flag != 0:
				return bad("author %d: owner flag %d", i, flag)
			}
		}
		nr := d.u32()
		if !d.ok || nr == 0 || uint64(nr) > uint64(d.remaining()/seqRangeSize) {
			return bad("author %d: range count %d does not fit the %d remaining bytes", i, nr, d.remaining())
		}
		if i > 0 && bytes.Compare(a[:], prev[:]) <= 0 {
			return bad("authors not strictly ascending at author %d", i)
		}
		prev = a
		rs := make([]SeqRange, nr)
		for j := range rs {
			r := SeqRange{First: d.u64(), Last: d.u64()}
			switch {
			case r.First == 0 || r.First > r.Last:
				return bad("author %d: range %d [%d, %d] is invalid", i, j, r.First, r.Last)
			case j > 0 && (rs[j-1].Last == math.MaxUint64 || r.First <= rs[j-1].Last+1):
				return bad("author %d: range %d overlaps or touches the previous one", i, j)
			}
			rs[j] = r
		}
		seen[a] = rs
	}
	if !d.done() {
		return bad("%d trailing bytes", d.remaining())
	}
	t.seen, t.owners = seen, owners
	return nil
}
