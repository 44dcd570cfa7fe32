package relay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/wire"
)

// Session relays envelopes to one remote node over one stream of the
// session protocol (SessionProtocolID), pipelined: a writer that relays
// many envelopes to the same host saves opening, negotiating and closing a
// stream per envelope, and can keep many requests in flight on that one
// stream. Each Send returns once the host reports the envelope durably
// stored, exactly like Send.
//
// Send is safe for concurrent use: concurrent calls share the stream,
// their requests go out in as few writes as possible (whatever queued up
// while the previous write was in progress goes in the next one), and a
// reader goroutine hands each answer to its caller by request ID, in the
// order the host finishes them.
//
// The stream is opened on the first Send and again after it failed (a
// reset, a malformed answer, a Send that timed out, the host ending an
// idle session). A Send whose request was on a stream that ended before
// its answer came is retried once on a new stream, unless the stream was
// opened for it: relaying is idempotent (a duplicate is reported as
// stored), so a retry never stores anything twice.
type Session struct {
	h       host.Host
	p       peer.ID
	timeout time.Duration

	mu     sync.Mutex // guards conn and closed; held while opening a stream
	conn   *sessionConn
	closed bool
}

// sessionConn is one stream of a session.
type sessionConn struct {
	st network.Stream

	mu      sync.Mutex       // guards the fields below
	pending map[uint32]*call // requests written or being written, awaiting answers
	nextID  uint32
	out     []byte // request frames waiting to be written
	spare   []byte // the buffer of the write in progress, reused
	err     error  // the stream failed; set once
	closing bool   // Session.Close: no more requests

	// kick wakes writeLoop: there is something to write, the session is
	// closing, or the stream failed.
	kick chan struct{}
}

// call is one request awaiting its answer.
type call struct {
	done chan callResult // buffered: the reader never blocks on it
}

type callResult struct {
	resp *response
	err  error
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
// match the remote's reason with errors.Is, as for Send; like Send, it
// computes a proof of work a host asks for (of at most
// DefaultMaxProofBits) and sends again with it.
func (s *Session) Send(ctx context.Context, m envelope.MailboxID, env *envelope.Envelope) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	q := &request{mailbox: m, envelope: env.Bytes()}
	for attempt := 0; ; attempt++ {
		c, fresh, err := s.stream(ctx)
		if err != nil {
			return err
		}
		resp, err := c.roundTrip(ctx, q)
		if err != nil {
			if ctx.Err() != nil {
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					// No answer in time: the stream is stuck or the host
					// is; every other call on it would wait as long.
					c.fail(fmt.Errorf("relay: no answer from %s within %v", s.p, s.timeout))
				}
				return fmt.Errorf("relay: send to %s: %w", s.p, ctx.Err())
			}
			var ended *streamEnded
			if !fresh && attempt == 0 && errors.As(err, &ended) {
				continue
			}
			return err
		}
		if q.proof == nil {
			proof, err := solveIfAsked(ctx, resp, s.p, m, DefaultMaxProofBits)
			if err != nil {
				return err
			}
			if proof != nil {
				q.proof = proof
				attempt = -1 // a new request: it may be retried once too
				continue
			}
		}
		if rerr := resp.err(); rerr != nil {
			return fmt.Errorf("relay: %s refused envelope: %w", s.p, rerr)
		}
		return nil
	}
}

// stream returns the session's stream, opening one if there is none or it
// failed; fresh reports that it was opened by this call.
func (s *Session) stream(ctx context.Context) (c *sessionConn, fresh bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false, ErrSessionClosed
	}
	if s.conn != nil && !s.conn.failed() {
		return s.conn, false, nil
	}
	st, err := s.h.NewStream(ctx, s.p, SessionProtocolID)
	if err != nil {
		return nil, false, fmt.Errorf("relay: open session to %s: %w", s.p, err)
	}
	if err := st.Scope().SetService(ServiceName); err != nil {
		_ = st.Reset()
		return nil, false, fmt.Errorf("relay: %w", err)
	}
	s.conn = &sessionConn{st: st, pending: map[uint32]*call{}, kick: make(chan struct{}, 1)}
	go s.conn.readLoop(s.p)
	go s.conn.writeLoop()
	return s.conn, true, nil
}

// Close ends the session: the host sees the end of the stream after the
// last request and answers every request before it. It is idempotent.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.conn == nil {
		return nil
	}
	c := s.conn
	s.conn = nil
	return c.close(s.timeout)
}

// streamEnded is the error of a request whose stream ended before its
// answer came: the host may or may not have stored the envelope.
type streamEnded struct{ err error }

func (e *streamEnded) Error() string {
	return fmt.Sprintf("relay: session ended before the answer: %v", e.err)
}
func (e *streamEnded) Unwrap() error { return e.err }

// roundTrip queues q under a fresh request ID for writeLoop and waits for
// its answer or ctx.
func (c *sessionConn) roundTrip(ctx context.Context, q *request) (*response, error) {
	cl := &call{done: make(chan callResult, 1)}
	c.mu.Lock()
	if c.err != nil || c.closing {
		err := c.err
		c.mu.Unlock()
		if err == nil {
			err = ErrSessionClosed
		}
		return nil, &streamEnded{err}
	}
	// IDs only need to be unique among the requests awaiting answers; a
	// session never has anywhere near 2^32 of them.
	id := c.nextID
	c.nextID++
	c.pending[id] = cl
	c.out = appendSessionRequest(c.out, id, q)
	c.mu.Unlock()
	c.kickWriter()
	select {
	case res := <-cl.done:
		return res.resp, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *sessionConn) kickWriter() {
	select {
	case c.kick <- struct{}{}:
	default: // already kicked; it will see what was queued
	}
}

// writeLoop writes the queued request frames, everything queued by the
// time it runs in one write: the requests that the answers of one group
// commit let a writer's callers send go out together, in one muxer frame
// and one system call, instead of one each. When the session closes it
// ends the stream for writing after the last request.
func (c *sessionConn) writeLoop() {
	for range c.kick {
		c.mu.Lock()
		for len(c.out) > 0 && c.err == nil {
			buf := c.out
			c.out = c.spare[:0]
			c.mu.Unlock()
			_, err := c.st.Write(buf)
			c.mu.Lock()
			c.spare = buf[:0]
			if err != nil {
				c.failLocked(err)
			}
		}
		failed, closing := c.err != nil, c.closing
		c.mu.Unlock()
		switch {
		case failed:
			return
		case closing:
			_ = c.st.CloseWrite()
			return
		}
	}
}

// readLoop hands each answer to the call with its request ID, until the
// stream ends.
func (c *sessionConn) readLoop(p peer.ID) {
	r := wire.NewReader(bufio.NewReaderSize(c.st, 512))
	for {
		frame, err := r.Next(sessionIDSize + maxResponseSize)
		if err != nil {
			c.fail(err)
			return
		}
		id, resp, err := parseSessionResponse(frame)
		if err != nil {
			c.fail(err)
			return
		}
		c.mu.Lock()
		cl, ok := c.pending[id]
		if !ok {
			c.failLocked(fmt.Errorf("%w: %s answered request %d, which is not awaiting an answer", ErrBadResponse, p, id))
			c.mu.Unlock()
			return
		}
		delete(c.pending, id)
		last := c.closing && len(c.pending) == 0
		c.mu.Unlock()
		cl.done <- callResult{resp: resp}
		if last {
			_ = c.st.Close()
			return
		}
	}
}

// fail ends the stream with err: every call awaiting an answer gets it.
func (c *sessionConn) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failLocked(err)
}

func (c *sessionConn) failLocked(err error) {
	if c.err != nil {
		return
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF // the host ended the session with requests unanswered
	}
	c.err = err
	for id, cl := range c.pending {
		cl.done <- callResult{err: &streamEnded{err}}
		delete(c.pending, id)
	}
	_ = c.st.Reset()
	c.kickWriter() // to end writeLoop
}

func (c *sessionConn) failed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err != nil || c.closing
}

// close ends the session: writeLoop ends the stream for writing after the
// last queued request, and the reader closes it once every request has
// been answered, or it is reset after timeout.
func (c *sessionConn) close(timeout time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil
	}
	c.closing = true
	c.kickWriter()
	if len(c.pending) == 0 {
		c.err = ErrSessionClosed
		return c.st.Close()
	}
	return c.st.SetReadDeadline(time.Now().Add(timeout))
}
