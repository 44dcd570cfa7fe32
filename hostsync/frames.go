package hostsync

import (
	"encoding/binary"
	"fmt"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	"github.com/meshnode/meshnode/reconcile"
)

// helloVersion is the version byte of the hello frame.
const helloVersion = 1

// frameType is the first byte of every frame body.
type frameType byte

const (
	frameHello     frameType = 1 // I→R: version, mailbox, reconcile limits
	frameStatus    frameType = 2 // R→I: answer to the hello, and the final ack
	frameReconcile frameType = 3 // both: one reconcile message
	frameBatch     frameType = 4 // I→R: IDs wanted and the number of pushes that follow
	frameEnvelope  frameType = 5 // both: one envelope (a push, or the answer to a want)
	frameMissing   frameType = 6 // R→I: a wanted ID the responder cannot serve
	frameDone      frameType = 7 // I→R: the transfer is over
)

func (t frameType) String() string {
	switch t {
	case frameHello:
		return "hello"
	case frameStatus:
		return "status"
	case frameReconcile:
		return "reconcile"
	case frameBatch:
		return "batch"
	case frameEnvelope:
		return "envelope"
	case frameMissing:
		return "missing"
	case frameDone:
		return "done"
	}
	return fmt.Sprintf("frame(%d)", byte(t))
}

// Sizes of the fixed frames, type byte included.
const (
	helloSize     = 1 + 1 + 32 + 6*4
	missingSize   = 1 + reconcile.IDSize
	doneSize      = 1
	maxStatusSize = 1 + 1 + 2 + status.MaxMessage
)

// hello opens a session.
type hello struct {
	mailbox envelope.MailboxID
	params  reconcile.Params
}

func (h *hello) marshal() []byte {
	b := make([]byte, 0, helloSize)
	b = append(b, byte(frameHello), helloVersion)
	b = append(b, h.mailbox[:]...)
	p := h.params
	for _, v := range []int{p.Branching, p.IDListThreshold, p.MaxMessageSize, p.MaxRanges, p.MaxIDs, p.MaxRounds} {
		b = binary.BigEndian.AppendUint32(b, uint32(v))
	}
	return b
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
	v := make([]int, 6)
	for i := range v {
		x := binary.BigEndian.Uint32(b[34+4*i:])
		if x > 1<<30 {
			return nil, fmt.Errorf("%w: hello limit %d out of range", ErrProtocol, x)
		}
		v[i] = int(x)
	}
	h.params = reconcile.Params{
		Branching: v[0], IDListThreshold: v[1], MaxMessageSize: v[2],
		MaxRanges: v[3], MaxIDs: v[4], MaxRounds: v[5],
	}
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

// batch is one turn of the initiator in the transfer: the IDs it wants
// answered, and the number of envelope frames it pushes right after.
type batch struct {
	pushes int
	wants  []envelope.ID
}

func (q *batch) marshal() []byte {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen32+len(q.wants)*reconcile.IDSize)
	b = append(b, byte(frameBatch))
	b = binary.AppendUvarint(b, uint64(q.pushes))
	b = binary.AppendUvarint(b, uint64(len(q.wants)))
	for i := range q.wants {
		b = append(b, q.wants[i][:]...)
	}
	return b
}

// Protocol limits of one batch: both sides must agree on them, so they
// are constants of the protocol version rather than Params.
const (
	// MaxWantPerBatch bounds the IDs one batch requests.
	MaxWantPerBatch = 256
	// MaxPushPerBatch bounds the envelopes pushed after one batch.
	MaxPushPerBatch = 256
	// maxBatchSize is the largest batch frame.
	maxBatchSize = 1 + 2*binary.MaxVarintLen32 + MaxWantPerBatch*reconcile.IDSize
)

// parseBatch checks a batch: at most MaxPushPerBatch pushes and
// MaxWantPerBatch IDs, minimal varints, no trailing bytes, no ID twice.
func parseBatch(b []byte) (*batch, error) {
	if len(b) < 1 || b[0] != byte(frameBatch) {
		return nil, fmt.Errorf("%w: not a batch frame", ErrProtocol)
	}
	off := 1
	uv := func(limit int, what string) (int, error) {
		x, n := binary.Uvarint(b[off:])
		if n <= 0 || n != len(binary.AppendUvarint(nil, x)) {
			return 0, fmt.Errorf("%w: bad %s varint in batch", ErrProtocol, what)
		}
		if x > uint64(limit) {
			return 0, fmt.Errorf("%w: batch %s %d over the limit %d", ErrProtocol, what, x, limit)
		}
		off += n
		return int(x), nil
	}
	pushes, err := uv(MaxPushPerBatch, "push count")
	if err != nil {
		return nil, err
	}
	n, err := uv(MaxWantPerBatch, "want count")
	if err != nil {
		return nil, err
	}
	if len(b)-off != n*reconcile.IDSize {
		return nil, fmt.Errorf("%w: batch announces %d IDs in %d bytes", ErrProtocol, n, len(b)-off)
	}
	q := &batch{pushes: pushes, wants: make([]envelope.ID, n)}
	seen := make(map[envelope.ID]struct{}, n)
	for i := range q.wants {
		copy(q.wants[i][:], b[off+i*reconcile.IDSize:])
		if _, dup := seen[q.wants[i]]; dup {
			return nil, fmt.Errorf("%w: batch wants %s twice", ErrProtocol, q.wants[i].Short())
		}
		seen[q.wants[i]] = struct{}{}
	}
	return q, nil
}

func marshalMissing(id envelope.ID) []byte {
	return append([]byte{byte(frameMissing)}, id[:]...)
}

func parseMissing(b []byte) (envelope.ID, error) {
	var id envelope.ID
	if len(b) != missingSize || b[0] != byte(frameMissing) {
		return id, fmt.Errorf("%w: missing frame of %d bytes or wrong type", ErrProtocol, len(b))
	}
	copy(id[:], b[1:])
	return id, nil
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
