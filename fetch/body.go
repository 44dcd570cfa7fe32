package fetch

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	"github.com/meshnode/meshnode/store"
)

// A host sends a page as its header frame and then its body (each
// envelope as a length-prefixed frame) from one buffer, in writes of
// streamWriteSize:
//
//	buf: [ unused | varint(len(header)) ‖ header ][ body ... ]
//	     0                                        headerRoom
//
// The body is framed straight from the store's memory
// (store.VisitPage), with no copy of the page in between, and the buffer
// is reused page after page on a stream. The header, known only once the
// body is complete, goes in the room kept before it.

// headerRoom is the room kept before a body for the largest header frame
// of either protocol.
const headerRoom = binary.MaxVarintLen64 + max(maxHeaderSize, maxPageHeaderSize)

// pageBufferSize is the most a page buffer holds for pages of at most
// count envelopes: the header room and the largest body.
func pageBufferSize(p Params, count int) int {
	return headerRoom + maxBodySize(p, count)
}

// initialBody is the body room a page buffer starts with: enough for the
// few envelopes of a member polling for news, so such requests do not
// allocate a full page. A buffer grows as pages need (append), once per
// stream of 1.1.0, as it is reused for every page.
const initialBody = 16 << 10

// newPageBuffer is a page buffer with room for pages of modest size.
func newPageBuffer(p Params, count int) []byte {
	return make([]byte, headerRoom, min(pageBufferSize(p, count), headerRoom+initialBody))
}

// body is a page framed into a page buffer.
type body struct {
	buf   []byte // the page buffer: header room, then the body
	count int
	next  store.Cursor
	more  bool
}

// size is the length of the body alone.
func (b *body) size() int { return len(b.buf) - headerRoom }

// loadBody frames the page of m after cursor (at most limit envelopes of
// maxBytes in all) into buf, which it reuses from its start, and returns
// it. The cursor is checked against MaxCursorSize. Errors are the
// source's, or status.ErrUnavailable for a cursor too long to send.
func loadBody(src Source, m envelope.MailboxID, cursor store.Cursor, limit, maxBytes int, buf []byte) (body, error) {
	b := body{buf: buf[:headerRoom]}
	next, more, err := src.VisitPage(m, cursor, limit, maxBytes, func(enc []byte) error {
		b.buf = binary.AppendUvarint(b.buf, uint64(len(enc)))
		b.buf = append(b.buf, enc...)
		b.count++
		return nil
	})
	if err != nil {
		return body{}, err
	}
	if len(next) > MaxCursorSize {
		return body{}, fmt.Errorf("%w: cursor of %d bytes", status.ErrUnavailable, len(next))
	}
	b.next, b.more = next, more
	return b, nil
}

// framed puts the header frame of h (a marshalled header) in the room
// before b's body and returns the two as one slice of b.buf.
func (b *body) framed(h []byte) ([]byte, error) {
	start := headerRoom - uvarintLen(uint64(len(h))) - len(h)
	if start < 0 {
		// Unreachable: headers are bounded by maxHeaderSize and
		// maxPageHeaderSize.
		return nil, fmt.Errorf("fetch: header of %d bytes exceeds its room of %d", len(h), headerRoom)
	}
	f := binary.AppendUvarint(b.buf[start:start], uint64(len(h)))
	_ = append(f, h...) // within the room: it ends at headerRoom
	return b.buf[start:], nil
}

// headerFrame is a response that is a header alone (a refusal): its frame.
func headerFrame(h []byte) []byte {
	return append(binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(h)), uint64(len(h))), h...)
}

// writeChunks writes b to w in writes of at most streamWriteSize (one
// yamux frame in one Noise message each; see streamWriteSize).
func writeChunks(w io.Writer, b []byte) error {
	for len(b) > 0 {
		n := min(len(b), streamWriteSize)
		if _, err := w.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}
