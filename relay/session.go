package relay

import (
	"bufio"
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	"github.com/meshnode/meshnode/internal/wire"
)

// Session relays envelopes to one remote node over one stream of the
// session protocol (SessionProtocolID), one request after another: a
// writer that relays many envelopes to the same host saves opening,
// negotiating and closing a stream per envelope. Each Send returns once
// the host reports the envelope durably stored, exactly like Send.
//
// The stream is opened on the first Send and again after any failure or
// refusal (the host ends a session after a refusal). A Session is not
// safe for concurrent use: keep one per request in flight.
type Session struct {
	h       host.Host
	p       peer.ID
	timeout time.Duration
	st      network.Stream
	br      *bufio.Reader
	closed  bool
}

// NewSession returns a session to p on h. timeout bounds each Send
// (0 means DefaultParams().StreamTimeout).
func NewSession(h host.Host, p peer.ID, timeout time.Duration) *Session {
	if timeout <= 0 {
		timeout = DefaultParams().StreamTimeout
	}
	return &Session{h: h, p: p, timeout: timeout}
}

// Send relays env to mailbox m and waits for the host's answer. Errors
// match the remote's reason with errors.Is, as for Send.
func (s *Session) Send(ctx context.Context, m envelope.MailboxID, env *envelope.Envelope) error {
	if s.closed {
		return ErrSessionClosed
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if s.st == nil {
		st, err := s.h.NewStream(ctx, s.p, SessionProtocolID)
		if err != nil {
			return fmt.Errorf("relay: open session to %s: %w", s.p, err)
		}
		if err := st.Scope().SetService(ServiceName); err != nil {
			_ = st.Reset()
			return fmt.Errorf("relay: %w", err)
		}
		s.st, s.br = st, bufio.NewReaderSize(st, maxResponseSize+8)
	}
	st := s.st
	deadline, _ := ctx.Deadline()
	_ = st.SetDeadline(deadline)
	// Cancelling ctx must also end a read blocked on the stream.
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer stop()
	fail := func(err error) error {
		_ = st.Reset()
		s.st, s.br = nil, nil
		return err
	}
	if err := writeFrame(st, (&request{mailbox: m, envelope: env.Bytes()}).marshal()); err != nil {
		return fail(fmt.Errorf("relay: send to %s: %w", s.p, err))
	}
	frame, err := wire.NewReader(s.br).ReadFrame(maxResponseSize)
	if err != nil {
		return fail(fmt.Errorf("relay: read answer from %s: %w", s.p, err))
	}
	resp, err := parseResponse(frame)
	if err != nil {
		return fail(err)
	}
	if resp.code != status.OK && resp.code != status.Duplicate {
		// The host ends the session after a refusal; so do we.
		_ = st.Close()
		s.st, s.br = nil, nil
	}
	if rerr := resp.code.Err(resp.msg); rerr != nil {
		return fmt.Errorf("relay: %s refused envelope: %w", s.p, rerr)
	}
	return nil
}

// Close ends the session: the host sees the end of the stream after the
// last answer. It is idempotent.
func (s *Session) Close() error {
	s.closed = true
	if s.st == nil {
		return nil
	}
	st := s.st
	s.st, s.br = nil, nil
	return st.Close()
}
