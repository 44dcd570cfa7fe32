package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	msgs := [][]byte{{}, []byte("a"), bytes.Repeat([]byte{7}, 70000)}
	for _, m := range msgs {
		if err := w.WriteFrame(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r := NewReader(&buf)
	for _, m := range msgs {
		got, err := r.ReadFrame(1 << 20)
		if err != nil || !bytes.Equal(got, m) {
			t.Fatalf("frame mismatch: %v", err)
		}
	}
	if _, err := r.ReadFrame(10); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
}

// Next returns the same frames as ReadFrame: lent from the buffer when
// they fit (until the next call), copied when they do not.
func TestNext(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	msgs := [][]byte{{}, []byte("a"), bytes.Repeat([]byte{7}, 100), bytes.Repeat([]byte{8}, 64), bytes.Repeat([]byte{9}, 5000)}
	for _, m := range msgs {
		if err := w.WriteFrame(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	// A 128-byte buffer over a reader that returns a few bytes at a time:
	// frames straddle refills, and the last one does not fit at all.
	r := NewReaderSize(iotestHalf{&buf}, 128)
	for i, m := range msgs {
		got, err := r.Next(1 << 20)
		if err != nil || !bytes.Equal(got, m) {
			t.Fatalf("frame %d: %d bytes, %v", i, len(got), err)
		}
	}
	if _, err := r.Next(10); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
}

// iotestHalf reads at most 7 bytes per call.
type iotestHalf struct{ r io.Reader }

func (h iotestHalf) Read(p []byte) (int, error) { return h.r.Read(p[:min(len(p), 7)]) }

func TestLimits(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		max  int
		want error
	}{
		{"over limit", []byte{0x80, 0x01}, 100, ErrFrameTooLarge},
		{"huge varint", bytes.Repeat([]byte{0xff}, 11), 100, ErrMalformed},
		{"truncated body", []byte{5, 1, 2}, 100, io.ErrUnexpectedEOF},
		{"truncated varint", []byte{0x80}, 100, io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(tc.in)).ReadFrame(tc.max)
			if !errors.Is(err, tc.want) {
				t.Fatalf("ReadFrame: got %v, want %v", err, tc.want)
			}
			_, err = NewReader(bytes.NewReader(tc.in)).Next(tc.max)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Next: got %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{3, 'a', 'b', 'c'})
	f.Add([]byte{0x80, 0x80, 0x04})
	f.Add([]byte{2, 'a', 'b', 0x90, 0x01})
	f.Fuzz(func(t *testing.T, in []byte) {
		// ReadFrame and Next (with a buffer small enough that some frames
		// do not fit) read the same frames and fail at the same point.
		r := NewReader(bytes.NewReader(in))
		n := NewReaderSize(bytes.NewReader(in), 16)
		for i := 0; i < 8; i++ {
			b, err := r.ReadFrame(1024)
			c, nerr := n.Next(1024)
			if (err == nil) != (nerr == nil) || !bytes.Equal(b, c) {
				t.Fatalf("frame %d: ReadFrame %d bytes, %v; Next %d bytes, %v", i, len(b), err, len(c), nerr)
			}
			if err != nil {
				return
			}
			if len(b) > 1024 {
				t.Fatal("frame over limit accepted")
			}
		}
	})
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

// A stream error while reading the length prefix is reported as itself,
// not as a malformed frame (a deadline is not the peer's garbage).
func TestStreamErrorsPassThrough(t *testing.T) {
	boom := errors.New("deadline exceeded")
	_, err := NewReader(failingReader{boom}).ReadFrame(10)
	if !errors.Is(err, boom) || errors.Is(err, ErrMalformed) {
		t.Fatalf("got %v, want the stream's own error", err)
	}
	_, err = NewReader(io.MultiReader(bytes.NewReader([]byte{0x80}), failingReader{boom})).ReadFrame(10)
	if !errors.Is(err, boom) {
		t.Fatalf("mid-prefix: got %v", err)
	}
}
