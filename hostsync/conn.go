package hostsync

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/meshnode/meshnode/internal/wire"
)

// stream is what a session needs of a libp2p stream (net.Pipe in unit
// tests).
type stream interface {
	io.ReadWriter
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// conn frames a stream and counts the bytes of every frame, varint
// length prefix included, each way.
type conn struct {
	s        stream
	in       recordingReader
	r        *wire.Reader
	w        *wire.Writer
	deadline time.Time // end of the session
	idle     time.Duration

	sent, recv int64
}

func newConn(s stream, deadline time.Time, idle time.Duration) *conn {
	c := &conn{s: s, w: wire.NewWriter(s), deadline: deadline, idle: idle}
	c.r = wire.NewReader(&c.in)
	c.in.r = s
	return c
}

// recordingReader remembers the last error of the stream, so a failed
// read is classified by its cause: wire reports a reset or a deadline in
// the middle of a length prefix as a malformed frame, which is not the
// peer's fault.
type recordingReader struct {
	r   io.Reader
	err error
}

func (r *recordingReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// wait returns the deadline of the next read or write: IdleTimeout from
// now, but never after the session's end.
func (c *conn) wait() time.Time {
	t := time.Now().Add(c.idle)
	if t.After(c.deadline) {
		return c.deadline
	}
	return t
}

// read reads one frame of at most max bytes and returns its type.
func (c *conn) read(max int) (frameType, []byte, error) {
	_ = c.s.SetReadDeadline(c.wait())
	b, err := c.r.ReadFrame(max)
	if err != nil {
		switch {
		case c.in.err != nil:
			return 0, nil, ioErr("reading from", c.in.err)
		case errors.Is(err, wire.ErrFrameTooLarge), errors.Is(err, wire.ErrMalformed):
			return 0, nil, fmt.Errorf("%w: %v", ErrProtocol, err)
		case errors.Is(err, io.EOF):
			return 0, nil, fmt.Errorf("hostsync: peer closed the stream early: %w", io.ErrUnexpectedEOF)
		}
		return 0, nil, ioErr("reading from", err)
	}
	c.recv += int64(len(b) + uvarintLen(len(b)))
	if len(b) == 0 {
		return 0, nil, fmt.Errorf("%w: empty frame", ErrProtocol)
	}
	return frameType(b[0]), b, nil
}

// write buffers one frame; flush sends what is buffered.
func (c *conn) write(b []byte) error {
	c.sent += int64(len(b) + uvarintLen(len(b)))
	// A full buffer is written through at once: the deadline applies.
	_ = c.s.SetWriteDeadline(c.wait())
	if err := c.w.WriteFrame(b); err != nil {
		return ioErr("writing to", err)
	}
	return nil
}

func (c *conn) flush() error {
	_ = c.s.SetWriteDeadline(c.wait())
	if err := c.w.Flush(); err != nil {
		return ioErr("writing to", err)
	}
	return nil
}

func uvarintLen(n int) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutUvarint(buf[:], uint64(n))
}

// ioErr wraps a stream error, marking deadlines as ErrTimeout.
func ioErr(what string, err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: %s peer: %w", ErrTimeout, what, err)
	}
	return fmt.Errorf("hostsync: %s peer: %w", what, err)
}
