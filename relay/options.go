package relay

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/meshnode/meshnode/admission"
	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/pow"
)

// Params tune the relay. Start from DefaultParams.
type Params struct {
	// MaxEnvelopeSize is the largest envelope encoding accepted or sent.
	MaxEnvelopeSize int
	// StreamTimeout bounds one direct relay exchange, including the
	// server's durable commit; an idle session ends after at most this.
	StreamTimeout time.Duration
	// RequestTimeout bounds how long the server waits for the first
	// request of a stream it accepted: a stream that sends nothing holds a
	// place no longer than this (and, pending, may be reset sooner to make
	// room: package admission).
	RequestTimeout time.Duration
	// MaxProofBits is the largest new-mailbox proof of work the client
	// computes when a host asks for one (Send and Session.Send solve it
	// and send again); a host asking for more gets an error matching
	// status.ErrProofRequired back. 0 never solves one.
	MaxProofBits uint8
	// SessionWindow is how many requests of one session (SessionProtocolID)
	// the server verifies and stores at once. A sender may pipeline more;
	// they wait in the stream until one of these is answered.
	SessionWindow int
	// PeerRate and PeerBurst limit envelopes accepted per remote peer per
	// second, over both gossip and direct relay.
	PeerRate  float64
	PeerBurst int
	// MaxTrackedPeers bounds the rate limiter's memory.
	MaxTrackedPeers int
	// RejectsBeforeBlacklist: a peer that sends this many invalid envelopes
	// within BlacklistWindow is blacklisted in pubsub for BlacklistFor.
	RejectsBeforeBlacklist int
	BlacklistWindow        time.Duration
	BlacklistFor           time.Duration

	// The remote subscriptions gossipsub may track (SubscriptionFilter):
	// topics per peer, general (peer, topic) pairs per network prefix,
	// pairs in all, and the share of those kept for privileged pairs
	// (established mailboxes, trusted peers). Each pair costs pubsub and
	// the filter about 300 bytes.
	SubscriptionsPerPeer   int
	SubscriptionsPerPrefix int
	MaxSubscriptions       int
	ReservedSubscriptions  int
}

// MaxSessionWindow bounds Params.SessionWindow.
const MaxSessionWindow = 1024

// DefaultParams suit a member node and a small community host.
func DefaultParams() Params {
	return Params{
		MaxEnvelopeSize:        envelope.DefaultMaxSize,
		StreamTimeout:          15 * time.Second,
		RequestTimeout:         5 * time.Second,
		MaxProofBits:           DefaultMaxProofBits,
		SessionWindow:          32,
		PeerRate:               200,
		PeerBurst:              400,
		MaxTrackedPeers:        4096,
		RejectsBeforeBlacklist: 20,
		BlacklistWindow:        time.Minute,
		BlacklistFor:           10 * time.Minute,
		// A host joins at most a few hundred topics (node's
		// MaxJoinedTopics and its pinned mailboxes), a member its groups'.
		SubscriptionsPerPeer:   1024,
		SubscriptionsPerPrefix: 4096,
		MaxSubscriptions:       32768,
		ReservedSubscriptions:  8192,
	}
}

// Validate reports the first problem with p (nil: usable).
func (p Params) Validate() error { return p.validate() }

func (p Params) validate() error {
	switch {
	case p.MaxEnvelopeSize <= envelope.Overhead || p.MaxEnvelopeSize > envelope.AbsoluteMaxSize:
		return fmt.Errorf("relay: MaxEnvelopeSize %d outside (%d, %d]", p.MaxEnvelopeSize, envelope.Overhead, envelope.AbsoluteMaxSize)
	case p.StreamTimeout <= 0 || p.RequestTimeout <= 0:
		return fmt.Errorf("relay: StreamTimeout and RequestTimeout must be positive")
	case p.MaxProofBits > admissionMaxBits:
		return fmt.Errorf("relay: MaxProofBits %d above %d", p.MaxProofBits, admissionMaxBits)
	case p.SessionWindow < 1 || p.SessionWindow > MaxSessionWindow:
		return fmt.Errorf("relay: SessionWindow %d outside [1, %d]", p.SessionWindow, MaxSessionWindow)
	case p.PeerRate < 0 || p.PeerBurst < 0:
		return fmt.Errorf("relay: PeerRate and PeerBurst must not be negative")
	case p.MaxTrackedPeers <= 0:
		return fmt.Errorf("relay: MaxTrackedPeers must be positive")
	case p.RejectsBeforeBlacklist < 0 || p.BlacklistWindow < 0 || p.BlacklistFor < 0:
		return fmt.Errorf("relay: blacklist settings must not be negative")
	case p.SubscriptionsPerPeer < 1 || p.SubscriptionsPerPrefix < 1 || p.MaxSubscriptions < p.SubscriptionsPerPeer:
		return fmt.Errorf("relay: SubscriptionsPerPeer and SubscriptionsPerPrefix must be positive, MaxSubscriptions at least SubscriptionsPerPeer")
	case p.ReservedSubscriptions < 0 || p.ReservedSubscriptions >= p.MaxSubscriptions:
		return fmt.Errorf("relay: ReservedSubscriptions %d outside [0, MaxSubscriptions)", p.ReservedSubscriptions)
	}
	return nil
}

// DefaultMaxProofBits is the default Params.MaxProofBits: about 1.4 s of
// one core (internal/pow), paid once per new mailbox on a host under
// load; a host's default asks for 20 (about 0.35 s).
const DefaultMaxProofBits = 22

// admissionMaxBits bounds any proof of work on the wire.
const admissionMaxBits = pow.MaxBits

// MaxRequestSize is the largest direct relay request frame for p (a
// request with a proof of work).
func (p Params) MaxRequestSize() int { return 1 + 32 + proofSize + p.MaxEnvelopeSize }

type config struct {
	params Params
	log    *slog.Logger
	policy Policy
	adm    *admission.Controller
}

// WithAdmission admits streams and envelopes through c (package
// admission): stream gates, per-prefix rates, and where each envelope came
// from for the Handler (OriginHandler). Without it only the per-peer
// limits apply.
func WithAdmission(c *admission.Controller) Option {
	return func(cfg *config) error { cfg.adm = c; return nil }
}

// Option configures a Relay.
type Option func(*config) error

// WithParams replaces DefaultParams.
func WithParams(p Params) Option {
	return func(c *config) error {
		if err := p.validate(); err != nil {
			return err
		}
		c.params = p
		return nil
	}
}

// WithLogger sets the logger (default slog.Default with component=relay).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error { c.log = l; return nil }
}

// WithPolicy decides which mailboxes this node accepts direct relays for.
// Without it every mailbox whose topic was joined is served.
func WithPolicy(p Policy) Option {
	return func(c *config) error { c.policy = p; return nil }
}
