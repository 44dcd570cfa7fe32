package relay

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/admission"
	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	"github.com/meshnode/meshnode/internal/wire"
)

// serveSession serves the session protocol on s. This goroutine reads
// requests as they arrive, decodes them and starts one goroutine per
// request (verify, store), at most Params.SessionWindow at once;
// answerLoop writes each answer as soon as it is final, every answer that
// is final by then in one write. So a writer that pipelines requests has
// them verified in parallel and stored in the same group commit, one
// write carries the answers of a whole commit back, and no answer waits
// for a slower request sent before it.
//
// Memory is reserved before it is allocated: the read buffer up front;
// one small frame (smallFrameSize) per request handled at once, reserved
// the first time the session has that many in flight and kept for its
// life (so a steady session costs the resource manager nothing per
// request); and for a larger frame, the rest of what its length prefix
// announces, from before it is read until it is handled. If the resource
// manager refuses a small-frame slot, the session goes on with the slots
// it has; if it refuses a large frame even once the requests in flight
// are done, the frame is skipped unread and answered RateLimited.
func (r *Relay) serveSession(s network.Stream, t *admission.Ticket) {
	if err := s.Scope().ReserveMemory(readBufferSize, network.ReservationPriorityAlways); err != nil {
		r.log.Debug("resource manager refused relay memory", "err", err)
		_ = s.Reset()
		return
	}
	defer s.Scope().ReleaseMemory(readBufferSize)
	from := s.Conn().RemotePeer()
	br := bufio.NewReaderSize(s, readBufferSize)
	window := r.params.SessionWindow
	answers := make(chan *answer, window)
	finished := make(chan bool, 1)
	go func() { finished <- r.answerLoop(s, from, answers) }()

	var (
		handlers sync.WaitGroup
		inflight atomic.Int32                  // requests being handled
		released = make(chan struct{}, window) // a request was handled
		slots    int                           // small frames reserved
		readDL   time.Time                     // the read deadline last set
	)
	defer func() {
		if slots > 0 {
			s.Scope().ReleaseMemory(slots * smallFrameSize)
		}
	}()
	// waitBelow waits until fewer than n requests are being handled.
	waitBelow := func(n int) {
		for int(inflight.Load()) >= n {
			<-released
		}
	}
	// failed: reading failed (a deadline, a reset), so the session ends
	// with a reset; a session the sender ended, or one that broke the
	// protocol, is closed once what was read is answered.
	failed := false
	for first := true; ; first = false {
		// Wait for the next request or the sender's end of the session.
		// The first request must come within RequestTimeout (the deadline
		// handleStream set); after that an idle session ends after between
		// half and all of StreamTimeout (the deadline is moved only once
		// half of it has passed, which saves a timer reset per request).
		if now := time.Now(); !first && readDL.Sub(now) < r.params.StreamTimeout/2 {
			readDL = now.Add(r.params.StreamTimeout)
			_ = s.SetReadDeadline(readDL)
		}
		if _, err := br.Peek(1); err != nil {
			failed = !errors.Is(err, io.EOF)
			if first && isTimeout(err) {
				r.adm.Refuse(admission.ReasonIdleTimeout)
			}
			break
		}
		waitBelow(window)
		if n := int(inflight.Load()) + 1; n > slots {
			if err := s.Scope().ReserveMemory(smallFrameSize, network.ReservationPriorityAlways); err == nil {
				slots++
			} else if slots == 0 {
				r.log.Debug("resource manager refused relay memory", "err", err)
				failed = true
				break
			} else {
				window = slots
				waitBelow(window)
			}
		}
		a, size, ok := r.peekSessionRequest(br, from, t.Key())
		if !ok {
			// No request ID to answer to (a broken or truncated prefix):
			// the stream is no longer at a frame boundary.
			break
		}
		if a.code != status.OK {
			answers <- a // refused unread (too large or over the rate)
			if !a.intact {
				break
			}
			continue
		}
		extra := max(0, size-smallFrameSize)
		if extra > 0 {
			// A large frame: if it does not fit, wait for the requests in
			// flight, which may hold what it needs, and try again.
			err := s.Scope().ReserveMemory(extra, network.ReservationPriorityAlways)
			if err != nil {
				waitBelow(1)
				err = s.Scope().ReserveMemory(extra, network.ReservationPriorityAlways)
			}
			if err != nil {
				r.log.Debug("resource manager refused relay memory", "err", err)
				r.adm.Refuse(admission.ReasonMemoryBusy)
				a.set(status.Busy, "host is busy; retry later")
				a.intact = skipFrame(br, size)
				answers <- a
				if !a.intact {
					break
				}
				continue
			}
		}
		env, ok := r.readSessionRequest(a, from, t, br, size)
		if a.evicted {
			if extra > 0 {
				s.Scope().ReleaseMemory(extra)
			}
			failed = true
			break
		}
		if !ok {
			if extra > 0 {
				s.Scope().ReleaseMemory(extra)
			}
			answers <- a
			if !a.intact {
				break
			}
			continue
		}
		inflight.Add(1)
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			r.deliver(a, from, t, env)
			if extra > 0 {
				s.Scope().ReleaseMemory(extra)
			}
			answers <- a
			inflight.Add(-1)
			// Wake the reader if it waits. A signal dropped because the
			// channel is full is not lost: the reader finds one there and
			// counts again.
			select {
			case released <- struct{}{}:
			default:
			}
			r.forward(a.publish)
		}()
	}
	// Answer everything read, then end the session.
	handlers.Wait()
	close(answers)
	if wrote := <-finished; wrote && !failed {
		_ = s.Close()
	} else {
		_ = s.Reset()
	}
}

// peekSessionRequest looks at the next session request frame without
// consuming it: its request ID and size. A frame over the bound or over
// the peer's rate is consumed and refused (a.code set); one over the
// bound also leaves the stream broken (a.intact false), as its length
// cannot be trusted. ok is false when there is no request ID to answer
// to: a malformed or truncated length prefix, or a frame too short to
// hold an ID.
func (r *Relay) peekSessionRequest(br *bufio.Reader, from peer.ID, key admission.Key) (a *answer, size int, ok bool) {
	n, k, err := peekUvarint(br)
	if err != nil || n < sessionIDSize {
		return nil, 0, false
	}
	hdr, err := br.Peek(k + sessionIDSize)
	if err != nil {
		return nil, 0, false
	}
	a = &answer{id: binary.BigEndian.Uint32(hdr[k:]), intact: true}
	bound := sessionIDSize + r.params.MaxRequestSize()
	switch {
	case n > uint64(bound):
		a.set(status.FromError(fmt.Errorf("%w: %v: %d bytes, limit %d", envelope.ErrTooLarge, wire.ErrFrameTooLarge, n, bound)))
		a.intact = false
	case !r.allow(from, key):
		a.set(status.RateLimited, "too many envelopes; slow down")
		a.intact = skipFrame(br, bound)
	}
	return a, int(n), true
}

// readSessionRequest reads the session request frame of size bytes that
// peekSessionRequest looked at and decodes its envelope (decodeRequest).
func (r *Relay) readSessionRequest(a *answer, from peer.ID, t *admission.Ticket, br *bufio.Reader, size int) (*envelope.Envelope, bool) {
	// The frame is lent from br's buffer when it fits: decodeRequest copies
	// the envelope out before the next read.
	frame, err := wire.NewReader(br).Next(size)
	if err != nil {
		a.set(status.FromError(fmt.Errorf("%w: %v", envelope.ErrMalformed, err)))
		a.intact = false
		return nil, false
	}
	_, env, ok := r.decodeRequest(a, from, t, frame[sessionIDSize:])
	return env, ok
}

// peekUvarint decodes the length prefix at the start of br without
// consuming it: its value and its length. It waits only for the bytes of
// the prefix itself, so a short frame at the end of what a sender has
// written is not held up waiting for bytes that will not come.
func peekUvarint(br *bufio.Reader) (uint64, int, error) {
	for want := 1; want <= binary.MaxVarintLen64; want++ {
		b, err := br.Peek(want)
		if err != nil {
			return 0, 0, err
		}
		if b[want-1] < 0x80 {
			v, k := binary.Uvarint(b)
			if k <= 0 {
				return 0, 0, wire.ErrMalformed
			}
			return v, k, nil
		}
	}
	return 0, 0, wire.ErrMalformed
}

// answerLoop writes the answers of a session as they come until answers
// is closed, and reports whether every write succeeded. Each write carries
// every answer that is final by then. After a failed write it resets the
// stream and drains the rest, so neither the reader nor the request
// goroutines block.
func (r *Relay) answerLoop(s network.Stream, from peer.ID, answers <-chan *answer) bool {
	var (
		buf     []byte
		ok      = true
		writeDL time.Time
	)
	for a := range answers {
		// Take every answer that is final by now.
		buf = r.appendAnswer(buf, from, a)
	drain:
		for {
			select {
			case next, more := <-answers:
				if !more {
					break drain
				}
				buf = r.appendAnswer(buf, from, next)
			default:
				break drain
			}
		}
		if !ok {
			buf = buf[:0]
			continue
		}
		if now := time.Now(); writeDL.Sub(now) < r.params.StreamTimeout/2 {
			writeDL = now.Add(r.params.StreamTimeout)
			_ = s.SetWriteDeadline(writeDL)
		}
		if _, err := s.Write(buf); err != nil {
			ok = false
			_ = s.Reset()
		}
		buf = buf[:0]
	}
	return ok
}

// appendAnswer logs a refusal and appends a's response frame to buf.
func (r *Relay) appendAnswer(buf []byte, from peer.ID, a *answer) []byte {
	r.logRefusal(from, a)
	return appendSessionResponse(buf, a.id, &response{code: a.code, msg: a.msg, bits: a.bits})
}
