package relay

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	"github.com/meshnode/meshnode/internal/wire"
)

// handleStream serves direct relay requests: one per stream on
// ProtocolID, any number in turn on SessionProtocolID.
func (r *Relay) handleStream(s network.Stream) {
	session := s.Protocol() == SessionProtocolID
	_ = s.SetDeadline(time.Now().Add(r.params.StreamTimeout))
	if err := s.Scope().SetService(ServiceName); err != nil {
		r.log.Debug("resource manager refused relay stream", "err", err)
		_ = s.Reset()
		return
	}
	// Memory is reserved before it is allocated: for the stream's
	// lifetime, the read buffer and one small request frame
	// (smallFrameSize); for each larger request, once its length prefix has
	// arrived, the rest of the frame it announces (at most MaxRequestSize).
	// A small envelope thus holds only what it needs, a sender can keep as
	// many of them in flight as the service's per-peer stream limit allows
	// (not just as many maximum-size frames as its memory limit holds), and
	// a session of small envelopes costs the resource manager nothing per
	// request.
	const base = readBufferSize + smallFrameSize
	if err := s.Scope().ReserveMemory(base, network.ReservationPriorityAlways); err != nil {
		r.log.Debug("resource manager refused relay memory", "err", err)
		_ = s.Reset()
		return
	}
	defer s.Scope().ReleaseMemory(base)
	br := bufio.NewReaderSize(s, readBufferSize)
	from := s.Conn().RemotePeer()
	for {
		extra := max(0, announced(br, r.params.MaxRequestSize())-smallFrameSize)
		if extra > 0 {
			if err := s.Scope().ReserveMemory(extra, network.ReservationPriorityAlways); err != nil {
				r.log.Debug("resource manager refused relay memory", "err", err)
				_ = s.Reset()
				return
			}
		}
		code, msg, intact := r.serve(s, br)
		// The frame's reservation covers the request, which serve is done
		// with. Release it before answering: a sender that sends its next
		// request as soon as it reads the answer (a writer keeping the
		// per-peer maximum in flight) must find the memory already free, or
		// the resource manager refuses that stream and the sender sees it
		// reset.
		if extra > 0 {
			s.Scope().ReleaseMemory(extra)
		}
		if code != status.OK && code != status.Duplicate {
			r.log.Debug("relay request refused", "peer", from, "code", code, "msg", msg)
		}
		if err := writeFrame(s, (&response{code: code, msg: msg}).marshal()); err != nil {
			_ = s.Reset()
			return
		}
		// A session ends after a refusal (the client opens a new stream
		// after one) and after a request that did not leave the stream at a
		// frame boundary.
		if !session || !intact || (code != status.OK && code != status.Duplicate) {
			_ = s.Close()
			return
		}
		// Wait for the next request or the sender's end of the session; an
		// idle session ends after StreamTimeout.
		_ = s.SetDeadline(time.Now().Add(r.params.StreamTimeout))
		if _, err := br.Peek(1); err != nil {
			if errors.Is(err, io.EOF) {
				_ = s.Close()
			} else {
				_ = s.Reset()
			}
			return
		}
	}
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

// serve reads and handles one request. intact reports that the request
// frame was read whole, so the stream is at a frame boundary.
func (r *Relay) serve(s network.Stream, br *bufio.Reader) (code status.Code, msg string, intact bool) {
	from := s.Conn().RemotePeer()
	if !r.limiter.Allow(from, 1) {
		return status.RateLimited, "too many envelopes; slow down", false
	}
	frame, err := wire.NewReader(br).ReadFrame(r.params.MaxRequestSize())
	if err != nil {
		if errors.Is(err, wire.ErrFrameTooLarge) {
			code, msg = status.FromError(fmt.Errorf("%w: %v", envelope.ErrTooLarge, err))
		} else {
			code, msg = status.FromError(fmt.Errorf("%w: %v", envelope.ErrMalformed, err))
		}
		return code, msg, false
	}
	code, msg = r.handleRequest(s, frame)
	return code, msg, true
}

// handleRequest checks and stores one request frame.
func (r *Relay) handleRequest(s network.Stream, frame []byte) (status.Code, string) {
	from := s.Conn().RemotePeer()
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
