package bench

import (
	"fmt"

	"github.com/meshnode/meshnode/envelope"
)

// Limits on the parameters, so a typo cannot ask for a terabyte.
const (
	// MinSize is the smallest envelope: the fixed fields and one byte of
	// ciphertext.
	MinSize = envelope.Overhead + 1
	// MaxN bounds the number of envelopes of one run (they are all held in
	// memory).
	MaxN = 10_000_000
	// MaxWriters and MaxInFlight bound the remote writers of Ingest.
	MaxWriters  = 64
	MaxInFlight = 64
)

// IngestParams describe the ingest workload. Start from DefaultIngestParams.
type IngestParams struct {
	// N is the number of envelopes written (split evenly over the writers).
	N int
	// Size is the length of each envelope encoding in bytes (fixed fields
	// included), at most envelope.DefaultMaxSize.
	Size int
	// CPUProfile, if set, is a file for a CPU profile of the network runs
	// (runtime/pprof format), without the preparation and the limit.
	CPUProfile string
	// Writers is the number of remote writers, each its own libp2p host.
	Writers int
	// InFlight is the number of direct relay requests each writer keeps
	// outstanding, pipelined on its session (or each on its own stream
	// with StreamPerEnvelope).
	InFlight int
	// StreamPerEnvelope makes writers open a stream per envelope
	// (relay.Send, protocol 1.0.0, what node.Remote does) instead of
	// keeping all of them on one pipelined relay.Session (protocol 1.2.0).
	StreamPerEnvelope bool
	// Dir is where the on-disk stores go. Empty means a temporary
	// directory removed at the end; otherwise a fresh subdirectory of Dir
	// is created and left in place.
	Dir string
	// Runs is the number of paired runs (limit, then network run); the
	// medians count.
	Runs int
}

// DefaultRuns is the number of runs whose median a benchmark reports.
const DefaultRuns = 5

// MaxRuns bounds Runs.
const MaxRuns = 99

// DefaultIngestParams: 50,000 envelopes of 1 KiB from 4 writers with 16
// requests in flight each, pipelined on one relay session per writer
// (within the host's default SessionWindow of 32), 5 runs.
func DefaultIngestParams() IngestParams {
	return IngestParams{N: 50_000, Size: 1024, Writers: 4, InFlight: 16, Runs: DefaultRuns}
}

func (p IngestParams) validate() error {
	switch {
	case p.N < 1 || p.N > MaxN:
		return fmt.Errorf("%w: n %d outside [1, %d]", ErrInvalidParams, p.N, MaxN)
	case p.Size < MinSize || p.Size > envelope.DefaultMaxSize:
		return fmt.Errorf("%w: size %d outside [%d, %d]", ErrInvalidParams, p.Size, MinSize, envelope.DefaultMaxSize)
	case p.Writers < 1 || p.Writers > MaxWriters:
		return fmt.Errorf("%w: writers %d outside [1, %d]", ErrInvalidParams, p.Writers, MaxWriters)
	case p.InFlight < 1 || p.InFlight > MaxInFlight:
		return fmt.Errorf("%w: in-flight %d outside [1, %d]", ErrInvalidParams, p.InFlight, MaxInFlight)
	case p.N < p.Writers:
		return fmt.Errorf("%w: n %d is below the number of writers %d", ErrInvalidParams, p.N, p.Writers)
	case p.Runs < 1 || p.Runs > MaxRuns:
		return fmt.Errorf("%w: runs %d outside [1, %d]", ErrInvalidParams, p.Runs, MaxRuns)
	}
	return nil
}

// FetchParams describe the fetch workload. Start from DefaultFetchParams.
type FetchParams struct {
	// N is the number of envelopes stored on the remote host and fetched.
	N int
	// Size is the length of each envelope encoding in bytes.
	Size int
	// CPUProfile and RawCPUProfile, if set, are files for CPU profiles
	// (runtime/pprof format) of member catch-ups and of raw transfers, the
	// two sides of the ratio: three more runs of each after the measured
	// ones.
	CPUProfile, RawCPUProfile string
	// Dir is where the host's on-disk store goes (as IngestParams.Dir).
	Dir string
	// Runs is the number of paired runs (a catch-up and a raw transfer,
	// alternating which goes first); the medians count.
	Runs int
}

// DefaultFetchParams: 100,000 envelopes of 1 KiB, 5 runs.
func DefaultFetchParams() FetchParams {
	return FetchParams{N: 100_000, Size: 1024, Runs: DefaultRuns}
}

func (p FetchParams) validate() error {
	switch {
	case p.N < 1 || p.N > MaxN:
		return fmt.Errorf("%w: n %d outside [1, %d]", ErrInvalidParams, p.N, MaxN)
	case p.Size < MinSize || p.Size > envelope.DefaultMaxSize:
		return fmt.Errorf("%w: size %d outside [%d, %d]", ErrInvalidParams, p.Size, MinSize, envelope.DefaultMaxSize)
	case p.Runs < 1 || p.Runs > MaxRuns:
		return fmt.Errorf("%w: runs %d outside [1, %d]", ErrInvalidParams, p.Runs, MaxRuns)
	}
	return nil
}
