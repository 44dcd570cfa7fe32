// Package wire is the bounded framing every meshnode stream protocol uses:
// each message is an unsigned varint length followed by that many bytes.
// Every read names the largest frame it will accept, so a peer can never
// make us allocate more than that (the go-libp2p identify discipline; an
// unbounded reader is never used).
//
//	frame = uvarint(len(body)) ‖ body
package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrFrameTooLarge: the peer announced a frame above the reader's limit.
var ErrFrameTooLarge = errors.New("wire: frame too large")

// ErrMalformed: the varint length prefix is invalid.
var ErrMalformed = errors.New("wire: malformed frame")

// Reader reads length-delimited frames from a buffered stream.
type Reader struct {
	br *bufio.Reader
}

// NewReader wraps r. ReadFrame reads frames into fresh slices, never
// aliased; Next lends them from the buffer.
func NewReader(r io.Reader) *Reader {
	if br, ok := r.(*bufio.Reader); ok {
		return &Reader{br: br}
	}
	return NewReaderSize(r, 32<<10)
}

// NewReaderSize wraps r with a read buffer of size bytes (at least 16).
func NewReaderSize(r io.Reader, size int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, size)}
}

// ReadFrame reads one frame of at most max bytes. io.EOF is returned only
// for a clean end before a frame starts.
func (r *Reader) ReadFrame(max int) ([]byte, error) {
	n, err := r.readLength()
	if err != nil {
		return nil, err
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r.br, b); err != nil {
		return nil, unexpected(err)
	}
	return b, nil
}

// Next reads one frame of at most max bytes like ReadFrame, but without
// copying it when it fits in the reader's buffer: the slice returned
// aliases that buffer and is valid only until the next call on r (copy
// what must outlive it). A frame larger than the buffer is read into a
// fresh slice. It saves an allocation and a copy per frame for a reader
// that decodes (and so copies) each frame at once.
func (r *Reader) Next(max int) ([]byte, error) {
	n, err := r.readLength()
	if err != nil {
		return nil, err
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	if n > uint64(r.br.Size()) {
		b := make([]byte, n)
		if _, err := io.ReadFull(r.br, b); err != nil {
			return nil, unexpected(err)
		}
		return b, nil
	}
	b, err := r.br.Peek(int(n))
	if err != nil {
		return nil, unexpected(err)
	}
	// Discard only moves the read position: the bytes stay in place until
	// the next read refills the buffer.
	_, _ = r.br.Discard(int(n))
	return b, nil
}

// unexpected turns an end of stream within a frame into ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readLength reads the varint prefix. Errors of the stream (deadline,
// reset) are returned as they are, so callers can tell a slow or broken
// peer from one that sends garbage; only an over-long varint is
// ErrMalformed.
func (r *Reader) readLength() (uint64, error) {
	var buf [binary.MaxVarintLen64]byte
	for i := 0; i < len(buf); i++ {
		c, err := r.br.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) && i > 0 {
				return 0, io.ErrUnexpectedEOF
			}
			return 0, err
		}
		buf[i] = c
		if c < 0x80 {
			n, k := binary.Uvarint(buf[:i+1])
			if k <= 0 {
				return 0, fmt.Errorf("%w: varint overflows 64 bits", ErrMalformed)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("%w: varint longer than %d bytes", ErrMalformed, binary.MaxVarintLen64)
}

// Writer writes frames through a buffer; call Flush after the last frame of
// a burst.
type Writer struct {
	bw  *bufio.Writer
	hdr [binary.MaxVarintLen64]byte
}

// NewWriter wraps w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{bw: bufio.NewWriterSize(w, 32<<10)}
}

// WriteFrame buffers one frame.
func (w *Writer) WriteFrame(b []byte) error {
	n := binary.PutUvarint(w.hdr[:], uint64(len(b)))
	if _, err := w.bw.Write(w.hdr[:n]); err != nil {
		return err
	}
	_, err := w.bw.Write(b)
	return err
}

// Flush sends buffered frames.
func (w *Writer) Flush() error { return w.bw.Flush() }

// WriteOne writes a single frame and flushes.
func WriteOne(w io.Writer, b []byte) error {
	fw := NewWriter(w)
	if err := fw.WriteFrame(b); err != nil {
		return err
	}
	return fw.Flush()
}
