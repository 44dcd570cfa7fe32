package groupstate

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/meshnode/meshnode/keymgmt"
)

// Equivocation (ARCHITECTURE §11): two payloads validly signed by one
// author, of one membership, with one sequence number and different
// contents. An honest node never signs two payloads with one number (it
// records each before it sends it), so the pair proves that its author
// showed members different messages. It is evidence: any member can check
// it with nothing but the two payloads (and, in a managed group, its
// chain, to tell memberships apart), shows one notice naming the author,
// and passes the two envelopes on.
//
// Contents are the signed fields: two copies of one payload in different
// envelopes (another nonce, another padding — anyone holding the write
// key can re-seal a payload) are the same message, never an
// equivocation.

// DigestLabel prefixes the hash of a payload's signed fields.
const DigestLabel = "meshnode/v1/payload-digest"

// Digest is SHA-256(DigestLabel ‖ the payload's signed fields): equal for
// two copies of one message, different for two messages.
func (p *Payload) Digest() [32]byte {
	h := sha256.New()
	h.Write([]byte(DigestLabel))
	h.Write(p.signedFields())
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// Equivocation is the evidence: A and B, ordered by their encoding.
type Equivocation struct {
	A, B *Payload
}

// NewEquivocation checks two payloads as evidence (Verify) and returns
// them in canonical order.
func NewEquivocation(a, b *Payload) (*Equivocation, error) {
	if a == nil || b == nil {
		return nil, fmt.Errorf("%w: missing payload", ErrEquivocationMalformed)
	}
	e := &Equivocation{A: a, B: b}
	if bytes.Compare(a.marshal(), b.marshal()) > 0 {
		e.A, e.B = b, a
	}
	return e, e.Verify()
}

// Author returns the accused author's key.
func (e *Equivocation) Author() [32]byte { return e.A.Author }

// Seq returns the sequence number both payloads carry.
func (e *Equivocation) Seq() uint64 { return e.A.Seq }

// Verify checks the evidence without any state: both payloads are well
// formed and validly signed by their author, of one group, author and
// sequence number, and their signed contents differ. In a managed group
// the caller also checks that both belong to one membership
// (SameMembership): a rejoiner starts its numbers again.
func (e *Equivocation) Verify() error {
	if e == nil || e.A == nil || e.B == nil {
		return fmt.Errorf("%w: missing payload", ErrEquivocationMalformed)
	}
	for i, p := range []*Payload{e.A, e.B} {
		if err := p.VerifyAuthor(); err != nil {
			return fmt.Errorf("%w: payload %d: %w", ErrEquivocationMalformed, i, err)
		}
	}
	switch {
	case e.A.GroupID != e.B.GroupID:
		return fmt.Errorf("%w: payloads of different groups", ErrEquivocationMalformed)
	case e.A.Author != e.B.Author:
		return fmt.Errorf("%w: payloads of different authors", ErrEquivocationMalformed)
	case e.A.Seq != e.B.Seq:
		return fmt.Errorf("%w: sequence numbers %d and %d", ErrEquivocationMalformed, e.A.Seq, e.B.Seq)
	case e.A.Digest() == e.B.Digest():
		return fmt.Errorf("%w: the same message twice", ErrEquivocationMalformed)
	case bytes.Compare(e.A.marshal(), e.B.marshal()) > 0:
		return fmt.Errorf("%w: payloads out of order", ErrEquivocationMalformed)
	}
	return nil
}

// SameMembership checks, for a managed group, that both payloads belong
// to one membership of their author as this chain judges them: heads it
// holds, and the same add event. Payloads whose heads it does not hold
// cannot be told apart, so they are no evidence yet (ErrUnknownHead).
func (e *Equivocation) SameMembership(c *Chain) error {
	var added [2]EventID
	for i, p := range []*Payload{e.A, e.B} {
		ms, err := c.membershipOf(p)
		if err != nil {
			return err
		}
		added[i] = ms
	}
	if added[0] != added[1] {
		return fmt.Errorf("%w: the payloads belong to two memberships of %s (it left and was added again)",
			ErrEquivocationMalformed, keymgmt.Fingerprint(e.A.Author[:]))
	}
	return nil
}

// membershipOf returns the event that added a payload's author for the
// membership its head (or, for a state event carrying the head, its
// parent) places it in.
func (c *Chain) membershipOf(p *Payload) (EventID, error) {
	at := EventID(p.StateHead)
	if p.Kind == KindStateEvent {
		if ev, err := ParseEvent(p.Body); err == nil {
			at = JudgedAt(p, ev.ID(), ev.Parent)
		}
	}
	e, ok := c.entries[at]
	if !ok {
		return EventID{}, fmt.Errorf("%w: head %s", ErrUnknownHead, at.Short())
	}
	if e.onMain {
		m, ok := c.markAt(p.Author, e.at)
		if !ok || m.role == 0 {
			return EventID{}, fmt.Errorf("%w: at state %s", ErrNotMember, at.Short())
		}
		return m.added, nil
	}
	st, err := c.stateAt(at)
	if err != nil {
		return EventID{}, err
	}
	mb, ok := st.Members[p.Author]
	if !ok {
		return EventID{}, fmt.Errorf("%w: at state %s", ErrNotMember, at.Short())
	}
	return mb.Added, nil
}

// Equivocation evidence encoding, version 1 (integers big-endian):
//
//	1 version ‖ 4+LA payload A ‖ 4+LB payload B
//
// A and B are payload encodings (ParsePayload), A's bytes sorting first,
// so one pair has one encoding.
const equivocationVersion = 1

// MarshalEquivocation encodes verified evidence.
func MarshalEquivocation(e *Equivocation) ([]byte, error) {
	if err := e.Verify(); err != nil {
		return nil, err
	}
	a, b := e.A.marshal(), e.B.marshal()
	out := make([]byte, 0, 1+8+len(a)+len(b))
	out = append(out, equivocationVersion)
	out = binary.BigEndian.AppendUint32(out, uint32(len(a)))
	out = append(out, a...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(b)))
	return append(out, b...), nil
}

// ParseEquivocation decodes and verifies evidence: forged evidence (a
// payload not validly signed, two copies of one message, different
// authors or numbers) is refused and accuses no one.
func ParseEquivocation(b []byte) (*Equivocation, error) {
	if len(b) > 1+2*(4+MaxPayloadSize) {
		return nil, fmt.Errorf("%w: %d bytes", ErrEquivocationMalformed, len(b))
	}
	d := newDecoder(b)
	if v := d.u8(); !d.ok || v != equivocationVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrEquivocationMalformed, v, equivocationVersion)
	}
	var ps [2]*Payload
	for i := range ps {
		n := d.u32()
		raw := d.take(int(min(n, uint32(MaxPayloadSize+1))))
		if !d.ok || n > MaxPayloadSize {
			return nil, fmt.Errorf("%w: payload %d truncated", ErrEquivocationMalformed, i)
		}
		p, err := ParsePayload(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: payload %d: %w", ErrEquivocationMalformed, i, err)
		}
		ps[i] = p
	}
	if !d.done() {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrEquivocationMalformed, d.remaining())
	}
	e := &Equivocation{A: ps[0], B: ps[1]}
	return e, e.Verify()
}
