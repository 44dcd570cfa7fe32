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

// streamWriteSize is the size of the host's writes on a stream of pages:
// the largest write that travels as one yamux frame (at most 64 KiB with
// its 12-byte header) in one Noise transport message (at most 65535
// bytes with its 16-byte tag). Each write costs a yamux frame, an AEAD
// call and a system call on both ends, so fewer, fuller ones are cheaper.
const streamWriteSize = 65535 - 16 - 12

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
	b := appendStatus(make([]byte, 0, maxHeaderSize), h.code, h.msg, h.more, h.count)
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.next)))
	return append(b, h.next...)
}

// appendStatus appends what both kinds of response header (header and
// pageHeader) begin with: code, message length and message (truncated to
// status.MaxMessage), more flag, envelope count.
func appendStatus(b []byte, code status.Code, msg string, more bool, count uint32) []byte {
	msg = status.Truncate(msg)
	b = append(b, byte(code))
	b = binary.BigEndian.AppendUint16(b, uint16(len(msg)))
	b = append(b, msg...)
	flag := byte(0)
	if more {
		flag = 1
	}
	b = append(b, flag)
	return binary.BigEndian.AppendUint32(b, count)
}

// statusHead is the beginning appendStatus writes, parsed.
type statusHead struct {
	code  status.Code
	msg   string
	more  bool
	count uint32
}

// parseStatus parses the beginning appendStatus writes, of a header
// (what names it in errors) with at least fixed bytes after the message
// (more flag and count included), and returns the bytes after the count.
func parseStatus(b []byte, fixed int, what string) (statusHead, []byte, error) {
	var h statusHead
	if len(b) < 3 {
		return h, nil, fmt.Errorf("%w: %s of %d bytes", ErrBadResponse, what, len(b))
	}
	h.code = status.Code(b[0])
	if !h.code.Valid() {
		return h, nil, fmt.Errorf("%w: unknown code %d", ErrBadResponse, b[0])
	}
	m := int(binary.BigEndian.Uint16(b[1:]))
	if m > status.MaxMessage || len(b) < 3+m+fixed {
		return h, nil, fmt.Errorf("%w: message length %d in a %d-byte %s", ErrBadResponse, m, len(b), what)
	}
	h.msg = string(b[3 : 3+m])
	rest := b[3+m:]
	switch rest[0] {
	case 0:
	case 1:
		h.more = true
	default:
		return h, nil, fmt.Errorf("%w: more flag %d", ErrBadResponse, rest[0])
	}
	h.count = binary.BigEndian.Uint32(rest[1:])
	return h, rest[5:], nil
}

func parseHeader(b []byte) (*header, error) {
	st, rest, err := parseStatus(b, 1+4+2, "header") // more, count, cursor length
	if err != nil {
		return nil, err
	}
	h := &header{code: st.code, msg: st.msg, more: st.more, count: st.count}
	k := int(binary.BigEndian.Uint16(rest))
	if k > MaxCursorSize || 2+k != len(rest) {
		return nil, fmt.Errorf("%w: cursor length %d", ErrBadResponse, k)
	}
	if k > 0 {
		h.next = append([]byte(nil), rest[2:]...)
	}
	return h, nil
}

// Messages of the streaming protocol (StreamProtocolID). A request asks
// for up to pages pages of up to limit envelopes each; the host answers
// with page after page on the same stream, each a pageHeader followed by
// its envelope frames.
const (
	maxStreamRequestSize = 1 + 32 + 4 + 4 + 2 + MaxCursorSize
	maxPageHeaderSize    = 3 + status.MaxMessage + 1 + 4 + 4 + 2 + MaxCursorSize
)

// streamRequest asks for the pages after cursor. limit bounds each page's
// envelopes and pages the number of pages (0 for either: the host's
// bound, MaxPageCount or MaxStreamPages).
type streamRequest struct {
	mailbox envelope.MailboxID
	limit   uint32
	pages   uint32
	cursor  []byte
}

func (q *streamRequest) marshal() []byte {
	b := make([]byte, 0, maxStreamRequestSize)
	b = append(b, wireVersion)
	b = append(b, q.mailbox[:]...)
	b = binary.BigEndian.AppendUint32(b, q.limit)
	b = binary.BigEndian.AppendUint32(b, q.pages)
	b = binary.BigEndian.AppendUint16(b, uint16(len(q.cursor)))
	return append(b, q.cursor...)
}

func parseStreamRequest(b []byte) (*streamRequest, error) {
	const fixed = 1 + 32 + 4 + 4 + 2
	if len(b) < fixed {
		return nil, fmt.Errorf("%w: stream fetch request of %d bytes", envelope.ErrMalformed, len(b))
	}
	if b[0] != wireVersion {
		return nil, fmt.Errorf("%w: stream fetch request version %d", envelope.ErrVersion, b[0])
	}
	q := &streamRequest{limit: binary.BigEndian.Uint32(b[33:]), pages: binary.BigEndian.Uint32(b[37:])}
	copy(q.mailbox[:], b[1:33])
	n := int(binary.BigEndian.Uint16(b[41:]))
	if n > MaxCursorSize || fixed+n != len(b) {
		return nil, fmt.Errorf("%w: cursor length %d in a %d-byte stream request", envelope.ErrMalformed, n, len(b))
	}
	if n > 0 {
		q.cursor = append([]byte(nil), b[fixed:]...)
	}
	return q, nil
}

// pageHeader opens one page of a stream: the header of protocol 1.0.0
// plus the size of the page's body (its count envelope frames, length
// prefixes included), so the client can reserve the page's memory and
// read the whole body in one go.
type pageHeader struct {
	code  status.Code
	msg   string
	more  bool
	count uint32
	size  uint32
	next  []byte
}

func (h *pageHeader) marshal() []byte {
	b := appendStatus(make([]byte, 0, maxPageHeaderSize), h.code, h.msg, h.more, h.count)
	b = binary.BigEndian.AppendUint32(b, h.size)
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.next)))
	return append(b, h.next...)
}

func parsePageHeader(b []byte) (*pageHeader, error) {
	st, rest, err := parseStatus(b, 1+4+4+2, "page header") // more, count, size, cursor length
	if err != nil {
		return nil, err
	}
	h := &pageHeader{code: st.code, msg: st.msg, more: st.more, count: st.count}
	h.size = binary.BigEndian.Uint32(rest)
	k := int(binary.BigEndian.Uint16(rest[4:]))
	if k > MaxCursorSize || 6+k != len(rest) {
		return nil, fmt.Errorf("%w: cursor length %d", ErrBadResponse, k)
	}
	if k > 0 {
		h.next = append([]byte(nil), rest[6:]...)
	}
	if h.count == 0 && h.size != 0 {
		return nil, fmt.Errorf("%w: %d bytes in a page of no envelopes", ErrBadResponse, h.size)
	}
	if h.code != status.OK && (h.count != 0 || h.more || k != 0) {
		return nil, fmt.Errorf("%w: a refusal (code %d) carrying a page", ErrBadResponse, h.code)
	}
	return h, nil
}

// bodySize is the size of a page body holding envs: each encoding as a
// frame (package wire: uvarint length, then the bytes).
func bodySize(envs [][]byte) int {
	n := 0
	for _, e := range envs {
		n += uvarintLen(uint64(len(e))) + len(e)
	}
	return n
}

func uvarintLen(n uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], n)
}

// maxBodySize bounds the body of a page of count envelopes under p: at
// most MaxPageBytes of encodings, each with a length prefix.
func maxBodySize(p Params, count int) int {
	return p.MaxPageBytes + count*uvarintLen(uint64(p.MaxEnvelopeSize))
}

// splitBody cuts a page body into its count envelope frames, each at most
// maxEnvelope bytes, and calls fn with each in order (the slices alias
// body). The frames must fill body exactly.
func splitBody(body []byte, count, maxEnvelope int, fn func(i int, frame []byte) error) error {
	for i := 0; i < count; i++ {
		n, k := binary.Uvarint(body)
		if k <= 0 || k != uvarintLen(n) {
			// Unterminated, overflowing or not minimal: every length
			// has one encoding, the one the host writes.
			return fmt.Errorf("%w: frame %d: bad length prefix", ErrBadResponse, i+1)
		}
		if n > uint64(maxEnvelope) || n > uint64(len(body)-k) {
			return fmt.Errorf("%w: frame %d of %d bytes: limit %d, %d left in the page", ErrBadResponse, i+1, n, maxEnvelope, len(body)-k)
		}
		if err := fn(i, body[k:k+int(n)]); err != nil {
			return err
		}
		body = body[k+int(n):]
	}
	if len(body) != 0 {
		return fmt.Errorf("%w: %d bytes after the page's %d envelopes", ErrBadResponse, len(body), count)
	}
	return nil
}
