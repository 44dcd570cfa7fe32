package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
)

// The rejection log (ARCHITECTURE §11: nothing is dropped silently). Every
// envelope of a group's mailbox that a member refuses, every message it
// shows with a mark (a sent time out of bounds, a message in flight at its
// author's removal) and every equivocation is recorded per group ('J'),
// with a stable reason code, the author's key when known, and counted in
// metrics by reason. Payloads kept aside until the state chain grows are
// listed with them as held. GroupRejections lists them (the API's
// /groups/{group}/rejections and `meshnode group rejections`). The log is
// bounded so that junk cannot flush evidence (rejectionlog.go).

// RejectionKind says what happened to a logged envelope.
type RejectionKind uint8

const (
	// RejectionRefused: not shown, and not acted upon.
	RejectionRefused RejectionKind = 1
	// RejectionFlagged: shown, with a mark (Message.Flags).
	RejectionFlagged RejectionKind = 2
	// RejectionEquivocation: refused, and evidence that its author signed
	// two messages with one number.
	RejectionEquivocation RejectionKind = 3
	// RejectionHeld: kept aside until the state chain holds the head it
	// names (live, not logged).
	RejectionHeld RejectionKind = 4
)

// Short names for the kinds within the package.
const (
	rejRefused      = RejectionRefused
	rejFlagged      = RejectionFlagged
	rejEquivocation = RejectionEquivocation
	rejHeld         = RejectionHeld
)

// String names the kind: refused, flagged, equivocation, held.
func (k RejectionKind) String() string {
	switch k {
	case RejectionRefused:
		return "refused"
	case RejectionFlagged:
		return "flagged"
	case RejectionEquivocation:
		return "equivocation"
	case RejectionHeld:
		return "held"
	}
	return fmt.Sprintf("RejectionKind(%d)", uint8(k))
}

// Flags on shown messages (Message.Flags), also the reasons of their log
// entries.
const (
	// flagUnseenByRemover: shown before its author's removal (or
	// demotion) was known, and not among the messages the manager had
	// seen: members who learnt of the removal first refuse it.
	flagUnseenByRemover = "unseen_by_remover"
	// flagNotDelivered: on a removed member's own node, an own message
	// the manager had not seen when it removed the member.
	flagNotDelivered = "not_delivered_removed"
)

// Reason codes of refusals (stable: scripts and the web app match them).
const (
	ReasonAfterRemoval  = "after_removal"
	ReasonNotMember     = "not_member"
	ReasonNotWriter     = "not_writer"
	ReasonForeignHead   = "foreign_head"
	ReasonHeadEpoch     = "head_of_other_epoch"
	ReasonReplay        = "replay"
	ReasonConflict      = "conflicting_copy"
	ReasonEquivocation  = "equivocation"
	ReasonSignature     = "bad_signature"
	ReasonUndecryptable = "undecryptable"
	ReasonMalformed     = "malformed"
	ReasonMisplaced     = "misplaced"
	ReasonUnauthorized  = "unauthorized_event"
	ReasonKeyUpdate     = "bad_key_update"
	ReasonRequest       = "bad_request"
	ReasonHeldFull      = "held_full"
	ReasonUnknownHead   = "unknown_head"
	ReasonInvalid       = "invalid"
	// ReasonNotAuthor: an edit or delete of another member's message
	// (refs.go).
	ReasonNotAuthor = "not_author"
	// ReasonBadReference: a reply, reaction, edit or delete of a message
	// that cannot be referenced (a direct, a profile, a control payload).
	ReasonBadReference = "bad_reference"
)

// reasonOf classifies a refusal.
func reasonOf(err error) string {
	for _, r := range []struct {
		err    error
		reason string
	}{
		{groupstate.ErrRevoked, ReasonAfterRemoval},
		{groupstate.ErrNotMember, ReasonNotMember},
		{groupstate.ErrNotWriter, ReasonNotWriter},
		{groupstate.ErrForeignHead, ReasonForeignHead},
		{groupstate.ErrHeadEpoch, ReasonHeadEpoch},
		{groupstate.ErrEquivocation, ReasonEquivocation},
		{errConflictUnproven, ReasonConflict},
		{errReplay, ReasonReplay},
		{errHeldFull, ReasonHeldFull},
		{groupstate.ErrAuthorSignature, ReasonSignature},
		{groupstate.ErrEnvelopeSignature, ReasonSignature},
		{groupstate.ErrBadSignature, ReasonSignature},
		{groupstate.ErrNotSigned, ReasonSignature},
		{groupstate.ErrDecrypt, ReasonUndecryptable},
		{groupstate.ErrWrongGroup, ReasonMisplaced},
		{groupstate.ErrWrongEpoch, ReasonMisplaced},
		{groupstate.ErrWrongMailbox, ReasonMisplaced},
		{groupstate.ErrUnauthorized, ReasonUnauthorized},
		{groupstate.ErrInvalidEvent, ReasonUnauthorized},
		{groupstate.ErrLastManager, ReasonUnauthorized},
		{groupstate.ErrStaleKeyUpdate, ReasonKeyUpdate},
		{groupstate.ErrKeyUpdateInvalid, ReasonKeyUpdate},
		{groupstate.ErrKeyUpdateMalformed, ReasonKeyUpdate},
		{groupstate.ErrRequestExpired, ReasonRequest},
		{groupstate.ErrRequestMalformed, ReasonRequest},
		{groupstate.ErrPadding, ReasonMalformed},
		{groupstate.ErrPayloadMalformed, ReasonMalformed},
		{groupstate.ErrEventMalformed, ReasonMalformed},
		{groupstate.ErrUnknownKind, ReasonMalformed},
		{groupstate.ErrProfileMalformed, ReasonMalformed},
		{groupstate.ErrTooLong, ReasonMalformed},
		{groupstate.ErrNotAuthor, ReasonNotAuthor},
		{groupstate.ErrRefTarget, ReasonBadReference},
		{groupstate.ErrRefMalformed, ReasonMalformed},
	} {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return ReasonInvalid
}

// GroupRejection is one entry of a group's rejection log.
type GroupRejection struct {
	At   time.Time
	Kind RejectionKind
	// Reason is a stable code (Reason* constants, or a flag such as
	// sent_in_future); Detail says it in words.
	Reason string
	Detail string
	// Author is the fingerprint of the payload's author ("" when the
	// envelope did not open to a signed payload).
	Author   string
	Envelope envelope.ID
	Seq      uint64
	Epoch    uint64
}

// groupRejection is a log record as stored.
type groupRejection struct {
	At        time.Time
	Kind      RejectionKind
	Reason    string
	Detail    string
	Author    [32]byte
	HasAuthor bool
	Envelope  envelope.ID
	Seq       uint64
	Epoch     uint64
}

// Log record (key: rejectionlog.go), version 1:
//
//	1 version ‖ 8 at (Unix ms) ‖ 1 kind ‖ 1+N reason ‖ 2+N detail ‖
//	32 envelope ‖ 1 has author (0/1) ‖ [32 author] ‖ 8 seq ‖ 8 epoch
const (
	rejectionVersion = 1
	maxReasonLen     = 64
	maxDetailLen     = 1024
)

func (r *groupRejection) marshal() []byte {
	reason, detail := clip(r.Reason, maxReasonLen), clip(r.Detail, maxDetailLen)
	b := make([]byte, 0, 1+8+1+1+len(reason)+2+len(detail)+32+1+32+16)
	b = append(b, rejectionVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(r.At.UnixMilli()))
	b = append(b, byte(r.Kind), byte(len(reason)))
	b = append(b, reason...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(detail)))
	b = append(b, detail...)
	b = append(b, r.Envelope[:]...)
	if r.HasAuthor {
		b = append(b, 1)
		b = append(b, r.Author[:]...)
	} else {
		b = append(b, 0)
	}
	b = binary.BigEndian.AppendUint64(b, r.Seq)
	return binary.BigEndian.AppendUint64(b, r.Epoch)
}

// clip cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// decodeRejection decodes a log record strictly.
func decodeRejection(b []byte) (*groupRejection, error) {
	bad := func(what string) (*groupRejection, error) {
		return nil, fmt.Errorf("%w: rejection record: %s", ErrCorrupt, what)
	}
	if len(b) < 1+8+1+1 || b[0] != rejectionVersion {
		return bad("version or length")
	}
	r := &groupRejection{At: time.UnixMilli(int64(binary.BigEndian.Uint64(b[1:9]))).UTC(), Kind: RejectionKind(b[9])}
	if r.Kind < rejRefused || r.Kind > rejEquivocation {
		return bad("kind")
	}
	n := int(b[10])
	rest := b[11:]
	if n > maxReasonLen || len(rest) < n+2 {
		return bad("reason")
	}
	r.Reason, rest = string(rest[:n]), rest[n:]
	n = int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if n > maxDetailLen || len(rest) < n+32+1 {
		return bad("detail")
	}
	r.Detail, rest = string(rest[:n]), rest[n:]
	copy(r.Envelope[:], rest)
	rest = rest[32:]
	switch rest[0] {
	case 0:
		rest = rest[1:]
	case 1:
		if len(rest) < 33 {
			return bad("author")
		}
		r.HasAuthor = true
		copy(r.Author[:], rest[1:33])
		rest = rest[33:]
	default:
		return bad("author flag")
	}
	if len(rest) != 16 {
		return bad("length")
	}
	r.Seq = binary.BigEndian.Uint64(rest)
	r.Epoch = binary.BigEndian.Uint64(rest[8:])
	if !utf8.ValidString(r.Reason) || !utf8.ValidString(r.Detail) {
		return bad("text")
	}
	return r, nil
}

// putRejection logs an entry in txn and counts it; the log keeps within
// its bounds (rejectionlog.go). Call with m.mu held.
func (m *member) putRejection(txn *badger.Txn, e *groupEntry, r groupRejection) error {
	if m.met != nil {
		switch r.Kind {
		case rejFlagged:
			m.met.flaggedMsgs.WithLabelValues(r.Reason).Inc()
		default:
			m.met.rejectedMsgs.WithLabelValues(r.Reason).Inc()
		}
	}
	return m.logPut(txn, e, &r)
}

// logTxn logs what happened to an opened payload. Call with m.mu held.
func (m *member) logTxn(txn *badger.Txn, e *groupEntry, kind RejectionKind, reason, detail string, p *groupstate.Payload, id envelope.ID, now time.Time) error {
	r := groupRejection{At: now.UTC(), Kind: kind, Reason: reason, Detail: detail, Envelope: id}
	if p != nil {
		r.Author, r.HasAuthor, r.Seq, r.Epoch = p.Author, true, p.Seq, p.Epoch
	}
	return m.putRejection(txn, e, r)
}

// logRefusal logs a refused envelope with the reason perr gives (its
// author when perr carries one). Call with m.mu held.
func (m *member) logRefusal(txn *badger.Txn, e *groupEntry, id envelope.ID, epoch uint64, perr error) error {
	r := groupRejection{At: time.Now().UTC(), Kind: rejRefused, Reason: reasonOf(perr), Detail: perr.Error(), Envelope: id, Epoch: epoch}
	if r.Reason == ReasonEquivocation {
		r.Kind = rejEquivocation
	}
	var ae *authorError
	if errors.As(perr, &ae) {
		r.Author, r.HasAuthor, r.Seq, r.Epoch = ae.author, true, ae.seq, ae.epoch
	}
	return m.putRejection(txn, e, r)
}

// GroupRejections lists a group's rejection log, oldest first, the
// latest limit entries (0: all), followed by the payloads held until the
// state chain grows.
func (n *Node) GroupRejections(group string, limit int) ([]GroupRejection, error) {
	m, gid, err := n.lookup(group)
	if err != nil {
		return nil, err
	}
	out, err := m.listRejections(gid, limit)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	err = m.db.scan(gkey(pfxDeferred, gid), func(k, v []byte) error {
		p, err := decodeDeferred(v)
		if err != nil {
			return nil // refused (and logged) at its next retry
		}
		var id envelope.ID
		copy(id[:], k[len(k)-32:])
		out = append(out, GroupRejection{At: now, Kind: rejHeld, Reason: ReasonUnknownHead,
			Detail: fmt.Sprintf("held until the group's state chain holds the head %s it names",
				groupstate.EventID(p.StateHead).Short()),
			Author: keymgmt.Fingerprint(p.AuthorKey()), Envelope: id, Seq: p.Seq, Epoch: p.Epoch})
		return nil
	})
	return out, err
}

func (r *groupRejection) public() GroupRejection {
	out := GroupRejection{At: r.At, Kind: r.Kind, Reason: r.Reason, Detail: r.Detail, Envelope: r.Envelope, Seq: r.Seq, Epoch: r.Epoch}
	if r.HasAuthor {
		out.Author = keymgmt.Fingerprint(r.Author[:])
	}
	return out
}
