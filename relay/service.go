package relay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/admission"
	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	"github.com/meshnode/meshnode/internal/wire"
)

// handleStream serves direct relay requests: one per stream on
// ProtocolID, any number pipelined on SessionProtocolID (serveSession).
//
// Admission (package admission, when configured): the stream is pending
// in the relay gate from accept until its first request has arrived,
// which must happen within RequestTimeout (a pending stream may also be
// reset sooner to make room for a newer one); the request's mailbox then
// makes it an active stream, privileged or general, or it is refused
// Busy.
func (r *Relay) handleStream(s network.Stream) {
	t := r.adm.Relay().Open(s)
	defer t.Close()
	_ = s.SetDeadline(time.Now().Add(r.params.RequestTimeout))
	if err := s.Scope().SetService(ServiceName); err != nil {
		r.log.Debug("resource manager refused relay stream", "err", err)
		_ = s.Reset()
		return
	}
	if s.Protocol() == SessionProtocolID {
		r.serveSession(s, t)
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
	if _, err := br.Peek(1); err != nil {
		r.idle(s, err)
		return
	}
	extra := max(0, announced(br, r.params.MaxRequestSize())-smallFrameSize)
	if extra > 0 {
		if err := s.Scope().ReserveMemory(extra, network.ReservationPriorityAlways); err != nil {
			r.log.Debug("resource manager refused relay memory", "err", err)
			_ = s.Reset()
			return
		}
	}
	var a answer
	_, env, ok := r.readRequest(&a, from, t, br)
	if a.evicted {
		_ = s.Reset()
		if extra > 0 {
			s.Scope().ReleaseMemory(extra)
		}
		return
	}
	_ = s.SetDeadline(time.Now().Add(r.params.StreamTimeout))
	if ok {
		r.deliver(&a, from, t, env)
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
	if err := writeFrame(s, (&response{code: a.code, msg: a.msg, bits: a.bits}).marshal()); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
	r.forward(a.publish)
}

// idle ends a stream whose first request did not arrive: reset, and
// counted as an idle timeout when that is what it was.
func (r *Relay) idle(s network.Stream, err error) {
	if isTimeout(err) {
		r.adm.Refuse(admission.ReasonIdleTimeout)
	}
	_ = s.Reset()
}

// isTimeout reports whether err is a stream deadline passing.
func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// answer is the outcome of one request: the code and message to send
// back, whether the request frame was read whole (the stream is still at a
// frame boundary), and the envelope to gossip once the answer is on its
// way (nil unless newly stored).
type answer struct {
	id      uint32 // the request ID (sessions only)
	code    status.Code
	msg     string
	bits    uint8 // the proof of work a ProofRequired answer asks for
	intact  bool
	evicted bool // the stream was reset by admission while its request was read
	proof   *admission.Proof
	publish *envelope.Envelope
}

func (a *answer) set(code status.Code, msg string) { a.code, a.msg = code, msg }

// fail sets the answer for err (status.FromError), with the difficulty
// of a proof of work asked for.
func (a *answer) fail(err error) {
	a.code, a.msg = status.FromError(err)
	a.bits, _ = status.ProofBitsOf(err)
}

// readRequest reads one request from br and decodes its envelope (see
// decodeRequest). It returns the envelope and its mailbox, or fills a
// with the refusal: a request over the peer's rate is skipped without
// being read into memory (the stream stays at a frame boundary), and a
// frame that cannot be read leaves the stream broken (a.intact false).
func (r *Relay) readRequest(a *answer, from peer.ID, t *admission.Ticket, br *bufio.Reader) (envelope.MailboxID, *envelope.Envelope, bool) {
	if !r.allow(from, t.Key()) {
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
	return r.decodeRequest(a, from, t, frame)
}

// decodeRequest parses a request frame, checks the hosting policy,
// activates the stream's admission ticket for the request's mailbox, and
// decodes the envelope (a copy: frame may be reused), which must belong
// to the named mailbox; the signature is left to deliver. On failure it
// fills a with the refusal.
func (r *Relay) decodeRequest(a *answer, from peer.ID, t *admission.Ticket, frame []byte) (envelope.MailboxID, *envelope.Envelope, bool) {
	q, err := parseRequest(frame)
	if err != nil {
		a.set(status.FromError(err))
		return envelope.MailboxID{}, nil, false
	}
	if r.policy != nil && !r.policy.Serves(q.mailbox, from) {
		a.set(status.NotServed, "this host does not serve that mailbox")
		return q.mailbox, nil, false
	}
	if err := t.Activate(q.mailbox); err != nil {
		a.fail(err)
		a.evicted = errors.Is(err, admission.ErrEvicted)
		return q.mailbox, nil, false
	}
	a.proof = q.proof
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
func (r *Relay) deliver(a *answer, from peer.ID, t *admission.Ticket, env *envelope.Envelope) {
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
	dup, err := r.handOver(ctx, env, admission.Origin{Peer: from, Key: t.Key(), Proof: a.proof})
	switch {
	case err != nil:
		a.fail(err)
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
