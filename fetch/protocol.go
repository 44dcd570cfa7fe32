package fetch

import (
	"encoding/binary"
	"fmt"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
)

const wireVersion = 1

const (
	maxRequestSize = 1 + 32 + 4 + 2 + MaxCursorSize
	maxHeaderSize  = 3 + status.MaxMessage + 1 + 4 + 2 + MaxCursorSize
)

// readBufferSize is the client's read buffer for a page: envelopes of up
// to this size are decoded straight out of it (wire.Reader.Next), and
// each read from the stream takes up to this much.
const readBufferSize = 64 << 10

type request struct {
	mailbox envelope.MailboxID
	limit   uint32
	cursor  []byte
}

func (q *request) marshal() []byte {
	b := make([]byte, 0, maxRequestSize)
	b = append(b, wireVersion)
	b = append(b, q.mailbox[:]...)
	b = binary.BigEndian.AppendUint32(b, q.limit)
	b = binary.BigEndian.AppendUint16(b, uint16(len(q.cursor)))
	return append(b, q.cursor...)
}

func parseRequest(b []byte) (*request, error) {
	if len(b) < 1+32+4+2 {
		return nil, fmt.Errorf("%w: fetch request of %d bytes", envelope.ErrMalformed, len(b))
	}
	if b[0] != wireVersion {
		return nil, fmt.Errorf("%w: fetch request version %d", envelope.ErrVersion, b[0])
	}
	q := &request{limit: binary.BigEndian.Uint32(b[33:])}
	copy(q.mailbox[:], b[1:33])
	n := int(binary.BigEndian.Uint16(b[37:]))
	if n > MaxCursorSize || 39+n != len(b) {
		return nil, fmt.Errorf("%w: cursor length %d in a %d-byte request", envelope.ErrMalformed, n, len(b))
	}
	if n > 0 {
		q.cursor = append([]byte(nil), b[39:]...)
	}
	return q, nil
}

type header struct {
	code  status.Code
	msg   string
	more  bool
	count uint32
	next  []byte
}

func (h *header) marshal() []byte {
	msg := status.Truncate(h.msg)
	b := make([]byte, 0, maxHeaderSize)
	b = append(b, byte(h.code))
	b = binary.BigEndian.AppendUint16(b, uint16(len(msg)))
	b = append(b, msg...)
	more := byte(0)
	if h.more {
		more = 1
	}
	b = append(b, more)
	b = binary.BigEndian.AppendUint32(b, h.count)
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.next)))
	return append(b, h.next...)
}

func parseHeader(b []byte) (*header, error) {
	if len(b) < 3 {
		return nil, fmt.Errorf("%w: header of %d bytes", ErrBadResponse, len(b))
	}
	h := &header{code: status.Code(b[0])}
	if !h.code.Valid() {
		return nil, fmt.Errorf("%w: unknown code %d", ErrBadResponse, b[0])
	}
	m := int(binary.BigEndian.Uint16(b[1:]))
	if m > status.MaxMessage || len(b) < 3+m+1+4+2 {
		return nil, fmt.Errorf("%w: message length %d in a %d-byte header", ErrBadResponse, m, len(b))
	}
	h.msg = string(b[3 : 3+m])
	rest := b[3+m:]
	switch rest[0] {
	case 0:
	case 1:
		h.more = true
	default:
		return nil, fmt.Errorf("%w: more flag %d", ErrBadResponse, rest[0])
	}
	h.count = binary.BigEndian.Uint32(rest[1:])
	k := int(binary.BigEndian.Uint16(rest[5:]))
	if k > MaxCursorSize || 7+k != len(rest) {
		return nil, fmt.Errorf("%w: cursor length %d", ErrBadResponse, k)
	}
	if k > 0 {
		h.next = append([]byte(nil), rest[7:]...)
	}
	return h, nil
}
