package relay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	"github.com/meshnode/meshnode/internal/wire"
)

// handleStream serves direct relay requests: one per stream on
// ProtocolID, any number pipelined on SessionProtocolID (serveSession).
func (r *Relay) handleStream(s network.Stream) {
	_ = s.SetDeadline(time.Now().Add(r.params.StreamTimeout))
	if err := s.Scope().SetService(ServiceName); err != nil {
		r.log.Debug("resource manager refused relay stream", "err", err)
		_ = s.Reset()
		return
	}
	if s.Protocol() == SessionProtocolID {
		r.serveSession(s)
		return
	}
	// Memory is reserved before it is allocated: the read buffer and one
	// small request frame (smallFrameSize), then, once the request's length
	// prefix has arrived, the rest of the frame it announces (at most
	// MaxRequestSize). A small envelope thus holds only what it needs, and
	// a sender can keep as many of them in flight as the service's per-peer
	// stream limit allows (not just as many maximum-size frames as its
	// memory limit holds).
	const base = readBufferSize + smallFrameSize
	if err := s.Scope().ReserveMemory(base, network.ReservationPriorityAlways); err != nil {
		r.log.Debug("resource manager refused relay memory", "err", err)
		_ = s.Reset()
		return
	}
	defer s.Scope().ReleaseMemory(base)
	br := bufio.NewReaderSize(s, readBufferSize)
	from := s.Conn().RemotePeer()
	extra := max(0, announced(br, r.params.MaxRequestSize())-smallFrameSize)
	if extra > 0 {
		if err := s.Scope().ReserveMemory(extra, network.ReservationPriorityAlways); err != nil {
			r.log.Debug("resource manager refused relay memory", "err", err)
			_ = s.Reset()
			return
		}
	}
	var a answer
	if _, env, ok := r.readRequest(&a, from, br); ok {
		r.deliver(&a, from, env)
	}
	// The frame's reservation covers the request, which is handled. Release
	// it before answering: a sender that sends its next request as soon as
	// it reads the answer (a writer keeping the per-peer maximum in flight)
	// must find the memory already free, or the resource manager refuses
	// that stream and the sender sees it reset.
	if extra > 0 {
		s.Scope().ReleaseMemory(extra)
	}
	r.logRefusal(from, &a)
	if err := writeFrame(s, (&response{code: a.code, msg: a.msg}).marshal()); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
	r.forward(a.publish)
}

// answer is the outcome of one request: the code and message to send
// back, whether the request frame was read whole (the stream is still at a
// frame boundary), and the envelope to gossip once the answer is on its
// way (nil unless newly stored).
type answer struct {
	id      uint32 // the request ID (sessions only)
	code    status.Code
	msg     string
	intact  bool
	publish *envelope.Envelope
}

func (a *answer) set(code status.Code, msg string) { a.code, a.msg = code, msg }

// readRequest reads one request from br and decodes its envelope (see
// decodeRequest). It returns the envelope and its mailbox, or fills a
// with the refusal: a request over the peer's rate is skipped without
// being read into memory (the stream stays at a frame boundary), and a
// frame that cannot be read leaves the stream broken (a.intact false).
func (r *Relay) readRequest(a *answer, from peer.ID, br *bufio.Reader) (envelope.MailboxID, *envelope.Envelope, bool) {
	if !r.limiter.Allow(from, 1) {
		a.set(status.RateLimited, "too many envelopes; slow down")
		a.intact = skipFrame(br, r.params.MaxRequestSize())
		return envelope.MailboxID{}, nil, false
	}
	// The frame is lent from br's buffer when it fits: decodeRequest
	// copies the envelope out before the next read.
	frame, err := wire.NewReader(br).Next(r.params.MaxRequestSize())
	if err != nil {
		if errors.Is(err, wire.ErrFrameTooLarge) {
			a.set(status.FromError(fmt.Errorf("%w: %v", envelope.ErrTooLarge, err)))
		} else {
			a.set(status.FromError(fmt.Errorf("%w: %v", envelope.ErrMalformed, err)))
		}
		return envelope.MailboxID{}, nil, false
	}
	a.intact = true
	return r.decodeRequest(a, from, frame)
}

// decodeRequest parses a request frame, checks the hosting policy and
// decodes the envelope (a copy: frame may be reused), which must belong to
// the named mailbox; the signature is left to deliver. On failure it
// fills a with the refusal.
func (r *Relay) decodeRequest(a *answer, from peer.ID, frame []byte) (envelope.MailboxID, *envelope.Envelope, bool) {
	q, err := parseRequest(frame)
	if err != nil {
		a.set(status.FromError(err))
		return envelope.MailboxID{}, nil, false
	}
	if r.policy != nil && !r.policy.Serves(q.mailbox, from) {
		a.set(status.NotServed, "this host does not serve that mailbox")
		return q.mailbox, nil, false
	}
	env, err := envelope.Decode(q.envelope, r.params.MaxEnvelopeSize)
	if err == nil && env.Mailbox() != q.mailbox {
		err = fmt.Errorf("%w: envelope is for %s, not %s", envelope.ErrWrongMailbox, env.Mailbox().Short(), q.mailbox.Short())
	}
	if err != nil {
		r.penalise(from, err)
		a.set(status.FromError(err))
		return q.mailbox, nil, false
	}
	return q.mailbox, env, true
}

// announced returns the length of the frame whose prefix starts br,
// without consuming it (ReadFrame reads the prefix again). It returns 0
// when the prefix does not decode or exceeds max: ReadFrame then fails
// without allocating the body.
func announced(br *bufio.Reader, max int) int {
	n, _ := peekLength(br, max)
	return n
}

// peekLength decodes the length prefix at the start of br without
// consuming it: the body length and the prefix length, or 0, 0 when the
// prefix does not decode or the body exceeds max.
func peekLength(br *bufio.Reader, max int) (n, k int) {
	v, k, err := peekUvarint(br)
	if err != nil || v > uint64(max) {
		return 0, 0
	}
	return int(v), k
}

// skipFrame discards the frame at the start of br without holding it in
// memory, and reports whether it did (false: a bad prefix, a frame over
// max or a stream that ended within it).
func skipFrame(br *bufio.Reader, max int) bool {
	n, k := peekLength(br, max)
	if k == 0 {
		return false
	}
	_, err := br.Discard(k + n)
	return err == nil
}

// deliver verifies env's write signature (decodeRequest checked the
// rest, as envelope.Open would) and stores it, and fills in a. The caller
// gossips a.publish after answering.
func (r *Relay) deliver(a *answer, from peer.ID, env *envelope.Envelope) {
	select {
	case r.verifying <- struct{}{}:
	case <-r.ctx.Done():
		a.set(status.Unavailable, "host is closing")
		return
	}
	err := env.Verify()
	<-r.verifying
	if err != nil {
		r.penalise(from, err)
		a.set(status.FromError(err))
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.params.StreamTimeout)
	defer cancel()
	dup, err := r.handler.Deliver(ctx, env, from)
	switch {
	case err != nil:
		a.set(status.FromError(err))
	case dup:
		a.set(status.Duplicate, "")
	default:
		a.set(status.OK, "")
		a.publish = env
	}
}

// forward spreads a newly stored envelope to the mailbox's online
// readers, after its sender has been answered: the sender waits only for
// the durable store. A failure here is not the sender's problem: the
// envelope is stored and fetchable.
//
// With no other peer on the topic there is no one to forward to (this
// node's Handler has the envelope already), so nothing is published: a
// host that members reach only by the direct protocol spends nothing on
// gossip. A peer that joins the topic later catches up by fetch, as it
// must anyway for what was sent before it joined.
func (r *Relay) forward(env *envelope.Envelope) {
	if env == nil || len(r.TopicPeers(env.Mailbox())) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.params.StreamTimeout)
	defer cancel()
	if err := r.publish(ctx, env, true); err != nil {
		r.log.Debug("could not gossip relayed envelope", "mailbox", env.Mailbox().Short(), "err", err)
	}
}

func (r *Relay) logRefusal(from peer.ID, a *answer) {
	if a.code != status.OK && a.code != status.Duplicate {
		r.log.Debug("relay request refused", "peer", from, "code", a.code, "msg", a.msg)
	}
}
