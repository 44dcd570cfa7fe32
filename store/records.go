package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/meshnode/meshnode/envelope"
)

// Key prefixes. Each is one byte; doc.go gives the full layout.
const (
	prefixSchema    = 'v' // "v"                      -> schema version
	prefixMeta      = 'n' // "n"                      -> store-instance meta
	prefixState     = 's' // "s" ‖ mailbox            -> mailbox state
	prefixArrival   = 'm' // "m" ‖ mailbox ‖ seq      -> id ‖ arrival ‖ envelope
	prefixIndex     = 'i' // "i" ‖ mailbox ‖ id       -> seq ‖ arrival ‖ size
	prefixTombstone = 't' // "t" ‖ mailbox ‖ id       -> expiry
)

// Record versions and sizes.
const (
	schemaVersion = 1

	metaVersion = 1
	metaSize    = 1 + 8 + 8 // version ‖ instance ‖ created

	stateVersion       = 1
	stateFlagPolicy    = 1 << 0
	stateBaseSize      = 1 + 8*5 + 1 // version ‖ next ‖ count ‖ bytes ‖ floor ‖ tombstones ‖ flags
	statePolicySize    = 8 * 5       // maxAge ‖ maxBytes ‖ maxCount ‖ quotaBytes ‖ quotaCount
	stateWithPolicy    = stateBaseSize + statePolicySize
	indexSize          = 8 + 8 + 4 // seq ‖ arrival ‖ size
	tombstoneSize      = 8         // expiry
	arrivalHeaderSize  = len(envelope.ID{}) + 8
	mailboxKeySize     = 1 + len(envelope.MailboxID{})
	arrivalKeySize     = mailboxKeySize + 8
	idKeySize          = mailboxKeySize + len(envelope.ID{})
	cursorVersion      = 1
	cursorCheckSize    = 4
	cursorSize         = 1 + 8 + 8 + cursorCheckSize
	cursorCheckLabel   = "meshnode/v1/store-cursor"
	maxStoredEnvelopes = 1 << 62 // sanity bound for counters read from disk
)

var (
	keySchema = []byte{prefixSchema}
	keyMeta   = []byte{prefixMeta}
)

func mailboxKey(prefix byte, m envelope.MailboxID) []byte {
	k := make([]byte, mailboxKeySize, idKeySize)
	k[0] = prefix
	copy(k[1:], m[:])
	return k
}

func stateKey(m envelope.MailboxID) []byte { return mailboxKey(prefixState, m) }

func arrivalKey(m envelope.MailboxID, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(mailboxKey(prefixArrival, m), seq)
}

func indexKey(m envelope.MailboxID, id envelope.ID) []byte {
	return append(mailboxKey(prefixIndex, m), id[:]...)
}

func tombstoneKey(m envelope.MailboxID, id envelope.ID) []byte {
	return append(mailboxKey(prefixTombstone, m), id[:]...)
}

// seqFromArrivalKey returns the sequence number of an arrival key of m.
func seqFromArrivalKey(k []byte) (uint64, error) {
	if len(k) != arrivalKeySize || k[0] != prefixArrival {
		return 0, fmt.Errorf("%w: arrival key of %d bytes", ErrCorrupt, len(k))
	}
	return binary.BigEndian.Uint64(k[mailboxKeySize:]), nil
}

// idFromKey returns the envelope ID of an index or tombstone key.
func idFromKey(k []byte, prefix byte) (envelope.ID, error) {
	var id envelope.ID
	if len(k) != idKeySize || k[0] != prefix {
		return id, fmt.Errorf("%w: %q key of %d bytes", ErrCorrupt, prefix, len(k))
	}
	copy(id[:], k[mailboxKeySize:])
	return id, nil
}

// mailboxFromStateKey returns the mailbox of a state key.
func mailboxFromStateKey(k []byte) (envelope.MailboxID, error) {
	var m envelope.MailboxID
	if len(k) != mailboxKeySize || k[0] != prefixState {
		return m, fmt.Errorf("%w: state key of %d bytes", ErrCorrupt, len(k))
	}
	copy(m[:], k[1:])
	return m, nil
}

// InstanceID identifies one store instance. It is drawn at random when the
// store is created and persisted, so cursors from another store (or from a
// store that was wiped and recreated) are recognised as foreign.
type InstanceID [8]byte

// String returns the instance ID in hex.
func (i InstanceID) String() string { return fmt.Sprintf("%x", i[:]) }

type meta struct {
	instance InstanceID
	created  time.Time
}

func encodeMeta(m meta) []byte {
	b := make([]byte, 0, metaSize)
	b = append(b, metaVersion)
	b = append(b, m.instance[:]...)
	return binary.BigEndian.AppendUint64(b, uint64(m.created.UnixNano()))
}

func decodeMeta(b []byte) (meta, error) {
	var m meta
	if len(b) != metaSize {
		return m, fmt.Errorf("%w: meta record of %d bytes, want %d", ErrCorrupt, len(b), metaSize)
	}
	if b[0] != metaVersion {
		return m, fmt.Errorf("%w: meta record version %d, want %d", ErrCorrupt, b[0], metaVersion)
	}
	copy(m.instance[:], b[1:9])
	m.created = time.Unix(0, int64(binary.BigEndian.Uint64(b[9:])))
	return m, nil
}

func encodeSchema(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func decodeSchema(b []byte) (uint32, error) {
	if len(b) != 4 {
		return 0, fmt.Errorf("%w: schema record of %d bytes, want 4", ErrCorrupt, len(b))
	}
	return binary.BigEndian.Uint32(b), nil
}

// mailboxState is the per-mailbox record. The live envelopes of a mailbox
// are exactly the sequence numbers (floor, next-1]: sequence numbers are
// assigned without gaps and retention removes oldest first, so count is
// always next-1-floor (the decoder checks it).
type mailboxState struct {
	next       uint64 // next sequence number to assign; starts at 1
	count      uint64
	bytes      uint64
	floor      uint64 // every seq <= floor has been removed by retention
	tombstones uint64
	policy     *MailboxPolicy // per-mailbox override, nil = store defaults
}

func newMailboxState() *mailboxState { return &mailboxState{next: 1} }

func (st *mailboxState) clone() *mailboxState {
	c := *st
	if st.policy != nil {
		p := *st.policy
		c.policy = &p
	}
	return &c
}

func encodeState(st *mailboxState) []byte {
	b := make([]byte, 0, stateWithPolicy)
	b = append(b, stateVersion)
	b = binary.BigEndian.AppendUint64(b, st.next)
	b = binary.BigEndian.AppendUint64(b, st.count)
	b = binary.BigEndian.AppendUint64(b, st.bytes)
	b = binary.BigEndian.AppendUint64(b, st.floor)
	b = binary.BigEndian.AppendUint64(b, st.tombstones)
	if st.policy == nil {
		return append(b, 0)
	}
	b = append(b, stateFlagPolicy)
	p := st.policy
	for _, v := range []int64{int64(p.MaxAge), p.MaxBytes, p.MaxCount, p.QuotaBytes, p.QuotaCount} {
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	return b
}

func decodeState(b []byte) (*mailboxState, error) {
	if len(b) != stateBaseSize && len(b) != stateWithPolicy {
		return nil, fmt.Errorf("%w: mailbox state of %d bytes", ErrCorrupt, len(b))
	}
	if b[0] != stateVersion {
		return nil, fmt.Errorf("%w: mailbox state version %d, want %d", ErrCorrupt, b[0], stateVersion)
	}
	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[1+8*i:]) }
	st := &mailboxState{next: u(0), count: u(1), bytes: u(2), floor: u(3), tombstones: u(4)}
	flags := b[stateBaseSize-1]
	switch {
	case flags == 0 && len(b) == stateBaseSize:
	case flags == stateFlagPolicy && len(b) == stateWithPolicy:
		v := func(i int) int64 { return int64(binary.BigEndian.Uint64(b[stateBaseSize+8*i:])) }
		st.policy = &MailboxPolicy{MaxAge: time.Duration(v(0)), MaxBytes: v(1), MaxCount: v(2), QuotaBytes: v(3), QuotaCount: v(4)}
		if err := st.policy.validate(); err != nil {
			return nil, fmt.Errorf("%w: mailbox state policy: %v", ErrCorrupt, err)
		}
	default:
		return nil, fmt.Errorf("%w: mailbox state flags %#x with %d bytes", ErrCorrupt, flags, len(b))
	}
	switch {
	case st.next == 0 || st.next > maxStoredEnvelopes:
		return nil, fmt.Errorf("%w: mailbox next sequence %d", ErrCorrupt, st.next)
	case st.floor >= st.next:
		return nil, fmt.Errorf("%w: mailbox floor %d not below next sequence %d", ErrCorrupt, st.floor, st.next)
	case st.count != st.next-1-st.floor:
		return nil, fmt.Errorf("%w: mailbox count %d, but sequence range (%d, %d] holds %d", ErrCorrupt, st.count, st.floor, st.next-1, st.next-1-st.floor)
	case (st.count == 0) != (st.bytes == 0) || st.bytes > maxStoredEnvelopes || st.tombstones > maxStoredEnvelopes:
		return nil, fmt.Errorf("%w: mailbox holds %d envelopes of %d bytes, %d tombstones", ErrCorrupt, st.count, st.bytes, st.tombstones)
	}
	return st, nil
}

// indexRecord is the value of an ID-index key.
type indexRecord struct {
	seq     uint64
	arrival int64 // unix nanoseconds
	size    uint32
}

func encodeIndex(r indexRecord) []byte {
	b := make([]byte, 0, indexSize)
	b = binary.BigEndian.AppendUint64(b, r.seq)
	b = binary.BigEndian.AppendUint64(b, uint64(r.arrival))
	return binary.BigEndian.AppendUint32(b, r.size)
}

func decodeIndex(b []byte) (indexRecord, error) {
	var r indexRecord
	if len(b) != indexSize {
		return r, fmt.Errorf("%w: index record of %d bytes, want %d", ErrCorrupt, len(b), indexSize)
	}
	r.seq = binary.BigEndian.Uint64(b)
	r.arrival = int64(binary.BigEndian.Uint64(b[8:]))
	r.size = binary.BigEndian.Uint32(b[16:])
	if r.seq == 0 || r.seq > maxStoredEnvelopes {
		return r, fmt.Errorf("%w: index record sequence %d", ErrCorrupt, r.seq)
	}
	if r.size < envelope.Overhead || r.size > envelope.AbsoluteMaxSize {
		return r, fmt.Errorf("%w: index record size %d", ErrCorrupt, r.size)
	}
	return r, nil
}

func encodeArrival(id envelope.ID, arrival int64, env []byte) []byte {
	b := make([]byte, 0, arrivalHeaderSize+len(env))
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(arrival))
	return append(b, env...)
}

// decodeArrivalHeader returns the ID and arrival time of an arrival record
// and the envelope bytes (aliasing b) without decoding the envelope.
func decodeArrivalHeader(b []byte) (envelope.ID, int64, []byte, error) {
	var id envelope.ID
	if len(b) < arrivalHeaderSize+envelope.Overhead {
		return id, 0, nil, fmt.Errorf("%w: arrival record of %d bytes", ErrCorrupt, len(b))
	}
	copy(id[:], b)
	arrival := int64(binary.BigEndian.Uint64(b[len(id):]))
	return id, arrival, b[arrivalHeaderSize:], nil
}

// decodeArrival decodes an arrival record fully: the envelope must parse and
// hash to the recorded ID. Decode copies, so b may be reused afterwards.
func decodeArrival(b []byte) (*envelope.Envelope, int64, error) {
	id, arrival, raw, err := decodeArrivalHeader(b)
	if err != nil {
		return nil, 0, err
	}
	env, err := envelope.Decode(raw, envelope.AbsoluteMaxSize)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: stored envelope %s: %v", ErrCorrupt, id.Short(), err)
	}
	if env.ID() != id {
		return nil, 0, fmt.Errorf("%w: stored envelope hashes to %s, recorded as %s", ErrCorrupt, env.ID().Short(), id.Short())
	}
	return env, arrival, nil
}

func encodeTombstone(expiry int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(expiry)) }

func decodeTombstone(b []byte) (int64, error) {
	if len(b) != tombstoneSize {
		return 0, fmt.Errorf("%w: tombstone of %d bytes, want %d", ErrCorrupt, len(b), tombstoneSize)
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

// Cursor is an opaque position in a mailbox's arrival order, returned by
// Page. A nil or empty cursor means "from the beginning". Callers store and
// send cursors back verbatim; they never build or inspect them.
type Cursor []byte

func cursorCheck(inst InstanceID, m envelope.MailboxID, seq uint64) [cursorCheckSize]byte {
	h := sha256.New()
	h.Write([]byte(cursorCheckLabel))
	h.Write(inst[:])
	h.Write(m[:])
	h.Write(binary.BigEndian.AppendUint64(nil, seq))
	var c [cursorCheckSize]byte
	copy(c[:], h.Sum(nil))
	return c
}

func encodeCursor(inst InstanceID, m envelope.MailboxID, seq uint64) Cursor {
	b := make([]byte, 0, cursorSize)
	b = append(b, cursorVersion)
	b = append(b, inst[:]...)
	b = binary.BigEndian.AppendUint64(b, seq)
	c := cursorCheck(inst, m, seq)
	return append(b, c[:]...)
}

// decodeCursor returns the sequence number a cursor of this store and
// mailbox points after. Anything else is ErrUnknownCursor: it is never
// read as "from the beginning".
func decodeCursor(c Cursor, inst InstanceID, m envelope.MailboxID) (uint64, error) {
	if len(c) != cursorSize {
		return 0, fmt.Errorf("%w: %d bytes, want %d", ErrUnknownCursor, len(c), cursorSize)
	}
	if c[0] != cursorVersion {
		return 0, fmt.Errorf("%w: cursor version %d, want %d", ErrUnknownCursor, c[0], cursorVersion)
	}
	if !bytes.Equal(c[1:9], inst[:]) {
		return 0, fmt.Errorf("%w: issued by store %x, this is %s", ErrUnknownCursor, c[1:9], inst)
	}
	seq := binary.BigEndian.Uint64(c[9:17])
	want := cursorCheck(inst, m, seq)
	if !bytes.Equal(c[17:], want[:]) {
		return 0, fmt.Errorf("%w: check value does not match (garbled, or a cursor of another mailbox)", ErrUnknownCursor)
	}
	return seq, nil
}
