package directory

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	"github.com/meshnode/meshnode/keymgmt"
)

// ProtocolID is the directory protocol: one request and one response per
// stream.
const ProtocolID = "/meshnode/directory/1.0.0"

// ServiceName is the resource-manager service of the directory protocol.
const ServiceName = "meshnode.directory"

// SigContextRequest is the signature context of signed directory requests
// (publish, remove, status), made with the name's owner key.
const SigContextRequest = "meshnode/v1/directory-request"

const wireVersion = 1

// op is a directory operation.
type op uint8

const (
	opPublish op = 1
	opFetch   op = 2
	opRemove  op = 3
	opStatus  op = 4
)

func (o op) signed() bool { return o == opPublish || o == opRemove || o == opStatus }

func (o op) String() string {
	switch o {
	case opPublish:
		return "publish"
	case opFetch:
		return "fetch"
	case opRemove:
		return "remove"
	case opStatus:
		return "status"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Fixed sizes of a request.
const (
	requestHead   = 1 + 1 + 32             // version, op, name hash
	signedHead    = requestHead + 32 + 8   // + owner key, timestamp
	publishFixed  = signedHead + 8 + 1 + 1 // + expires, mailbox count, blob count
	maxStatusBody = 1 + 8                  // remaining, expires
	responseHead  = 3                      // code, message length
	maxResponse   = responseHead + status.MaxMessage + AbsMaxBlobSize
	minBlobSize   = keymgmt.BlobOverhead + 1 // a sealed, non-empty package
)

// maxRequestSize is the largest request frame a host with p accepts.
func maxRequestSize(p Params) int {
	return publishFixed + p.MaxMailboxes*32 + p.MaxBlobs*(2+p.MaxBlobSize) + ed25519.SignatureSize
}

// request is one directory request. Fields after name are set for signed
// operations only; expires, mailboxes and blobs for publishes only.
type request struct {
	op        op
	name      keymgmt.NameHash
	owner     ed25519.PublicKey
	ts        int64 // Unix milliseconds
	expires   int64 // Unix seconds
	mailboxes []envelope.MailboxID
	blobs     [][]byte
	sig       []byte
}

// signedBytes is the encoding without the signature.
func (q *request) signedBytes() []byte {
	n := requestHead
	if q.op.signed() {
		n = signedHead
	}
	if q.op == opPublish {
		n = publishFixed + 32*len(q.mailboxes)
		for _, b := range q.blobs {
			n += 2 + len(b)
		}
	}
	out := make([]byte, 0, n+ed25519.SignatureSize)
	out = append(out, wireVersion, byte(q.op))
	out = append(out, q.name[:]...)
	if !q.op.signed() {
		return out
	}
	out = append(out, q.owner...)
	out = binary.BigEndian.AppendUint64(out, uint64(q.ts))
	if q.op != opPublish {
		return out
	}
	out = binary.BigEndian.AppendUint64(out, uint64(q.expires))
	out = append(out, byte(len(q.mailboxes)))
	for _, m := range q.mailboxes {
		out = append(out, m[:]...)
	}
	out = append(out, byte(len(q.blobs)))
	for _, b := range q.blobs {
		out = binary.BigEndian.AppendUint16(out, uint16(len(b)))
		out = append(out, b...)
	}
	return out
}

// sign signs the request with the owner key.
func (q *request) sign(owner ed25519.PrivateKey) {
	q.owner = owner.Public().(ed25519.PublicKey)
	q.sig = keymgmt.SignWithKey(owner, SigContextRequest, q.signedBytes())
}

func (q *request) marshal() []byte {
	out := q.signedBytes()
	if q.op.signed() {
		out = append(out, q.sig...)
	}
	return out
}

// verify checks the owner's signature.
func (q *request) verify() error {
	if err := keymgmt.VerifySignature(q.owner, SigContextRequest, q.signedBytes(), q.sig); err != nil {
		return fmt.Errorf("%w: %v", ErrNotOwner, err)
	}
	return nil
}

// cursor is a bounds-checked reader; ok turns false instead of slicing
// past the end.
type cursor struct {
	b  []byte
	ok bool
}

func (c *cursor) take(n int) []byte {
	if !c.ok || n < 0 || n > len(c.b) {
		c.ok = false
		return nil
	}
	out := c.b[:n:n]
	c.b = c.b[n:]
	return out
}

func (c *cursor) u8() int {
	b := c.take(1)
	if b == nil {
		return 0
	}
	return int(b[0])
}

func (c *cursor) u16() int {
	b := c.take(2)
	if b == nil {
		return 0
	}
	return int(binary.BigEndian.Uint16(b))
}

func (c *cursor) i64() int64 {
	b := c.take(8)
	if b == nil {
		return 0
	}
	return int64(binary.BigEndian.Uint64(b))
}

// parseRequest decodes a request within the absolute bounds and the
// host's limits p; it does not verify the signature. The result does not
// alias b.
func parseRequest(b []byte, p Params) (*request, error) {
	c := &cursor{b: b, ok: true}
	if v := c.u8(); c.ok && v != wireVersion {
		return nil, fmt.Errorf("%w: directory request version %d, want %d", ErrVersion, v, wireVersion)
	}
	q := &request{op: op(c.u8())}
	copy(q.name[:], c.take(32))
	if !c.ok {
		return nil, fmt.Errorf("%w: request of %d bytes", ErrMalformed, len(b))
	}
	switch q.op {
	case opFetch:
		if len(c.b) != 0 {
			return nil, fmt.Errorf("%w: %d bytes after a fetch request", ErrMalformed, len(c.b))
		}
		return q, nil
	case opPublish, opRemove, opStatus:
	default:
		return nil, fmt.Errorf("%w: unknown operation %d", ErrMalformed, q.op)
	}
	q.owner = ed25519.PublicKey(clone(c.take(ed25519.PublicKeySize)))
	q.ts = c.i64()
	if q.op == opPublish {
		q.expires = c.i64()
		nm := c.u8()
		if nm > p.MaxMailboxes {
			return nil, fmt.Errorf("%w: %d request mailboxes, at most %d", ErrTooLarge, nm, p.MaxMailboxes)
		}
		for range nm {
			var m envelope.MailboxID
			copy(m[:], c.take(32))
			q.mailboxes = append(q.mailboxes, m)
		}
		nb := c.u8()
		if c.ok && (nb == 0 || nb > p.MaxBlobs) {
			return nil, fmt.Errorf("%w: %d packages, want 1 to %d", ErrTooLarge, nb, p.MaxBlobs)
		}
		for range nb {
			n := c.u16()
			if c.ok && (n < minBlobSize || n > p.MaxBlobSize) {
				return nil, fmt.Errorf("%w: package of %d bytes, want %d to %d", ErrTooLarge, n, minBlobSize, p.MaxBlobSize)
			}
			q.blobs = append(q.blobs, clone(c.take(n)))
		}
	}
	q.sig = clone(c.take(ed25519.SignatureSize))
	if !c.ok || len(c.b) != 0 {
		return nil, fmt.Errorf("%w: %s request of %d bytes is truncated or has trailing data", ErrMalformed, q.op, len(b))
	}
	for i, m := range q.mailboxes {
		for _, prev := range q.mailboxes[:i] {
			if prev == m {
				return nil, fmt.Errorf("%w: request mailbox %s listed twice", ErrMalformed, m.Short())
			}
		}
	}
	return q, nil
}

// response is a host's answer: a status code, a short message and, for a
// successful fetch or status, a body.
type response struct {
	code status.Code
	msg  string
	body []byte
}

func (r *response) marshal() []byte {
	msg := status.Truncate(r.msg)
	out := make([]byte, responseHead, responseHead+len(msg)+len(r.body))
	out[0] = byte(r.code)
	binary.BigEndian.PutUint16(out[1:], uint16(len(msg)))
	out = append(out, msg...)
	return append(out, r.body...)
}

// parseResponse decodes a response to op o; a body is allowed only on a
// successful fetch (a blob) or status (remaining ‖ expires).
func parseResponse(b []byte, o op) (*response, error) {
	c := &cursor{b: b, ok: true}
	code := status.Code(c.u8())
	msg := c.take(c.u16())
	if !c.ok {
		return nil, fmt.Errorf("%w: response of %d bytes", ErrBadResponse, len(b))
	}
	if !code.Valid() {
		return nil, fmt.Errorf("%w: unknown code %d", ErrBadResponse, code)
	}
	if len(msg) > status.MaxMessage {
		return nil, fmt.Errorf("%w: message of %d bytes", ErrBadResponse, len(msg))
	}
	r := &response{code: code, msg: string(msg), body: clone(c.b)}
	switch {
	case code != status.OK || o == opPublish || o == opRemove:
		if len(r.body) != 0 {
			return nil, fmt.Errorf("%w: %d unexpected bytes after a %s answer", ErrBadResponse, len(r.body), o)
		}
	case o == opFetch:
		if len(r.body) < minBlobSize || len(r.body) > AbsMaxBlobSize {
			return nil, fmt.Errorf("%w: package of %d bytes", ErrBadResponse, len(r.body))
		}
	case o == opStatus:
		if len(r.body) != maxStatusBody {
			return nil, fmt.Errorf("%w: status body of %d bytes", ErrBadResponse, len(r.body))
		}
	}
	return r, nil
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}
