package reconcile

import "fmt"

// Params tune a session. Both peers of a session must use the same limits
// (DefaultParams unless the sync protocol negotiates otherwise): a message
// over the receiver's limits is rejected with ErrTooLarge.
type Params struct {
	// Branching is B, the number of sub-ranges a range whose fingerprints
	// differ is split into.
	Branching int
	// IDListThreshold: a differing range with fewer IDs than this on the
	// side that found the difference is sent as an ID list instead of being
	// split. Default 2·B.
	IDListThreshold int
	// MaxMessageSize bounds every message, in bytes. A side with more to
	// say defers the rest to the next round; no message is ever larger.
	MaxMessageSize int
	// MaxRanges bounds the ranges of one message.
	MaxRanges int
	// MaxIDs bounds the IDs carried by one message (in ID lists and
	// differences) and the bits of each difference bitmap.
	MaxIDs int
	// MaxRounds bounds the messages a side accepts in one session. It caps
	// the work and memory a peer can cost us: at most MaxRounds messages
	// of MaxMessageSize bytes, and at most 2·MaxIDs learnt IDs per round.
	MaxRounds int
}

// Limits on Params.
const (
	// MinMessageSize is the smallest MaxMessageSize accepted.
	MinMessageSize = 4 << 10
	// AbsoluteMaxMessageSize is the largest MaxMessageSize accepted.
	AbsoluteMaxMessageSize = 16 << 20
	maxBranching           = 256
	maxThreshold           = 4096
	maxRangesLimit         = 1 << 20
	maxRoundsLimit         = 1 << 16
)

// DefaultParams returns the protocol defaults: B = 16, ID lists below 32
// IDs, 256 KiB messages of at most 16384 ranges and 8192 IDs, 256 rounds.
func DefaultParams() Params {
	return Params{
		Branching:       16,
		IDListThreshold: 32,
		MaxMessageSize:  256 << 10,
		MaxRanges:       16 << 10,
		MaxIDs:          8 << 10,
		MaxRounds:       256,
	}
}

// maxItem is the most the first item of any reply needs: a split, an ID
// list, or a difference with one ID followed by a fingerprint (a
// difference can always be cut), each after a Skip.
func (p Params) maxItem() cost {
	skip := cost{maxBoundLen + 1, 1, 0}
	fpRange := cost{maxBoundLen + 1 + FingerprintSize, 1, 0}
	split := skip.add(cost{p.Branching * fpRange.bytes, p.Branching, 0})
	list := skip.add(cost{maxBoundLen + 1 + 5 + IDSize*p.IDListThreshold, 1, p.IDListThreshold})
	diff := skip.add(cost{maxBoundLen + 1 + 5 + (p.MaxIDs+7)/8 + 5 + IDSize, 1, 1}).add(fpRange)
	return cost{max(split.bytes, list.bytes, diff.bytes), max(split.ranges, list.ranges, diff.ranges), p.IDListThreshold}
}

// minMessageSize and minRanges are the least limits that guarantee every
// reply makes progress: twice the largest item (the first plan keeps half
// the message for items) and, for the second plan, room for an item after
// its group fingerprints. See layout.
func (p Params) minMessageSize() int { return 1 + 2*p.maxItem().bytes + tailReserve().bytes }
func (p Params) minRanges() int      { return 2*p.maxItem().ranges + tailReserve().ranges }

func (p Params) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidParams}, args...)...)
	}
	switch {
	case p.Branching < 2 || p.Branching > maxBranching:
		return bad("Branching %d not in [2, %d]", p.Branching, maxBranching)
	case p.IDListThreshold < 2 || p.IDListThreshold > maxThreshold:
		return bad("IDListThreshold %d not in [2, %d]", p.IDListThreshold, maxThreshold)
	case p.MaxMessageSize < MinMessageSize || p.MaxMessageSize > AbsoluteMaxMessageSize:
		return bad("MaxMessageSize %d not in [%d, %d]", p.MaxMessageSize, MinMessageSize, AbsoluteMaxMessageSize)
	case p.MaxRanges < p.minRanges() || p.MaxRanges > maxRangesLimit:
		return bad("MaxRanges %d not in [%d, %d] (the least depends on Branching)", p.MaxRanges, p.minRanges(), maxRangesLimit)
	case p.MaxIDs < p.IDListThreshold || p.MaxIDs > AbsoluteMaxMessageSize/IDSize:
		return bad("MaxIDs %d not in [IDListThreshold, %d]", p.MaxIDs, AbsoluteMaxMessageSize/IDSize)
	case p.MaxRounds < 1 || p.MaxRounds > maxRoundsLimit:
		return bad("MaxRounds %d not in [1, %d]", p.MaxRounds, maxRoundsLimit)
	case p.MaxMessageSize < p.minMessageSize():
		return bad("MaxMessageSize %d below %d, the least these Branching, IDListThreshold and MaxIDs need",
			p.MaxMessageSize, p.minMessageSize())
	}
	return nil
}
