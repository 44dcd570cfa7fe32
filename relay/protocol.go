package relay

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/meshnode/meshnode/admission"
	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	"github.com/meshnode/meshnode/internal/wire"
)

// wireVersion is the version byte of direct relay requests;
// wireVersionProof that of a request carrying a new-mailbox proof of work
// (sent only when a host asked for one).
const (
	wireVersion      = 1
	wireVersionProof = 2
)

// proofSize is the proof of work field of a request of wireVersionProof.
const proofSize = len(admission.Proof{})

// sessionIDSize is the request ID that prefixes every request and response
// frame of the session protocol.
const sessionIDSize = 4

// maxResponseSize bounds a response frame: code, length, message, and
// the difficulty of a ProofRequired answer.
const maxResponseSize = 3 + status.MaxMessage + 1

// readBufferSize is the read buffer of a relay stream. A relay exchange is
// one small frame each way, so wire.NewReader's 32 KiB default would be
// allocated and zeroed per envelope for nothing (twice per exchange, it was
// the largest allocation of the ingest path). A larger request frame is
// still read whole: io.ReadFull bypasses the buffer for the rest of it.
const readBufferSize = 4 << 10

// smallFrameSize is the request frame a relay stream reserves memory for
// once, for its whole life; only the part of a larger frame beyond it is
// reserved per request. 4 KiB holds the common padded envelope sizes.
const smallFrameSize = 4 << 10

// newFrameReader reads wire frames from a relay stream.
func newFrameReader(r io.Reader) *wire.Reader {
	return wire.NewReader(bufio.NewReaderSize(r, readBufferSize))
}

// writeFrame writes body as one wire frame (uvarint length ‖ body, the
// layout of package wire) with a single Write, without wire.WriteOne's
// 32 KiB buffer.
func writeFrame(w io.Writer, body []byte) error {
	_, err := w.Write(appendFrame(make([]byte, 0, binary.MaxVarintLen64+len(body)), body))
	return err
}

// appendFrame appends body to b as one wire frame.
func appendFrame(b, body []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(body)))
	return append(b, body...)
}

type request struct {
	mailbox  envelope.MailboxID
	proof    *admission.Proof // nil: a request of wireVersion
	envelope []byte
}

func (q *request) size() int {
	if q.proof != nil {
		return 1 + 32 + proofSize + len(q.envelope)
	}
	return 1 + 32 + len(q.envelope)
}

func (q *request) marshal() []byte {
	return q.appendTo(make([]byte, 0, q.size()))
}

func (q *request) appendTo(b []byte) []byte {
	if q.proof == nil {
		b = append(b, wireVersion)
		b = append(b, q.mailbox[:]...)
	} else {
		b = append(b, wireVersionProof)
		b = append(b, q.mailbox[:]...)
		b = append(b, q.proof[:]...)
	}
	return append(b, q.envelope...)
}

// parseRequest checks the fixed fields; the envelope bytes are checked by
// envelope.Open.
func parseRequest(b []byte) (*request, error) {
	if len(b) < 1+32 {
		return nil, fmt.Errorf("%w: request of %d bytes", envelope.ErrMalformed, len(b))
	}
	q := &request{}
	copy(q.mailbox[:], b[1:33])
	switch b[0] {
	case wireVersion:
		q.envelope = b[33:]
	case wireVersionProof:
		if len(b) < 1+32+proofSize {
			return nil, fmt.Errorf("%w: request with a proof of %d bytes", envelope.ErrMalformed, len(b))
		}
		q.proof = new(admission.Proof)
		copy(q.proof[:], b[33:])
		q.envelope = b[33+proofSize:]
	default:
		return nil, fmt.Errorf("%w: relay request version %d", envelope.ErrVersion, b[0])
	}
	return q, nil
}

type response struct {
	code status.Code
	msg  string
	// bits is the proof of work a ProofRequired answer asks for (and is
	// sent only with that code).
	bits uint8
}

func (r *response) marshal() []byte {
	return r.appendTo(make([]byte, 0, 4+len(r.msg)))
}

func (r *response) appendTo(b []byte) []byte {
	msg := status.Truncate(r.msg)
	b = append(b, byte(r.code))
	b = binary.BigEndian.AppendUint16(b, uint16(len(msg)))
	b = append(b, msg...)
	if r.code == status.ProofRequired {
		b = append(b, r.bits)
	}
	return b
}

// err is the error the answer stands for: nil for a success.
func (r *response) err() error {
	if r.code == status.ProofRequired {
		return status.ProofError(r.bits, r.msg)
	}
	return r.code.Err(r.msg)
}

func parseResponse(b []byte) (*response, error) {
	if len(b) < 3 {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadResponse, len(b))
	}
	c := status.Code(b[0])
	if !c.Valid() {
		return nil, fmt.Errorf("%w: unknown code %d", ErrBadResponse, b[0])
	}
	tail := 0
	if c == status.ProofRequired {
		tail = 1
	}
	n := int(binary.BigEndian.Uint16(b[1:]))
	if n > status.MaxMessage || 3+n+tail != len(b) {
		return nil, fmt.Errorf("%w: message length %d in %d bytes", ErrBadResponse, n, len(b))
	}
	r := &response{code: c, msg: string(b[3 : 3+n])}
	if tail > 0 {
		r.bits = b[3+n]
		if r.bits == 0 || r.bits > admissionMaxBits {
			return nil, fmt.Errorf("%w: a proof of work of %d bits asked for", ErrBadResponse, r.bits)
		}
	}
	return r, nil
}

// appendSessionRequest appends q as one session request frame:
// id ‖ request.
func appendSessionRequest(b []byte, id uint32, q *request) []byte {
	b = binary.AppendUvarint(b, uint64(sessionIDSize+q.size()))
	b = binary.BigEndian.AppendUint32(b, id)
	return q.appendTo(b)
}

// appendSessionResponse appends r as one session response frame:
// id ‖ response.
func appendSessionResponse(b []byte, id uint32, r *response) []byte {
	n := 3 + len(status.Truncate(r.msg))
	if r.code == status.ProofRequired {
		n++
	}
	b = binary.AppendUvarint(b, uint64(sessionIDSize+n))
	b = binary.BigEndian.AppendUint32(b, id)
	return r.appendTo(b)
}

// parseSessionResponse parses a session response frame.
func parseSessionResponse(b []byte) (uint32, *response, error) {
	if len(b) < sessionIDSize {
		return 0, nil, fmt.Errorf("%w: session answer of %d bytes", ErrBadResponse, len(b))
	}
	r, err := parseResponse(b[sessionIDSize:])
	if err != nil {
		return 0, nil, err
	}
	return binary.BigEndian.Uint32(b), r, nil
}
