package hostsync

import (
	"encoding/binary"
	"fmt"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
)

// helloVersion is the version byte of the hello frame.
const helloVersion = 2

// frameType is the first byte of every frame body.
type frameType byte

const (
	frameHello     frameType = 1 // I→R: version, mailbox, reconcile limits
	frameStatus    frameType = 2 // R→I: answer to the hello, and the final ack
	frameReconcile frameType = 3 // both: one reconcile message
	frameEnvelope  frameType = 5 // both: one pushed envelope
	frameDone      frameType = 7 // I→R: the initiator's pushes are over
)

func (t frameType) String() string {
	switch t {
	case frameHello:
		return "hello"
	case frameStatus:
		return "status"
	case frameReconcile:
		return "reconcile"
	case frameEnvelope:
		return "envelope"
	case frameDone:
		return "done"
	}
	return fmt.Sprintf("frame(%d)", byte(t))
}

// Sizes of the fixed frames, type byte included.
const (
	helloSize     = 1 + 1 + 32 + 2*4
	doneSize      = 1
	maxStatusSize = 1 + 1 + 2 + status.MaxMessage
)

// hello opens a session.
type hello struct {
	mailbox envelope.MailboxID
	// The reconcile limits both sides must share: MaxMessageSize and
	// MaxRounds. The rest of reconcile.Params is each side's own.
	maxMessage, maxRounds int
}

func (h *hello) marshal() []byte {
	b := make([]byte, 0, helloSize)
	b = append(b, byte(frameHello), helloVersion)
	b = append(b, h.mailbox[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(h.maxMessage))
	return binary.BigEndian.AppendUint32(b, uint32(h.maxRounds))
}

// parseHello checks the layout; the reconcile limits are checked against
// the responder's own by the caller. A hello of another version is
// envelope.ErrVersion, so the refusal carries status.Version.
func parseHello(b []byte) (*hello, error) {
	if len(b) >= 2 && b[0] == byte(frameHello) && b[1] != helloVersion {
		return nil, fmt.Errorf("%w: sync hello version %d, this node speaks %d", envelope.ErrVersion, b[1], helloVersion)
	}
	if len(b) != helloSize || b[0] != byte(frameHello) {
		return nil, fmt.Errorf("%w: hello of %d bytes (want %d) or wrong type", ErrProtocol, len(b), helloSize)
	}
	h := &hello{}
	copy(h.mailbox[:], b[2:34])
	msg, rounds := binary.BigEndian.Uint32(b[34:]), binary.BigEndian.Uint32(b[38:])
	if msg > 1<<30 || rounds > 1<<30 {
		return nil, fmt.Errorf("%w: hello limits %d, %d out of range", ErrProtocol, msg, rounds)
	}
	h.maxMessage, h.maxRounds = int(msg), int(rounds)
	return h, nil
}

// statusFrame is a result code with a short message.
type statusFrame struct {
	code status.Code
	msg  string
}

func (s *statusFrame) marshal() []byte {
	msg := status.Truncate(s.msg)
	b := make([]byte, 4, 4+len(msg))
	b[0] = byte(frameStatus)
	b[1] = byte(s.code)
	binary.BigEndian.PutUint16(b[2:], uint16(len(msg)))
	return append(b, msg...)
}

func parseStatus(b []byte) (*statusFrame, error) {
	if len(b) < 4 || b[0] != byte(frameStatus) {
		return nil, fmt.Errorf("%w: status frame of %d bytes or wrong type", ErrProtocol, len(b))
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	if n > status.MaxMessage || 4+n != len(b) {
		return nil, fmt.Errorf("%w: status message length %d in %d bytes", ErrProtocol, n, len(b))
	}
	c := status.Code(b[1])
	if !c.Valid() {
		return nil, fmt.Errorf("%w: unknown status code %d", ErrProtocol, b[1])
	}
	return &statusFrame{code: c, msg: string(b[4:])}, nil
}

func marshalEnvelope(e *envelope.Envelope) []byte {
	return append([]byte{byte(frameEnvelope)}, e.Bytes()...)
}

// openEnvelope decodes an envelope frame and verifies its signature and
// mailbox. Nothing that fails here may be stored.
func openEnvelope(b []byte, maxSize int, m *envelope.MailboxID) (*envelope.Envelope, error) {
	if len(b) < 1 || b[0] != byte(frameEnvelope) {
		return nil, fmt.Errorf("%w: not an envelope frame", ErrProtocol)
	}
	return envelope.Open(b[1:], maxSize, m)
}

func marshalReconcile(msg []byte) []byte {
	return append([]byte{byte(frameReconcile)}, msg...)
}
