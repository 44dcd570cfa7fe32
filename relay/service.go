package relay

import (
	"bufio"
	"context"
	"encoding/binary"
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
	// Memory is reserved before it is allocated: first the read buffer,
	// then, once the request's length prefix has arrived, the frame it
	// announces (at most MaxRequestSize). A small envelope thus holds only
	// what it needs, and a sender can keep as many of them in flight as the
	// service's per-peer stream limit allows, not just as many maximum-size
	// frames as its memory limit holds.
	reserved := 0
	reserve := func(n int) bool {
		if err := s.Scope().ReserveMemory(n, network.ReservationPriorityAlways); err != nil {
			r.log.Debug("resource manager refused relay memory", "err", err)
			s.Scope().ReleaseMemory(reserved)
			_ = s.Reset()
			return false
		}
		reserved += n
		return true
	}
	if !reserve(readBufferSize) {
		return
	}
	br := bufio.NewReaderSize(s, readBufferSize)
	if !reserve(announced(br, r.params.MaxRequestSize())) {
		return
	}
	from := s.Conn().RemotePeer()
	code, msg := r.serve(s, br)
	// The reservation covers the request, which serve is done with.
	// Release it before answering: a sender that opens its next stream as
	// soon as it reads the answer (a writer keeping the per-peer maximum
	// in flight) must find the memory already free, or the resource
	// manager refuses that stream and the sender sees it reset.
	s.Scope().ReleaseMemory(reserved)
	if code != status.OK && code != status.Duplicate {
		r.log.Debug("relay request refused", "peer", from, "code", code, "msg", msg)
	}
	if err := writeFrame(s, (&response{code: code, msg: msg}).marshal()); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

// announced returns the length of the frame whose prefix starts br,
// without consuming it (ReadFrame reads the prefix again). It returns 0
// when the prefix does not decode or exceeds max: ReadFrame then fails
// without allocating the body.
func announced(br *bufio.Reader, max int) int {
	b, _ := br.Peek(binary.MaxVarintLen64) // fewer bytes at the end of a short stream
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(max) {
		return 0
	}
	return int(n)
}

func (r *Relay) serve(s network.Stream, br *bufio.Reader) (status.Code, string) {
	from := s.Conn().RemotePeer()
	if !r.limiter.Allow(from, 1) {
		return status.RateLimited, "too many envelopes; slow down"
	}
	frame, err := wire.NewReader(br).ReadFrame(r.params.MaxRequestSize())
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
		if err := r.publish(ctx, env, true); err != nil {
			r.log.Debug("could not gossip relayed envelope", "mailbox", q.mailbox.Short(), "err", err)
		}
	}
	return status.OK, ""
}
