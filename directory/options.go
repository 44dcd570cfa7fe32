package directory

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/meshnode/meshnode/admission"
	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/keymgmt"
)

// Absolute wire bounds; Params may only lower them.
const (
	// AbsMaxBlobs bounds the packages of one publish.
	AbsMaxBlobs = 64
	// AbsMaxBlobSize bounds one package blob.
	AbsMaxBlobSize = 16 << 10
	// AbsMaxMailboxes bounds the request mailboxes of one name.
	AbsMaxMailboxes = 8
)

// Params tune the directory service (host side) and client.
type Params struct {
	// Serve runs the directory service on this node.
	Serve bool
	// InMemory keeps the host's directory in memory (tests, simulator).
	InMemory bool
	// MaxNames bounds the names a host holds (tombstones included).
	MaxNames int
	// MaxBlobs and MaxBlobSize bound the packages of one name.
	MaxBlobs    int
	MaxBlobSize int
	// MaxMailboxes bounds the request mailboxes of one name (the current
	// one and those of packages still valid after a rotation).
	MaxMailboxes int
	// MaxTTL bounds how far in the future a publish may expire.
	MaxTTL time.Duration
	// MaxSkew is the clock skew accepted on signed requests' timestamps;
	// a removed name's tombstone lives this long so a replayed publish
	// cannot bring it back.
	MaxSkew time.Duration
	// StreamTimeout bounds one exchange.
	StreamTimeout time.Duration
	// RequestTimeout bounds how long the service waits for the request
	// of a stream it accepted: a stream that sends nothing holds a place
	// no longer than this (and, pending in an admission gate, may be
	// reset sooner to make room: WithAdmission).
	RequestTimeout time.Duration
	// FetchRate/FetchBurst limit fetches per remote peer per second;
	// NameFetchRate/NameFetchBurst limit fetches of one name from all
	// peers together, so nobody drains a name's packages quickly.
	FetchRate      float64
	FetchBurst     int
	NameFetchRate  float64
	NameFetchBurst int
	// WriteRate/WriteBurst limit publishes, removals and status queries
	// per remote peer per second.
	WriteRate  float64
	WriteBurst int
	// MaxTrackedPeers bounds the limiters' memory.
	MaxTrackedPeers int
	// SweepInterval is how often expired names are deleted.
	SweepInterval time.Duration
}

// DefaultParams suit a community host. Serve is off: node.DefaultParams
// turns it on for hosts and bots.
func DefaultParams() Params {
	return Params{
		MaxNames:        100000,
		MaxBlobs:        16,
		MaxBlobSize:     keymgmt.MaxConnPackageSize + keymgmt.BlobOverhead,
		MaxMailboxes:    4,
		MaxTTL:          30 * 24 * time.Hour,
		MaxSkew:         5 * time.Minute,
		StreamTimeout:   15 * time.Second,
		RequestTimeout:  5 * time.Second,
		FetchRate:       1,
		FetchBurst:      20,
		NameFetchRate:   0.2,
		NameFetchBurst:  20,
		WriteRate:       1,
		WriteBurst:      30,
		MaxTrackedPeers: 4096,
		SweepInterval:   10 * time.Minute,
	}
}

func (p Params) validate() error {
	switch {
	case p.MaxNames <= 0:
		return fmt.Errorf("%w: MaxNames must be positive", ErrInvalidParams)
	case p.MaxBlobs <= 0 || p.MaxBlobs > AbsMaxBlobs:
		return fmt.Errorf("%w: MaxBlobs %d outside [1, %d]", ErrInvalidParams, p.MaxBlobs, AbsMaxBlobs)
	case p.MaxBlobSize <= keymgmt.BlobOverhead || p.MaxBlobSize > AbsMaxBlobSize:
		return fmt.Errorf("%w: MaxBlobSize %d outside (%d, %d]", ErrInvalidParams, p.MaxBlobSize, keymgmt.BlobOverhead, AbsMaxBlobSize)
	case p.MaxMailboxes < 0 || p.MaxMailboxes > AbsMaxMailboxes:
		return fmt.Errorf("%w: MaxMailboxes %d outside [0, %d]", ErrInvalidParams, p.MaxMailboxes, AbsMaxMailboxes)
	case p.MaxTTL < time.Minute:
		return fmt.Errorf("%w: MaxTTL %v below a minute", ErrInvalidParams, p.MaxTTL)
	case p.MaxSkew <= 0 || p.StreamTimeout <= 0 || p.RequestTimeout <= 0 || p.SweepInterval <= 0:
		return fmt.Errorf("%w: MaxSkew, StreamTimeout, RequestTimeout and SweepInterval must be positive", ErrInvalidParams)
	case p.FetchRate < 0 || p.NameFetchRate < 0 || p.WriteRate < 0 || p.FetchBurst < 0 || p.NameFetchBurst < 0 || p.WriteBurst < 0:
		return fmt.Errorf("%w: rates and bursts must not be negative", ErrInvalidParams)
	case p.MaxTrackedPeers <= 0:
		return fmt.Errorf("%w: MaxTrackedPeers must be positive", ErrInvalidParams)
	}
	return nil
}

// Validate reports whether p is usable (for callers that embed Params).
func (p Params) Validate() error { return p.validate() }

// MailboxHook is told when request mailboxes start and stop being listed
// by a live name, so the node hosts them (they are open to write: hosts
// store what their writers post, within the store's quotas and the relay's
// per-peer limits). Each mailbox is reported once when its first name
// lists it and once when its last name stops; calls are serialised.
type MailboxHook func(added, removed []envelope.MailboxID)

type config struct {
	params Params
	log    *slog.Logger
	now    func() time.Time
	hook   MailboxHook
	adm    *admission.Controller
}

// WithAdmission admits incoming streams through c's directory gate
// (package admission): a stream is pending until its request has arrived
// (within RequestTimeout; the oldest pending ones are reset to make room
// for newer ones, so idle streams from any number of peer IDs cannot
// lock anyone out), then active within limits per peer, per network
// prefix and in all, or refused with ErrBusy.
func WithAdmission(c *admission.Controller) Option {
	return func(cfg *config) error { cfg.adm = c; return nil }
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

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidParams)
		}
		c.log = l
		return nil
	}
}

// WithClock replaces time.Now (tests drive expiry with it).
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", ErrInvalidParams)
		}
		c.now = now
		return nil
	}
}

// WithMailboxHook is called as request mailboxes come and go.
func WithMailboxHook(h MailboxHook) Option {
	return func(c *config) error { c.hook = h; return nil }
}
