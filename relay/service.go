package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	"github.com/meshnode/meshnode/internal/wire"
)

// handleStream serves one direct relay request.
func (r *Relay) handleStream(s network.Stream) {
	_ = s.SetDeadline(time.Now().Add(r.params.StreamTimeout))
	if err := s.Scope().SetService(ServiceName); err != nil {
		r.log.Debug("resource manager refused relay stream", "err", err)
		_ = s.Reset()
		return
	}
	if err := s.Scope().ReserveMemory(r.params.MaxRequestSize(), network.ReservationPriorityAlways); err != nil {
		r.log.Debug("resource manager refused relay memory", "err", err)
		_ = s.Reset()
		return
	}
	defer s.Scope().ReleaseMemory(r.params.MaxRequestSize())

	from := s.Conn().RemotePeer()
	code, msg := r.serve(s)
	if code != status.OK && code != status.Duplicate {
		r.log.Debug("relay request refused", "peer", from, "code", code, "msg", msg)
	}
	if err := wire.WriteOne(s, (&response{code: code, msg: msg}).marshal()); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

func (r *Relay) serve(s network.Stream) (status.Code, string) {
	from := s.Conn().RemotePeer()
	if !r.limiter.Allow(from, 1) {
		return status.RateLimited, "too many envelopes; slow down"
	}
	frame, err := wire.NewReader(s).ReadFrame(r.params.MaxRequestSize())
	if err != nil {
		if errors.Is(err, wire.ErrFrameTooLarge) {
			return status.FromError(fmt.Errorf("%w: %v", envelope.ErrTooLarge, err))
		}
		return status.FromError(fmt.Errorf("%w: %v", envelope.ErrMalformed, err))
	}
	q, err := parseRequest(frame)
	if err != nil {
		return status.FromError(err)
	}
	if r.policy != nil && !r.policy.Serves(q.mailbox, from) {
		return status.NotServed, "this host does not serve that mailbox"
	}
	env, err := envelope.Open(q.envelope, r.params.MaxEnvelopeSize, &q.mailbox)
	if err != nil {
		r.penalise(from, err)
		return status.FromError(err)
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.params.StreamTimeout)
	defer cancel()
	dup, err := r.handler.Deliver(ctx, env, from)
	if err != nil {
		return status.FromError(err)
	}
	if dup {
		return status.Duplicate, ""
	}
	// Stored: spread it to the mailbox's online readers. A failure here is
	// not the sender's problem: the envelope is stored and fetchable.
	if r.Joined(q.mailbox) {
		if err := r.Publish(ctx, env); err != nil {
			r.log.Debug("could not gossip relayed envelope", "mailbox", q.mailbox.Short(), "err", err)
		}
	}
	return status.OK, ""
}
