package reconcile

import "fmt"

// Params tune a session. Both peers of a session must use the same limits
// (the sync protocol sends the initiator's in its hello): a message over
// the receiver's limits is rejected with ErrTooLarge.
type Params struct {
	// MaxMessageSize bounds every message, in bytes. A message opens at
	// most MaxMessageSize/8 entries (nodes the peer must answer), so every
	// answer fits: a side with more to say defers the rest (answers a node
	// with its fingerprint, and the peer takes the next step).
	MaxMessageSize int
	// MaxRounds bounds the messages a side accepts in one session.
	MaxRounds int
	// MaxLearnt bounds the differences a side records each way (IDs it
	// holds that the peer lacks, keys of the peer's IDs it lacks). Past it
	// the session still finishes, and reports Truncated.
	MaxLearnt int
	// MaxScanNode is the most IDs a side reads to build or check a cell
	// table or an ID list of one node; larger nodes are split.
	MaxScanNode int
	// ScanBudget bounds the IDs a side reads in one session beyond
	// ScanPerID times its own set size: what a peer can make it read.
	ScanBudget int
}

// Limits on Params.
const (
	// MinMessageSize is the smallest MaxMessageSize accepted: the first
	// message at the deepest starting level, and a split of 256 children
	// after the bitmap.
	MinMessageSize = 4 << 10
	// AbsoluteMaxMessageSize is the largest MaxMessageSize accepted.
	AbsoluteMaxMessageSize = 16 << 20
	maxRoundsLimit         = 1 << 16
	// ScanPerID: a session may read its set ScanPerID times over.
	ScanPerID = 4
)

// DefaultParams returns the protocol defaults: 1 MiB messages, 64 rounds,
// 64 Ki differences each way, cell tables and ID lists of nodes up to
// 4,096 IDs.
func DefaultParams() Params {
	return Params{
		MaxMessageSize: 1 << 20,
		MaxRounds:      64,
		MaxLearnt:      64 << 10,
		MaxScanNode:    4096,
		ScanBudget:     1 << 20,
	}
}

// maxEntries is the most entries one message may open.
func (p Params) maxEntries() int { return p.MaxMessageSize / 8 }

func (p Params) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidParams}, args...)...)
	}
	switch {
	case p.MaxMessageSize < MinMessageSize || p.MaxMessageSize > AbsoluteMaxMessageSize:
		return bad("MaxMessageSize %d not in [%d, %d]", p.MaxMessageSize, MinMessageSize, AbsoluteMaxMessageSize)
	case p.MaxRounds < 2 || p.MaxRounds > maxRoundsLimit:
		return bad("MaxRounds %d not in [2, %d]", p.MaxRounds, maxRoundsLimit)
	case p.MaxLearnt < 1:
		return bad("MaxLearnt %d must be positive", p.MaxLearnt)
	case p.MaxScanNode < 16 || p.MaxScanNode > 1<<20:
		return bad("MaxScanNode %d not in [16, %d]", p.MaxScanNode, 1<<20)
	case p.ScanBudget < 0:
		return bad("ScanBudget %d must not be negative", p.ScanBudget)
	}
	return nil
}
