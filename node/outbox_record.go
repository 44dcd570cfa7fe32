package node

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
)

// Delivery states of an own envelope (the outbox, outbox.go).
const (
	// DeliveryPending: no host (in a group without hosts: no member) has
	// acknowledged storing it yet; the node keeps trying.
	DeliveryPending = "pending"
	// DeliveryStored: at least one host (or member) acknowledged storing
	// it durably.
	DeliveryStored = "stored"
	// DeliveryFailed: the node gave up; the reason says why.
	DeliveryFailed = "failed"
)

// Outbox record, version 1 (member database, key 'U' gid id(32); integers
// big-endian, times Unix milliseconds):
//
//	0   1  version (1)
//	1   1  state: 1 pending, 2 stored, 3 failed
//	2   8  created
//	10  8  next attempt (pending; 0 otherwise)
//	18  8  done: when it was stored or given up (0 while pending)
//	26  4  attempts
//	30  1  hosts that acknowledged it, H (at most maxStoredBy)
//	   H × (1 length ‖ peer ID bytes, at most maxPeerIDLen)
//	    2  reason length R (at most maxOutboxReason), then R bytes of UTF-8
//	    4  envelope length E (0 once stored or failed), then E bytes
//
// A pending record carries its envelope, so the outbox does not depend on
// the node's host store (whose retention may drop it) to try again.
const (
	outboxVersion   = 1
	outboxFixed     = 1 + 1 + 8 + 8 + 8 + 4 + 1
	maxStoredBy     = 16
	maxPeerIDLen    = 64
	maxOutboxReason = 512
	outboxStatePnd  = 1
	outboxStateOK   = 2
	outboxStateBad  = 3
)

// outboxRec is the decoded record.
type outboxRec struct {
	state    uint8
	created  time.Time
	next     time.Time
	done     time.Time
	attempts uint32
	storedBy []peer.ID
	reason   string
	env      []byte
}

func (r *outboxRec) stateName() string {
	switch r.state {
	case outboxStateOK:
		return DeliveryStored
	case outboxStateBad:
		return DeliveryFailed
	}
	return DeliveryPending
}

func outboxKey(g groupstate.GroupID, id envelope.ID) []byte { return gkey(pfxOutbox, g, id[:]) }

func millis(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixMilli())
}

func fromMillis(v uint64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(v))
}

// marshal encodes r, cutting what is over the limits (the reason, the
// list of hosts) rather than failing: the record is bookkeeping.
func (r *outboxRec) marshal() []byte {
	reason := r.reason
	if len(reason) > maxOutboxReason {
		reason = reason[:maxOutboxReason]
	}
	by := r.storedBy
	if len(by) > maxStoredBy {
		by = by[:maxStoredBy]
	}
	b := make([]byte, 0, outboxFixed+len(by)*40+2+len(reason)+4+len(r.env))
	b = append(b, outboxVersion, r.state)
	b = binary.BigEndian.AppendUint64(b, millis(r.created))
	b = binary.BigEndian.AppendUint64(b, millis(r.next))
	b = binary.BigEndian.AppendUint64(b, millis(r.done))
	b = binary.BigEndian.AppendUint32(b, r.attempts)
	n := 0
	for _, p := range by {
		if len(p) <= maxPeerIDLen {
			n++
		}
	}
	b = append(b, byte(n))
	for _, p := range by {
		if len(p) <= maxPeerIDLen {
			b = append(b, byte(len(p)))
			b = append(b, p...)
		}
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(reason)))
	b = append(b, reason...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.env)))
	return append(b, r.env...)
}

// decodeOutboxRec checks every length exactly; a record that does not
// decode is ErrCorrupt.
func decodeOutboxRec(b []byte) (*outboxRec, error) {
	bad := func(format string, args ...any) (*outboxRec, error) {
		return nil, fmt.Errorf("%w: outbox record: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
	if len(b) < outboxFixed {
		return bad("%d bytes, shorter than %d", len(b), outboxFixed)
	}
	if b[0] != outboxVersion {
		return bad("version %d", b[0])
	}
	r := &outboxRec{state: b[1]}
	if r.state < outboxStatePnd || r.state > outboxStateBad {
		return bad("state %d", r.state)
	}
	r.created = fromMillis(binary.BigEndian.Uint64(b[2:]))
	r.next = fromMillis(binary.BigEndian.Uint64(b[10:]))
	r.done = fromMillis(binary.BigEndian.Uint64(b[18:]))
	r.attempts = binary.BigEndian.Uint32(b[26:])
	n := int(b[30])
	if n > maxStoredBy {
		return bad("%d hosts, at most %d", n, maxStoredBy)
	}
	rest := b[outboxFixed:]
	for range n {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return bad("truncated host list")
		}
		l := int(rest[0])
		if l == 0 || l > maxPeerIDLen {
			return bad("peer ID of %d bytes", l)
		}
		p, err := peer.IDFromBytes(rest[1 : 1+l])
		if err != nil {
			return bad("peer ID: %v", err)
		}
		r.storedBy = append(r.storedBy, p)
		rest = rest[1+l:]
	}
	if len(rest) < 2 {
		return bad("truncated reason")
	}
	rl := int(binary.BigEndian.Uint16(rest))
	if rl > maxOutboxReason || len(rest) < 2+rl {
		return bad("reason of %d bytes", rl)
	}
	r.reason = string(rest[2 : 2+rl])
	rest = rest[2+rl:]
	if len(rest) < 4 {
		return bad("truncated envelope length")
	}
	el := binary.BigEndian.Uint32(rest)
	rest = rest[4:]
	if uint64(len(rest)) != uint64(el) || el > envelope.AbsoluteMaxSize {
		return bad("envelope of %d bytes, %d present", el, len(rest))
	}
	if el > 0 {
		r.env = append([]byte(nil), rest...)
	}
	if (r.state == outboxStatePnd) != (el > 0) {
		return bad("a %s record with %d envelope bytes", r.stateName(), el)
	}
	return r, nil
}

// queueOwnTxn records a new own envelope as pending in txn: the caller
// records the envelope's message (or event) in the same transaction, so
// no own envelope is recorded without being queued.
func queueOwnTxn(txn *badger.Txn, g groupstate.GroupID, env *envelope.Envelope, now time.Time) error {
	rec := &outboxRec{state: outboxStatePnd, created: now, next: now, env: env.Bytes()}
	return txn.Set(outboxKey(g, env.ID()), rec.marshal())
}
