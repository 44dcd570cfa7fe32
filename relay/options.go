package relay

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/meshnode/meshnode/envelope"
)

// Params tune the relay. Start from DefaultParams.
type Params struct {
	// MaxEnvelopeSize is the largest envelope encoding accepted or sent.
	MaxEnvelopeSize int
	// StreamTimeout bounds one direct relay exchange, including the
	// server's durable commit; an idle session ends after at most this.
	StreamTimeout time.Duration
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
}

// MaxSessionWindow bounds Params.SessionWindow.
const MaxSessionWindow = 1024

// DefaultParams suit a member node and a small community host.
func DefaultParams() Params {
	return Params{
		MaxEnvelopeSize:        envelope.DefaultMaxSize,
		StreamTimeout:          15 * time.Second,
		SessionWindow:          32,
		PeerRate:               200,
		PeerBurst:              400,
		MaxTrackedPeers:        4096,
		RejectsBeforeBlacklist: 20,
		BlacklistWindow:        time.Minute,
		BlacklistFor:           10 * time.Minute,
	}
}

func (p Params) validate() error {
	switch {
	case p.MaxEnvelopeSize <= envelope.Overhead || p.MaxEnvelopeSize > envelope.AbsoluteMaxSize:
		return fmt.Errorf("relay: MaxEnvelopeSize %d outside (%d, %d]", p.MaxEnvelopeSize, envelope.Overhead, envelope.AbsoluteMaxSize)
	case p.StreamTimeout <= 0:
		return fmt.Errorf("relay: StreamTimeout must be positive")
	case p.SessionWindow < 1 || p.SessionWindow > MaxSessionWindow:
		return fmt.Errorf("relay: SessionWindow %d outside [1, %d]", p.SessionWindow, MaxSessionWindow)
	case p.PeerRate < 0 || p.PeerBurst < 0:
		return fmt.Errorf("relay: PeerRate and PeerBurst must not be negative")
	case p.MaxTrackedPeers <= 0:
		return fmt.Errorf("relay: MaxTrackedPeers must be positive")
	case p.RejectsBeforeBlacklist < 0 || p.BlacklistWindow < 0 || p.BlacklistFor < 0:
		return fmt.Errorf("relay: blacklist settings must not be negative")
	}
	return nil
}

// MaxRequestSize is the largest direct relay request frame for p.
func (p Params) MaxRequestSize() int { return 1 + 32 + p.MaxEnvelopeSize }

type config struct {
	params Params
	log    *slog.Logger
	policy Policy
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
