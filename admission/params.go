package admission

import (
	"errors"
	"fmt"
	"time"

	"github.com/meshnode/meshnode/internal/pow"
)

// GateParams bound the streams of one service (relay, fetch, sync) on a
// host.
// A stream is pending from the moment it is accepted until its first
// request has arrived, and active afterwards; see the package doc.
type GateParams struct {
	// MaxPending bounds streams that have not sent their request yet, in
	// all; PendingPerPrefix and PendingPerPeer those of one network
	// prefix and of one peer. A new stream over any of them makes room by
	// resetting the oldest pending stream in that scope: a request arrives
	// within a round trip, so the oldest pending streams are the idle ones.
	MaxPending       int
	PendingPerPrefix int
	PendingPerPeer   int
	// MaxStreams bounds active streams in all, of which ReservedStreams
	// only privileged ones (for an established mailbox, or from a peer
	// that recently relayed valid envelopes to one) may use.
	MaxStreams      int
	ReservedStreams int
	// PerPrefix bounds the active general (not privileged) streams of one
	// network prefix, PrivilegedPerPrefix its privileged ones, PerPeer all
	// active streams of one peer.
	PerPrefix           int
	PrivilegedPerPrefix int
	PerPeer             int
}

func (g GateParams) validate(name string) error {
	switch {
	case g.MaxPending < 1 || g.PendingPerPrefix < 1 || g.PendingPerPeer < 1:
		return fmt.Errorf("%s: pending stream limits must be at least 1", name)
	case g.MaxStreams < 1 || g.PerPrefix < 1 || g.PrivilegedPerPrefix < 1 || g.PerPeer < 1:
		return fmt.Errorf("%s: stream limits must be at least 1", name)
	case g.ReservedStreams < 0 || g.ReservedStreams >= g.MaxStreams:
		return fmt.Errorf("%s: ReservedStreams %d outside [0, MaxStreams %d)", name, g.ReservedStreams, g.MaxStreams)
	}
	return nil
}

// Inbound is the most inbound streams of the service the gate can hold
// at once (pending and active): what the resource manager's service
// limit must allow so that it never refuses first.
func (g GateParams) Inbound() int { return g.MaxPending + g.MaxStreams }

// Params configure admission on a host. Start from DefaultParams.
type Params struct {
	// IPv4PrefixBits and IPv6PrefixBits are the network prefix a remote
	// is counted by: /24 for IPv4 (one small network, what one attacker
	// machine or a NAT usually sits in) and /48 for IPv6 (one site: ISPs
	// give a customer a /48 or /56, so a /64 would let one customer rotate
	// through 65,536 keys).
	IPv4PrefixBits int
	IPv6PrefixBits int
	// ExemptLoopback leaves loopback remotes out of every per-prefix limit
	// (as libp2p's own connection limiter does); per-peer and total limits
	// still apply. Tests and benchmarks of the limits turn it off.
	ExemptLoopback bool
	// MaxTrackedPrefixes bounds the per-prefix tables (least recently used
	// forgotten), MaxTrackedPeers the per-peer ones.
	MaxTrackedPrefixes int
	MaxTrackedPeers    int

	// ConnsPerIP and ConnsPerPrefix bound the connections of one address
	// (/32, or /64 for IPv6) and of one prefix (libp2p's connection
	// limiter, in the resource manager).
	ConnsPerIP     int
	ConnsPerPrefix int
	// StreamsPerPrefix bounds the inbound streams of one prefix over all
	// protocols, counted from before their protocol is negotiated (the
	// resource manager's per-peer limit is no limit when peer IDs cost
	// nothing).
	StreamsPerPrefix int

	// Relay, Fetch and Sync are the stream gates of the three services.
	// A sync session is pending until its hello has arrived (within
	// hostsync's HelloTimeout), and privileged when the hello names an
	// established mailbox (the sync of hosts and members' nodes that
	// hold it) or comes from a trusted peer.
	Relay GateParams
	Fetch GateParams
	Sync  GateParams
	// Directory is the directory service's gate (hosts that serve one):
	// a stream is pending until its request has arrived, and privileged
	// only when its peer is trusted (a directory's clients are new
	// contacts, so no mailbox makes them established).
	Directory GateParams

	// EnvelopeRatePerPrefix and EnvelopeBurstPerPrefix limit envelopes
	// (direct relay and gossip) per second from one prefix, before they
	// are verified.
	EnvelopeRatePerPrefix  float64
	EnvelopeBurstPerPrefix int
	// PageRatePerPrefix and PageBurstPerPrefix limit fetched pages per
	// second from one prefix.
	PageRatePerPrefix  float64
	PageBurstPerPrefix int
	// NewTrafficRate and NewTrafficBurst limit, over all remotes together,
	// the envelopes per second stored into mailboxes that are not
	// established; established mailboxes are not counted against it.
	NewTrafficRate  float64
	NewTrafficBurst int

	// NewMailboxRatePerPrefix/BurstPerPrefix and NewMailboxRate/Burst
	// admit mailboxes this host has never stored anything for: per prefix
	// and in total. When the total is spent and NewMailboxProofBits is not
	// zero, a new mailbox whose first envelope comes with a proof of work
	// of that many bits (MailboxProof) is admitted anyway (the per-prefix
	// rate still applies); without a proof it is refused with
	// status.ProofRequired.
	NewMailboxRatePerPrefix  float64
	NewMailboxBurstPerPrefix int
	NewMailboxRate           float64
	NewMailboxBurst          int
	NewMailboxProofBits      uint8
	// NewBytesPerPrefix is the envelope bytes one prefix may store into
	// mailboxes that are not established, per NewBytesWindow (a token
	// bucket refilled at NewBytesPerPrefix per window).
	NewBytesPerPrefix int64
	NewBytesWindow    time.Duration

	// TrustFor is how long a peer that relayed a valid envelope to an
	// established mailbox counts as privileged (its streams may use the
	// reserved capacity whatever mailbox they ask for).
	TrustFor time.Duration

	// PressureWindow is how far back refusals make the host report itself
	// under pressure.
	PressureWindow time.Duration
}

// DefaultParams are sized for a small community host (2 cores, 4 GB).
func DefaultParams() Params {
	return Params{
		IPv4PrefixBits:     24,
		IPv6PrefixBits:     48,
		ExemptLoopback:     true,
		MaxTrackedPrefixes: 16384,
		MaxTrackedPeers:    16384,
		ConnsPerIP:         8,
		ConnsPerPrefix:     32,
		StreamsPerPrefix:   512,
		Relay: GateParams{
			MaxPending: 256, PendingPerPrefix: 64, PendingPerPeer: 16,
			MaxStreams: 512, ReservedStreams: 128,
			PerPrefix: 32, PrivilegedPerPrefix: 128, PerPeer: 32,
		},
		Fetch: GateParams{
			MaxPending: 128, PendingPerPrefix: 32, PendingPerPeer: 8,
			MaxStreams: 128, ReservedStreams: 48,
			PerPrefix: 8, PrivilegedPerPrefix: 48, PerPeer: 8,
		},
		// A sync session holds up to two reconcile messages and two
		// envelopes in memory (about 2 MiB by default) for up to two
		// minutes, so there are fewer of them than of relay or fetch
		// streams; host-to-host and member sync of established mailboxes
		// keep half.
		Sync: GateParams{
			MaxPending: 64, PendingPerPrefix: 16, PendingPerPeer: 4,
			MaxStreams: 24, ReservedStreams: 12,
			PerPrefix: 4, PrivilegedPerPrefix: 12, PerPeer: 4,
		},
		// A directory exchange is one request and one answer: few
		// streams are ever active at once.
		Directory: GateParams{
			MaxPending: 16, PendingPerPrefix: 4, PendingPerPeer: 2,
			MaxStreams: 16, ReservedStreams: 4,
			PerPrefix: 4, PrivilegedPerPrefix: 8, PerPeer: 2,
		},
		EnvelopeRatePerPrefix:    400,
		EnvelopeBurstPerPrefix:   800,
		PageRatePerPrefix:        100,
		PageBurstPerPrefix:       200,
		NewTrafficRate:           1000,
		NewTrafficBurst:          2000,
		NewMailboxRatePerPrefix:  0.5,
		NewMailboxBurstPerPrefix: 20,
		NewMailboxRate:           5,
		NewMailboxBurst:          100,
		NewMailboxProofBits:      20,
		NewBytesPerPrefix:        256 << 20,
		NewBytesWindow:           time.Hour,
		TrustFor:                 30 * time.Minute,
		PressureWindow:           time.Minute,
	}
}

// Validate checks p.
func (p Params) Validate() error {
	var errs []error
	if p.IPv4PrefixBits < 8 || p.IPv4PrefixBits > 32 {
		errs = append(errs, fmt.Errorf("IPv4PrefixBits %d outside [8, 32]", p.IPv4PrefixBits))
	}
	if p.IPv6PrefixBits < 16 || p.IPv6PrefixBits > 128 {
		errs = append(errs, fmt.Errorf("IPv6PrefixBits %d outside [16, 128]", p.IPv6PrefixBits))
	}
	if p.MaxTrackedPrefixes < 1 || p.MaxTrackedPeers < 1 {
		errs = append(errs, errors.New("MaxTrackedPrefixes and MaxTrackedPeers must be at least 1"))
	}
	if p.ConnsPerIP < 1 || p.ConnsPerPrefix < p.ConnsPerIP {
		errs = append(errs, fmt.Errorf("ConnsPerIP %d must be at least 1 and at most ConnsPerPrefix %d", p.ConnsPerIP, p.ConnsPerPrefix))
	}
	if p.StreamsPerPrefix < 1 {
		errs = append(errs, fmt.Errorf("StreamsPerPrefix %d must be at least 1", p.StreamsPerPrefix))
	}
	errs = append(errs, p.Relay.validate("Relay"), p.Fetch.validate("Fetch"), p.Sync.validate("Sync"), p.Directory.validate("Directory"))
	for _, r := range []struct {
		name  string
		rate  float64
		burst int
	}{
		{"EnvelopeRatePerPrefix", p.EnvelopeRatePerPrefix, p.EnvelopeBurstPerPrefix},
		{"PageRatePerPrefix", p.PageRatePerPrefix, p.PageBurstPerPrefix},
		{"NewTrafficRate", p.NewTrafficRate, p.NewTrafficBurst},
		{"NewMailboxRatePerPrefix", p.NewMailboxRatePerPrefix, p.NewMailboxBurstPerPrefix},
		{"NewMailboxRate", p.NewMailboxRate, p.NewMailboxBurst},
	} {
		if r.rate < 0 || r.burst < 0 {
			errs = append(errs, fmt.Errorf("%s and its burst must not be negative (0: no limit)", r.name))
		}
	}
	if p.NewMailboxProofBits > pow.MaxBits {
		errs = append(errs, fmt.Errorf("NewMailboxProofBits %d above %d", p.NewMailboxProofBits, pow.MaxBits))
	}
	if p.NewBytesPerPrefix < 0 || (p.NewBytesPerPrefix > 0 && p.NewBytesWindow <= 0) {
		errs = append(errs, errors.New("NewBytesPerPrefix must not be negative and needs a positive NewBytesWindow"))
	}
	if p.TrustFor < 0 || p.PressureWindow <= 0 {
		errs = append(errs, errors.New("TrustFor must not be negative and PressureWindow must be positive"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidParams, err)
	}
	return nil
}
