package hostsync

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/admission"
	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/reconcile"
)

// Params tune the sync service. Start from DefaultParams.
type Params struct {
	// Reconcile are the set-reconciliation limits. The initiator sends its
	// own in the hello; a responder accepts them only if none exceeds its
	// own (so a peer cannot make us accept larger messages or more rounds).
	Reconcile reconcile.Params
	// MaxEnvelopeSize is the largest envelope encoding sent or accepted.
	MaxEnvelopeSize int

	// SessionTimeout bounds a whole session (deadline set right after the
	// stream is opened or accepted).
	SessionTimeout time.Duration
	// IdleTimeout bounds the wait for any one frame, so a peer that stops
	// talking is dropped well before SessionTimeout.
	IdleTimeout time.Duration
	// HelloTimeout bounds the wait for the hello of an incoming session
	// (a peer that opens a stream and sends nothing is dropped within a
	// few seconds, not IdleTimeout).
	HelloTimeout time.Duration

	// MaxEnvelopes and MaxBytes bound the envelopes (and their bytes) moved
	// each way in one session. A session that stops at a limit reports
	// Stats.Truncated; the next session continues.
	MaxEnvelopes int
	MaxBytes     int64
	// PeerRate and PeerBurst bound the envelope bytes moved with one peer
	// (each way, every session together) to a token bucket of PeerRate
	// bytes per second and PeerBurst bytes: members' nodes sync with each
	// other under such a budget. Past it a side stops pushing (the session
	// reports Throttled, and the scheduler waits BackoffMin before the
	// next), and a peer that pushes more is cut off (not a violation: its
	// budget may be larger). 0 means unlimited (hosts).
	PeerRate  float64
	PeerBurst int

	// MaxIncoming bounds concurrent incoming sessions, MaxIncomingPerPeer
	// those of one peer, MaxOutgoing concurrent outgoing sessions. With
	// admission (WithAdmission), the sync gate bounds incoming sessions
	// instead: per peer, per network prefix, in all, and with a share
	// reserved for established mailboxes.
	MaxIncoming        int
	MaxIncomingPerPeer int
	MaxOutgoing        int
	// SessionRate and SessionBurst limit incoming sessions per peer (per
	// second).
	SessionRate  float64
	SessionBurst int
	// MaxTrackedPeers bounds the rate limiter, strike and ban tables.
	MaxTrackedPeers int
	// A peer that commits StrikesBeforeBan protocol violations within
	// StrikeWindow is refused (both ways) for BanFor.
	StrikesBeforeBan int
	StrikeWindow     time.Duration
	BanFor           time.Duration

	// Interval is the period of the scheduled sync of each watched mailbox
	// with each of its known hosts, randomised by ±Jitter (a fraction).
	Interval time.Duration
	Jitter   float64
	// PollInterval is how often the scheduler checks for new hosts of
	// watched mailboxes and for due work.
	PollInterval time.Duration
	// After a failed session with a peer, the next one for that mailbox
	// waits BackoffMin, doubling per failure up to BackoffMax (jittered).
	BackoffMin time.Duration
	BackoffMax time.Duration
}

// DefaultParams suit members and community hosts alike.
func DefaultParams() Params {
	return Params{
		Reconcile:          reconcile.DefaultParams(),
		MaxEnvelopeSize:    envelope.DefaultMaxSize,
		SessionTimeout:     2 * time.Minute,
		IdleTimeout:        30 * time.Second,
		HelloTimeout:       5 * time.Second,
		MaxEnvelopes:       10_000,
		MaxBytes:           64 << 20,
		MaxIncoming:        16,
		MaxIncomingPerPeer: 4,
		MaxOutgoing:        4,
		SessionRate:        1,
		SessionBurst:       32,
		MaxTrackedPeers:    4096,
		StrikesBeforeBan:   3,
		StrikeWindow:       10 * time.Minute,
		BanFor:             30 * time.Minute,
		Interval:           5 * time.Minute,
		Jitter:             0.25,
		PollInterval:       2 * time.Second,
		BackoffMin:         5 * time.Second,
		BackoffMax:         10 * time.Minute,
	}
}

func (p Params) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidParams}, args...)...)
	}
	if _, err := reconcile.NewResponder(reconcile.NewMemSet(), p.Reconcile); err != nil {
		return bad("reconcile parameters: %v", err)
	}
	switch {
	case p.MaxEnvelopeSize <= envelope.Overhead || p.MaxEnvelopeSize > envelope.AbsoluteMaxSize:
		return bad("MaxEnvelopeSize %d outside (%d, %d]", p.MaxEnvelopeSize, envelope.Overhead, envelope.AbsoluteMaxSize)
	case p.SessionTimeout <= 0 || p.IdleTimeout <= 0 || p.HelloTimeout <= 0:
		return bad("SessionTimeout, IdleTimeout and HelloTimeout must be positive")
	case p.PeerRate < 0 || (p.PeerRate > 0 && p.PeerBurst < p.MaxEnvelopeSize):
		return bad("PeerRate must not be negative, and PeerBurst must hold an envelope (%d bytes)", p.MaxEnvelopeSize)
	case p.MaxEnvelopes < 1 || p.MaxBytes < int64(p.MaxEnvelopeSize):
		return bad("MaxEnvelopes must be positive and MaxBytes (%d) at least MaxEnvelopeSize", p.MaxBytes)
	case p.Reconcile.MaxLearnt < p.MaxEnvelopes:
		return bad("Reconcile.MaxLearnt %d below MaxEnvelopes %d", p.Reconcile.MaxLearnt, p.MaxEnvelopes)
	case p.MaxIncoming < 1 || p.MaxIncomingPerPeer < 1 || p.MaxOutgoing < 1:
		return bad("MaxIncoming, MaxIncomingPerPeer and MaxOutgoing must be positive")
	case p.SessionRate < 0 || p.SessionBurst < 0 || p.MaxTrackedPeers < 1:
		return bad("session rate limits out of range")
	case p.StrikesBeforeBan < 1 || p.StrikeWindow <= 0 || p.BanFor < 0:
		return bad("StrikesBeforeBan and StrikeWindow must be positive, BanFor not negative")
	case p.Interval <= 0 || p.Jitter < 0 || p.Jitter >= 1 || p.PollInterval <= 0:
		return bad("Interval and PollInterval must be positive and Jitter in [0, 1)")
	case p.BackoffMin <= 0 || p.BackoffMax < p.BackoffMin:
		return bad("BackoffMin must be positive and BackoffMax at least BackoffMin")
	}
	return nil
}

type config struct {
	params  Params
	adm     *admission.Controller
	log     *slog.Logger
	hostsOf func(envelope.MailboxID) []peer.ID

	// served, if set, is called after every incoming session (tests).
	served func(p peer.ID, m envelope.MailboxID, st *Stats, err error)
}

// Option configures a Service.
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

// WithAdmission admits incoming sessions through c's sync gate (package
// admission): a session is pending until its hello has arrived (within
// HelloTimeout; the oldest pending ones make room for newer ones), then
// active, privileged when its mailbox is established or its peer is
// trusted, or refused Busy. Without it, MaxIncoming and
// MaxIncomingPerPeer alone bound incoming sessions.
func WithAdmission(c *admission.Controller) Option {
	return func(cfg *config) error { cfg.adm = c; return nil }
}

// WithLogger sets the logger (default slog.Default with component=hostsync).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidParams)
		}
		c.log = l
		return nil
	}
}

// WithHosts tells the scheduler which peers are known to host a mailbox
// (for example the peers on its gossip topic and the hosts named in the
// invite). It is called from the scheduler goroutine every PollInterval
// for every watched mailbox, so it must be cheap and must not call back
// into the Service. A peer that appears in it is synced with at once; a
// peer that disappears and comes back is synced with again. Without it
// the scheduler only syncs with peers passed to PeerJoined.
func WithHosts(fn func(envelope.MailboxID) []peer.ID) Option {
	return func(c *config) error {
		if fn == nil {
			return fmt.Errorf("%w: nil hosts function", ErrInvalidParams)
		}
		c.hostsOf = fn
		return nil
	}
}
