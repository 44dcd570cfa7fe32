package relay

import (
	"encoding/binary"
	"fmt"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
)

// wireVersion is the version byte of direct relay requests.
const wireVersion = 1

// maxResponseSize bounds a response frame: code, length, message.
const maxResponseSize = 3 + status.MaxMessage

type request struct {
	mailbox  envelope.MailboxID
	envelope []byte
}

func (q *request) marshal() []byte {
	b := make([]byte, 0, 1+32+len(q.envelope))
	b = append(b, wireVersion)
	b = append(b, q.mailbox[:]...)
	return append(b, q.envelope...)
}

// parseRequest checks the fixed fields; the envelope bytes are checked by
// envelope.Open.
func parseRequest(b []byte) (*request, error) {
	if len(b) < 1+32 {
		return nil, fmt.Errorf("%w: request of %d bytes", envelope.ErrMalformed, len(b))
	}
	if b[0] != wireVersion {
		return nil, fmt.Errorf("%w: relay request version %d", envelope.ErrVersion, b[0])
	}
	q := &request{envelope: b[33:]}
	copy(q.mailbox[:], b[1:33])
	return q, nil
}

type response struct {
	code status.Code
	msg  string
}

func (r *response) marshal() []byte {
	msg := status.Truncate(r.msg)
	b := make([]byte, 3, 3+len(msg))
	b[0] = byte(r.code)
	binary.BigEndian.PutUint16(b[1:], uint16(len(msg)))
	return append(b, msg...)
}

func parseResponse(b []byte) (*response, error) {
	if len(b) < 3 {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadResponse, len(b))
	}
	n := int(binary.BigEndian.Uint16(b[1:]))
	if n > status.MaxMessage || 3+n != len(b) {
		return nil, fmt.Errorf("%w: message length %d in %d bytes", ErrBadResponse, n, len(b))
	}
	c := status.Code(b[0])
	if !c.Valid() {
		return nil, fmt.Errorf("%w: unknown code %d", ErrBadResponse, b[0])
	}
	return &response{code: c, msg: string(b[3:])}, nil
}
