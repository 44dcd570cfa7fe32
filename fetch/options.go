package fetch

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/meshnode/meshnode/admission"
	"github.com/meshnode/meshnode/envelope"
)

// MaxCursorSize bounds an opaque cursor on the wire.
const MaxCursorSize = 64

// MaxReadAhead bounds Params.ReadAhead.
const MaxReadAhead = 64

// Params tune the fetch service and client.
type Params struct {
	MaxEnvelopeSize int
	// MaxPageCount and MaxPageBytes bound one page.
	MaxPageCount int
	MaxPageBytes int
	// MaxStreamPages bounds the pages a host sends on one stream of the
	// streaming protocol (StreamProtocolID) before it closes it; the
	// client goes on with a new stream from the last cursor.
	MaxStreamPages int
	// ReadAhead is how many pages the client of the streaming protocol
	// reads ahead of the page it is decoding and handing over, while the
	// resource manager grants their memory: the host goes on sending
	// instead of waiting for the stream's window to reopen.
	ReadAhead int
	// StreamTimeout bounds one request/page exchange, and on a stream of
	// pages each page: the deadline moves on with every page.
	StreamTimeout time.Duration
	// RequestTimeout bounds how long a host waits for the request of a
	// stream it accepted: a stream that sends nothing holds a place no
	// longer than this (and may be reset sooner to make room: package
	// admission).
	RequestTimeout time.Duration
	// PeerRate and PeerBurst limit pages served per remote peer per
	// second, whether each page is its own stream or one of many on a
	// stream.
	PeerRate        float64
	PeerBurst       int
	MaxTrackedPeers int
}

// DefaultParams suit members and community hosts alike.
func DefaultParams() Params {
	return Params{
		MaxEnvelopeSize: envelope.DefaultMaxSize,
		MaxPageCount:    1000,
		MaxPageBytes:    2 << 20,
		MaxStreamPages:  256,
		ReadAhead:       8,
		StreamTimeout:   30 * time.Second,
		RequestTimeout:  5 * time.Second,
		PeerRate:        50,
		PeerBurst:       100,
		MaxTrackedPeers: 4096,
	}
}

func (p Params) validate() error {
	switch {
	case p.MaxEnvelopeSize <= envelope.Overhead || p.MaxEnvelopeSize > envelope.AbsoluteMaxSize:
		return fmt.Errorf("fetch: MaxEnvelopeSize %d outside (%d, %d]", p.MaxEnvelopeSize, envelope.Overhead, envelope.AbsoluteMaxSize)
	case p.MaxPageCount <= 0 || p.MaxPageCount > 100000:
		return fmt.Errorf("fetch: MaxPageCount %d outside [1, 100000]", p.MaxPageCount)
	case p.MaxPageBytes < p.MaxEnvelopeSize:
		return fmt.Errorf("fetch: MaxPageBytes %d below MaxEnvelopeSize %d", p.MaxPageBytes, p.MaxEnvelopeSize)
	case p.MaxStreamPages <= 0 || p.MaxStreamPages > 1<<20:
		return fmt.Errorf("fetch: MaxStreamPages %d outside [1, %d]", p.MaxStreamPages, 1<<20)
	case p.ReadAhead < 0 || p.ReadAhead > MaxReadAhead:
		return fmt.Errorf("fetch: ReadAhead %d outside [0, %d]", p.ReadAhead, MaxReadAhead)
	case p.StreamTimeout <= 0 || p.RequestTimeout <= 0:
		return fmt.Errorf("fetch: StreamTimeout and RequestTimeout must be positive")
	case p.PeerRate < 0 || p.PeerBurst < 0 || p.MaxTrackedPeers <= 0:
		return fmt.Errorf("fetch: rate limit settings out of range")
	}
	return nil
}

type config struct {
	params Params
	log    *slog.Logger
	policy Policy
	adm    *admission.Controller
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
func WithLogger(l *slog.Logger) Option { return func(c *config) error { c.log = l; return nil } }

// WithAdmission admits streams through c's fetch gate and limits pages
// per network prefix (package admission). Without it only the per-peer
// limits apply.
func WithAdmission(c *admission.Controller) Option {
	return func(cfg *config) error { cfg.adm = c; return nil }
}

// WithPolicy decides which mailboxes are served to whom.
func WithPolicy(p Policy) Option { return func(c *config) error { c.policy = p; return nil } }
