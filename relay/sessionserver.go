package relay

import (
	"bufio"
	"errors"
	"io"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/meshnode/meshnode/internal/status"
)

// serveSession serves the session protocol on s. This goroutine reads
// requests as they arrive and starts one goroutine per request (verify,
// store), at most Params.SessionWindow at once; answerLoop writes the
// answers in request order, every answer that is ready in one write. So a
// writer that pipelines requests has them verified in parallel and stored
// in the same group commit, and one write carries the answers of a whole
// commit back.
//
// Memory is reserved before it is allocated: the read buffer up front;
// one small frame (smallFrameSize) per request handled at once, reserved
// the first time the session has that many in flight and kept for its
// life (so a steady session costs the resource manager nothing per
// request); and for a larger frame, the rest of what its length prefix
// announces, from before it is read until it is handled. If the resource
// manager refuses a small-frame slot, the session goes on with the slots
// it has; if it refuses a large frame, the frame is skipped unread and
// answered RateLimited.
func (r *Relay) serveSession(s network.Stream) {
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
	go func() { finished <- r.answerLoop(s, answers) }()

	var (
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
	clean := true // the sender ended the session, or it ended at a frame boundary
	for {
		// Wait for the next request or the sender's end of the session; an
		// idle session ends after between half and all of StreamTimeout
		// (the deadline is moved only once half of it has passed, which
		// saves a timer reset per request).
		if now := time.Now(); readDL.Sub(now) < r.params.StreamTimeout/2 {
			readDL = now.Add(r.params.StreamTimeout)
			_ = s.SetReadDeadline(readDL)
		}
		if _, err := br.Peek(1); err != nil {
			clean = errors.Is(err, io.EOF)
			break
		}
		waitBelow(window)
		if n := int(inflight.Load()) + 1; n > slots {
			if err := s.Scope().ReserveMemory(smallFrameSize, network.ReservationPriorityAlways); err == nil {
				slots++
			} else if slots == 0 {
				r.log.Debug("resource manager refused relay memory", "err", err)
				clean = false
				break
			} else {
				window = slots
				waitBelow(window)
			}
		}
		a := &answer{done: make(chan struct{})}
		skipped := false
		extra := max(0, announced(br, r.params.MaxRequestSize())-smallFrameSize)
		if extra > 0 {
			// A large frame: wait for the requests in flight, which may
			// hold what it needs, if the first try fails.
			err := s.Scope().ReserveMemory(extra, network.ReservationPriorityAlways)
			if err != nil {
				waitBelow(1)
				err = s.Scope().ReserveMemory(extra, network.ReservationPriorityAlways)
			}
			if err != nil {
				r.log.Debug("resource manager refused relay memory", "err", err)
				a.set(status.RateLimited, "host is busy; retry later")
				a.intact = skipFrame(br, r.params.MaxRequestSize())
				extra, skipped = 0, true
			}
		}
		var frame []byte
		ok := false
		if !skipped {
			frame, ok = r.readRequest(a, from, br)
		}
		answers <- a // never blocks for long: at most window are unanswered
		if !ok {
			if extra > 0 {
				s.Scope().ReleaseMemory(extra)
			}
			close(a.done)
		} else {
			inflight.Add(1)
			go func() {
				r.handleRequest(a, from, frame)
				if extra > 0 {
					s.Scope().ReleaseMemory(extra)
				}
				close(a.done)
				inflight.Add(-1)
				// Wake the reader if it waits. A signal dropped because
				// the channel is full is not lost: the reader finds one
				// there and counts again.
				select {
				case released <- struct{}{}:
				default:
				}
				r.forward(a.publish)
			}()
		}
		if !a.intact {
			// The stream is no longer at a frame boundary: answer what was
			// read, then end the session.
			break
		}
	}
	close(answers)
	wrote := <-finished
	if clean && wrote {
		_ = s.Close()
	} else {
		_ = s.Reset()
	}
}

// answerLoop writes the answers of a session in request order until
// answers is closed, and reports whether every write succeeded. Each
// write carries every answer that is final by then. After a failed write
// it resets the stream and drains the rest, so neither the reader nor the
// request goroutines block.
func (r *Relay) answerLoop(s network.Stream, answers <-chan *answer) bool {
	var (
		buf     []byte
		ok      = true
		writeDL time.Time
	)
	flush := func() {
		if len(buf) == 0 || !ok {
			buf = buf[:0]
			return
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
	for {
		var a *answer
		var more bool
		if len(buf) > 0 {
			select {
			case a, more = <-answers:
			default:
				flush()
				a, more = <-answers
			}
		} else {
			a, more = <-answers
		}
		if !more {
			flush()
			return ok
		}
		select {
		case <-a.done:
		default:
			flush()
			<-a.done
		}
		r.logRefusal(s.Conn().RemotePeer(), a)
		buf = (&response{code: a.code, msg: a.msg}).appendFrame(buf)
	}
}
