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

// Outbox record, version 2 (member database, key 'U' gid id(32); integers
// big-endian, times Unix milliseconds):
//
//	0   1  version (2)
//	1   1  state: 1 pending, 2 stored, 3 failed
//	2   32 mailbox
//	34  8  created
//	42  8  next attempt (as of the last write; 0 unless pending)
//	50  8  done: when it was stored or given up (0 while pending)
//	58  4  attempts (as of the last write)
//	62  1  hosts that acknowledged it, H (at most maxStoredBy)
//	   H × (1 length ‖ peer ID bytes, at most maxPeerIDLen)
//	    2  reason length R (at most maxOutboxReason), then R bytes of UTF-8
//
// A pending envelope's encoding is kept beside its record, under the
// record's key and 'e', until a host stores it or the node gives up, so
// the outbox depends neither on the node's host store (whose retention
// may drop it) nor on memory: the loop holds an envelope only while it
// relays it.
//
// Version 1 (written until the envelope moved out of the record) lacked
// the mailbox and ended with the envelope: 4 bytes of length E (0 unless
// pending), then E bytes. It is still read (outboxRec.legacyEnv), and a
// pending one is rewritten as version 2 when the outbox loads it.
const (
	outboxVersion   = 2
	outboxVersion1  = 1
	outboxFixed     = 1 + 1 + 32 + 8 + 8 + 8 + 4 + 1
	outboxFixed1    = 1 + 1 + 8 + 8 + 8 + 4 + 1
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
	mailbox  envelope.MailboxID
	created  time.Time
	next     time.Time
	done     time.Time
	attempts uint32
	storedBy []peer.ID
	reason   string
	// legacyEnv is the envelope a version 1 pending record carried.
	legacyEnv []byte
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

// outboxEnvKey is where a pending envelope's encoding is kept.
func outboxEnvKey(g groupstate.GroupID, id envelope.ID) []byte {
	return gkey(pfxOutbox, g, id[:], []byte{'e'})
}

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
	b := make([]byte, 0, outboxFixed+len(by)*40+2+len(reason))
	b = append(b, outboxVersion, r.state)
	b = append(b, r.mailbox[:]...)
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
	return append(b, reason...)
}

// decodeOutboxRec checks every length exactly; a record that does not
// decode is ErrCorrupt.
func decodeOutboxRec(b []byte) (*outboxRec, error) {
	bad := func(format string, args ...any) (*outboxRec, error) {
		return nil, fmt.Errorf("%w: outbox record: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
	if len(b) < 1 {
		return bad("empty")
	}
	v1 := b[0] == outboxVersion1
	fixed := outboxFixed
	switch {
	case v1:
		fixed = outboxFixed1
	case b[0] != outboxVersion:
		return bad("version %d", b[0])
	}
	if len(b) < fixed {
		return bad("%d bytes, shorter than %d", len(b), fixed)
	}
	r := &outboxRec{state: b[1]}
	if r.state < outboxStatePnd || r.state > outboxStateBad {
		return bad("state %d", r.state)
	}
	at := 2
	if !v1 {
		copy(r.mailbox[:], b[2:34])
		at = 34
	}
	r.created = fromMillis(binary.BigEndian.Uint64(b[at:]))
	r.next = fromMillis(binary.BigEndian.Uint64(b[at+8:]))
	r.done = fromMillis(binary.BigEndian.Uint64(b[at+16:]))
	r.attempts = binary.BigEndian.Uint32(b[at+24:])
	n := int(b[at+28])
	if n > maxStoredBy {
		return bad("%d hosts, at most %d", n, maxStoredBy)
	}
	rest := b[fixed:]
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
	if !v1 {
		if len(rest) != 0 {
			return bad("%d bytes after the reason", len(rest))
		}
		return r, nil
	}
	if len(rest) < 4 {
		return bad("truncated envelope length")
	}
	el := binary.BigEndian.Uint32(rest)
	rest = rest[4:]
	if uint64(len(rest)) != uint64(el) || el > envelope.AbsoluteMaxSize {
		return bad("envelope of %d bytes, %d present", el, len(rest))
	}
	if (r.state == outboxStatePnd) != (el > 0) {
		return bad("a %s record with %d envelope bytes", r.stateName(), el)
	}
	if el > 0 {
		r.legacyEnv = append([]byte(nil), rest...)
	}
	return r, nil
}

// queueOwnTxn records a new own envelope as pending in txn, with its
// encoding: the caller records the envelope's message (or event) in the
// same transaction, so no own envelope is recorded without being queued.
func queueOwnTxn(txn *badger.Txn, g groupstate.GroupID, env *envelope.Envelope, now time.Time) error {
	rec := &outboxRec{state: outboxStatePnd, mailbox: env.Mailbox(), created: now, next: now}
	if err := txn.Set(outboxKey(g, env.ID()), rec.marshal()); err != nil {
		return err
	}
	return txn.Set(outboxEnvKey(g, env.ID()), env.Bytes())
}
