package groupstate

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// MaxSeenExtra bounds the ranges a seen set lists above its contiguous
// prefix. An honest author's sequence numbers are contiguous, so a remover
// sees gaps only where the network lost something; hundreds of holes are
// an author skipping numbers on purpose. A set built from more ranges keeps
// the lowest ones (NewSeenSet): the author's highest messages that the
// remover saw but other members had not are then refused by them, which
// costs only the author who skipped.
const MaxSeenExtra = 128

// SeenSet is the set of one author's sequence numbers (of one membership)
// that a manager had seen when it removed the author or took its write
// role away: every number from 1 to Upto, and the ranges in Extra. A
// removal or demotion carrying it (Event.Seen) makes exactly these
// messages admissible afterwards, whatever sequence number, head or time a
// later message claims: a number the manager had not seen is refused even
// when it lies below the highest one it saw (ARCHITECTURE §7, §11).
//
// Extra is ascending, disjoint and never adjacent to Upto or to each
// other, each range starting at least Upto+2, at most MaxSeenExtra long;
// that makes the value and its encoding one to one.
type SeenSet struct {
	Upto  uint64
	Extra []SeqRange
}

// NewSeenSet makes the seen set of ranges as SeqTracker.SeenRanges
// returns them (ascending, disjoint, not adjacent). More than MaxSeenExtra
// ranges above the contiguous prefix are cut to the lowest MaxSeenExtra.
func NewSeenSet(ranges []SeqRange) SeenSet {
	var s SeenSet
	if len(ranges) > 0 && ranges[0].First == 1 {
		s.Upto = ranges[0].Last
		ranges = ranges[1:]
	}
	if len(ranges) > MaxSeenExtra {
		ranges = ranges[:MaxSeenExtra]
	}
	if len(ranges) > 0 {
		s.Extra = slices.Clone(ranges)
	}
	return s
}

// Contains reports whether seq is in the set.
func (s SeenSet) Contains(seq uint64) bool {
	if seq == 0 {
		return false
	}
	if seq <= s.Upto {
		return true
	}
	_, found := slices.BinarySearchFunc(s.Extra, seq, func(r SeqRange, v uint64) int {
		switch {
		case r.Last < v:
			return -1
		case r.First > v:
			return 1
		}
		return 0
	})
	return found
}

// Highest returns the highest sequence number in the set (0: empty).
func (s SeenSet) Highest() uint64 {
	if len(s.Extra) > 0 {
		return s.Extra[len(s.Extra)-1].Last
	}
	return s.Upto
}

// Equal reports whether two sets are the same.
func (s SeenSet) Equal(o SeenSet) bool { return s.Upto == o.Upto && slices.Equal(s.Extra, o.Extra) }

// String describes the set as ranges, e.g. "1–7, 9, 40".
func (s SeenSet) String() string {
	var out string
	add := func(r SeqRange) {
		if out != "" {
			out += ", "
		}
		if r.First == r.Last {
			out += fmt.Sprint(r.First)
		} else {
			out += fmt.Sprintf("%d–%d", r.First, r.Last)
		}
	}
	if s.Upto > 0 {
		add(SeqRange{1, s.Upto})
	}
	for _, r := range s.Extra {
		add(r)
	}
	if out == "" {
		return "none"
	}
	return out
}

// validate checks the canonical-form rules.
func (s SeenSet) validate() error {
	if len(s.Extra) > MaxSeenExtra {
		return fmt.Errorf("%w: seen set lists %d ranges, at most %d", ErrEventMalformed, len(s.Extra), MaxSeenExtra)
	}
	if s.Upto >= math.MaxUint64-1 && len(s.Extra) > 0 {
		return fmt.Errorf("%w: seen set ranges above the largest sequence number", ErrEventMalformed)
	}
	floor := s.Upto + 2 // the lowest first a range may have
	for i, r := range s.Extra {
		if r.First < floor || r.First > r.Last {
			return fmt.Errorf("%w: seen set range %d [%d, %d] is empty, overlaps or touches what comes before it", ErrEventMalformed, i, r.First, r.Last)
		}
		if r.Last >= math.MaxUint64-1 && i < len(s.Extra)-1 {
			return fmt.Errorf("%w: seen set range %d ends at the largest sequence number", ErrEventMalformed, i)
		}
		floor = r.Last + 2
	}
	return nil
}

// Seen set encoding (inside remove and set-role bodies of version-2
// events):
//
//	8 upto ‖ 2 count N (0..MaxSeenExtra) ‖ N × (8 first ‖ 8 last)
const seenSetFixed = 8 + 2

func (s SeenSet) encodedLen() int { return seenSetFixed + 16*len(s.Extra) }

func (s SeenSet) appendTo(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, s.Upto)
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.Extra)))
	for _, r := range s.Extra {
		b = binary.BigEndian.AppendUint64(b, r.First)
		b = binary.BigEndian.AppendUint64(b, r.Last)
	}
	return b
}

// readSeenSet decodes a seen set and checks its canonical form.
func readSeenSet(d *decoder) (SeenSet, error) {
	var s SeenSet
	s.Upto = d.u64()
	n := int(d.u16())
	if !d.ok || n > MaxSeenExtra || n*16 > d.remaining() {
		return SeenSet{}, fmt.Errorf("%w: seen set of %d ranges does not fit", ErrEventMalformed, n)
	}
	if n > 0 {
		s.Extra = make([]SeqRange, n)
		for i := range s.Extra {
			s.Extra[i] = SeqRange{First: d.u64(), Last: d.u64()}
		}
	}
	if !d.ok {
		return SeenSet{}, fmt.Errorf("%w: seen set truncated", ErrEventMalformed)
	}
	return s, s.validate()
}

// MarshalSeenSet encodes a seen set (its encoding inside events).
func MarshalSeenSet(s SeenSet) ([]byte, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	return s.appendTo(make([]byte, 0, s.encodedLen())), nil
}

// ParseSeenSet decodes what MarshalSeenSet wrote, strictly.
func ParseSeenSet(b []byte) (SeenSet, error) {
	d := newDecoder(b)
	s, err := readSeenSet(d)
	if err != nil {
		return SeenSet{}, err
	}
	if !d.done() {
		return SeenSet{}, fmt.Errorf("%w: %d trailing bytes after a seen set", ErrEventMalformed, d.remaining())
	}
	return s, nil
}
