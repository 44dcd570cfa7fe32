package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// Stream reads a newline-delimited JSON stream of T. It is not safe for
// concurrent use, except Close.
type Stream[T any] struct {
	body      io.ReadCloser
	r         *bufio.Reader
	closeOnce sync.Once
	err       error // sticky: set once the stream ended
}

// OpenStream starts a streaming GET of path. Typed methods (Arrivals) are
// built on it; it is exported for endpoints newer than this client.
func OpenStream[T any](ctx context.Context, c *Client, path string) (*Stream[T], error) {
	resp, err := c.send(ctx, http.MethodGet, path, nil, ContentTypeNDJSON)
	if err != nil {
		return nil, err
	}
	if err := checkContentType(resp, ContentTypeNDJSON); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return newStream[T](resp.Body), nil
}

func newStream[T any](body io.ReadCloser) *Stream[T] {
	return &Stream[T]{body: body, r: bufio.NewReaderSize(body, 4096)}
}

// Next returns the next item. At the end of the stream it returns io.EOF;
// an error line sent by the daemon comes back as *Error. After an error,
// Next keeps returning it.
func (s *Stream[T]) Next() (T, error) {
	var zero T
	for s.err == nil {
		line, err := s.readLine()
		if err != nil {
			s.err = err
			break
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue // heartbeat
		}
		var probe struct {
			Error *string `json:"error"`
			Code  string  `json:"code"`
		}
		if err := json.Unmarshal(line, &probe); err != nil {
			s.err = fmt.Errorf("%w: stream line: %v", ErrProtocol, err)
			break
		}
		if probe.Error != nil {
			s.err = &Error{Message: *probe.Error, Code: probe.Code}
			break
		}
		var v T
		if err := json.Unmarshal(line, &v); err != nil {
			s.err = fmt.Errorf("%w: stream item: %v", ErrProtocol, err)
			break
		}
		return v, nil
	}
	s.Close()
	return zero, s.err
}

// readLine reads one line of at most MaxStreamLine bytes (without the
// newline). A final line without a newline counts; an empty read at the
// end is io.EOF.
func (s *Stream[T]) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := s.r.ReadSlice('\n')
		if len(line)+len(chunk) > MaxStreamLine+1 {
			return nil, fmt.Errorf("%w: stream line longer than %d bytes", ErrProtocol, MaxStreamLine)
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(line) == 0 {
				return nil, io.EOF
			}
			return line, nil
		default:
			return nil, fmt.Errorf("api: reading stream: %w", err)
		}
	}
}

// Close ends the stream.
func (s *Stream[T]) Close() error {
	var err error
	s.closeOnce.Do(func() { err = s.body.Close() })
	return err
}

// StreamWriter writes a newline-delimited JSON stream (the server side of
// Stream). Every write is flushed at once.
type StreamWriter struct {
	w     io.Writer
	flush func() error
}

// NewStreamWriter writes to w and calls flush after every line (nil: no
// flushing).
func NewStreamWriter(w io.Writer, flush func() error) *StreamWriter {
	if flush == nil {
		flush = func() error { return nil }
	}
	return &StreamWriter{w: w, flush: flush}
}

// Send writes one item. v must not encode to an object with a top-level
// "error" field (that is how a stream reports its failure).
func (sw *StreamWriter) Send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("api: encoding stream item: %w", err)
	}
	if len(b) > MaxStreamLine {
		return fmt.Errorf("api: stream item of %d bytes over the %d-byte line limit", len(b), MaxStreamLine)
	}
	return sw.write(append(b, '\n'))
}

// Heartbeat writes a blank line, which readers skip.
func (sw *StreamWriter) Heartbeat() error { return sw.write([]byte{'\n'}) }

// Fail writes the error line that ends a stream.
func (sw *StreamWriter) Fail(e *Error) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return sw.write(append(b, '\n'))
}

func (sw *StreamWriter) write(b []byte) error {
	if _, err := sw.w.Write(b); err != nil {
		return err
	}
	return sw.flush()
}
