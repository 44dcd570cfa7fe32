package node

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
)

// Admission of an opened payload (ARCHITECTURE §7, §11): what every
// member checks before it shows a payload or acts on its body, whatever
// the payload's author claims.
//
//  1. Managed groups: a state event in the body goes into the chain
//     first (it is signed by its own author and judged by Chain.Add), then
//     the payload is judged by groupstate's Chain.AdmitPayload at the head
//     it names: the author's membership, role, and — if a later event
//     removed or demoted it — the removal's seen set. A head the chain
//     does not hold yet keeps the payload aside ('Q', at most
//     maxDeferredPerAuthor per author, so one member cannot crowd out the
//     others') until the chain grows; once its epoch is closed, such a
//     head is the author's fault (groupstate.ErrForeignHead). A head on a
//     branch we hold is a split with the manager's signed evidence.
//  2. The sequence number, in its membership's sequence space (open
//     groups: the author's): a number seen before with the same signed
//     content is a replay (or a copy re-sealed by someone holding the
//     write key: the same message); with other content it is an
//     equivocation — evidence recorded once ('V'), one notice per author,
//     and both envelopes passed on to the group's hosts and topic so every
//     member learns it within one catch-up.
//  3. The sent time: placed in the display order between what it must
//     follow (parents, the author's previous message, its joining, the
//     group's creation) and its arrival; more than MaxClockSkew in the
//     future or before the author's joining is flagged.
//
// The sequence record ('S') of every admitted number keeps its envelope,
// the digest of its signed content and its place in the order: step 2
// compares against it, step 3 reads the previous number's place, and a
// removal finds through it the messages its author had not seen.

// Bounds on payloads kept aside.
const (
	// maxDeferredPerAuthor: payloads of one author waiting for the chain.
	maxDeferredPerAuthor = 64
	// maxDeferred: payloads of a group waiting for the chain.
	maxDeferred = 4096
)

// errReplay: a sequence number seen before, with the same content.
var errReplay = errors.New("replay")

// errConflictUnproven: a sequence number seen before with other content,
// whose first copy this node no longer holds (retention): it is refused
// without accusing anyone.
var errConflictUnproven = errors.New("conflicting copy of a message whose first copy is no longer held")

// authorError carries the author of a refused payload to the rejection
// log.
type authorError struct {
	author     [32]byte
	seq, epoch uint64
	err        error
}

func (e *authorError) Error() string { return e.err.Error() }
func (e *authorError) Unwrap() error { return e.err }

// authored wraps err with p's author (nil stays nil; errDeferred and
// errNotForMe stay as they are).
func authored(p *groupstate.Payload, err error) error {
	if err == nil || errors.Is(err, errDeferred) || errors.Is(err, errNotForMe) {
		return err
	}
	var ae *authorError
	if errors.As(err, &ae) {
		return err
	}
	return &authorError{author: p.Author, seq: p.Seq, epoch: p.Epoch, err: err}
}

// seqRec is the record of one admitted sequence number of a membership
// ('S' gid key(32) seq(8)): 32 envelope ID ‖ 32 digest of the signed
// content ‖ 8 order time (Unix ms) ‖ 8 epoch.
type seqRec struct {
	id     envelope.ID
	digest [32]byte
	order  int64
	epoch  uint64
}

const seqRecSize = 32 + 32 + 8 + 8

func (r seqRec) marshal() []byte {
	b := make([]byte, 0, seqRecSize)
	b = append(b, r.id[:]...)
	b = append(b, r.digest[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.order))
	return binary.BigEndian.AppendUint64(b, r.epoch)
}

// decodeSeqRec decodes a sequence record.
func decodeSeqRec(b []byte) (seqRec, error) {
	var r seqRec
	if len(b) != seqRecSize {
		return r, fmt.Errorf("%w: sequence record of %d bytes, want %d", ErrCorrupt, len(b), seqRecSize)
	}
	copy(r.id[:], b)
	copy(r.digest[:], b[32:])
	r.order = int64(binary.BigEndian.Uint64(b[64:]))
	r.epoch = binary.BigEndian.Uint64(b[72:])
	return r, nil
}

func seqRecKey(g groupstate.GroupID, key [32]byte, seq uint64) []byte {
	return gkey(pfxSeq, g, key[:], u64(seq))
}

// getSeqRec reads a sequence record.
func getSeqRec(txn *badger.Txn, g groupstate.GroupID, key [32]byte, seq uint64) (seqRec, bool, error) {
	it, err := txn.Get(seqRecKey(g, key, seq))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return seqRec{}, false, nil
	}
	if err != nil {
		return seqRec{}, false, err
	}
	v, err := it.ValueCopy(nil)
	if err != nil {
		return seqRec{}, false, err
	}
	r, err := decodeSeqRec(v)
	return r, err == nil, err
}

// admitted is what admit found out about a payload.
type admitted struct {
	// key is the sequence space (the membership, or the author in an open
	// group).
	key [32]byte
	// order is the payload's place in the display order (Unix ms).
	order int64
	// flags mark the displayed message (a sent time out of bounds).
	flags []string
	// ev is a state event carried in the body, and evErr the outcome of
	// adding it to the chain (nil, or ErrReplay, ErrUnknownParent, a fork).
	ev    *groupstate.Event
	evErr error
	// role is the author's role at the head the payload names (managed
	// groups).
	role groupstate.Role
}

// seqKeyOf returns the sequence space of this member's own payloads.
// Call with m.mu held.
func (m *member) seqKeyOf(e *groupEntry) [32]byte {
	self := [32]byte(m.id.SigningKey())
	if e.chain != nil {
		if _, k, ok := e.chain.MemberSince(self); ok {
			return k
		}
		return self
	}
	p := groupstate.Payload{Author: self}
	if len(e.local.Membership) == len(p.StateHead) {
		p.StateHead = [32]byte(e.local.Membership)
	}
	return groupstate.OpenSeqSpace(&p)
}

// admit decides whether an opened payload is shown or acted upon: its
// membership, sequence number and sent time (see the top of this file).
// It records the sequence number in txn. Call with m.mu held.
func (m *member) admit(txn *badger.Txn, e *groupEntry, p *groupstate.Payload, id envelope.ID, now time.Time) (*admitted, error) {
	a := &admitted{key: p.Author}
	var joined, created time.Time
	var added groupstate.EventID
	if e.chain != nil {
		var at groupstate.EventID
		if p.Kind == groupstate.KindStateEvent {
			ev, err := groupstate.ParseEvent(p.Body)
			if err != nil {
				return nil, err
			}
			if err := checkOwnRemoval(p, ev); err != nil {
				return nil, err
			}
			a.ev = ev
			a.evErr = m.addEvent(txn, e, p, id, ev)
			if a.evErr != nil && !errors.Is(a.evErr, groupstate.ErrReplay) && !errors.Is(a.evErr, groupstate.ErrUnknownParent) && !errors.Is(a.evErr, groupstate.ErrFork) {
				return nil, a.evErr
			}
			at = groupstate.JudgedAt(p, ev.ID(), ev.Parent)
		}
		ms, err := e.chain.AdmitPayload(p, at)
		if errors.Is(err, groupstate.ErrUnknownHead) {
			m.pushOwnHead(txn, e, p.Epoch)
			return nil, m.deferPayload(txn, e, p, id)
		}
		if errors.Is(err, groupstate.ErrForeignHead) {
			// The author's fault as far as this member can prove; if a
			// manager showed it another branch, our head's envelope lets
			// its node find the fork and pass both events on.
			m.pushOwnHead(txn, e, p.Epoch)
		}
		if err != nil {
			return nil, err
		}
		if ms.Split != nil {
			if err := m.reportSplit(txn, e, p.Epoch, ms.Split, p.Author); err != nil {
				return nil, err
			}
		}
		a.key, joined, created, a.role, added = ms.Key, ms.Joined, e.chain.Created(), ms.Role, ms.Added
	} else {
		// An open group: the membership the payload names (a member who
		// left and joined again numbers from 1 in a new one).
		a.key, created = groupstate.OpenSeqSpace(p), e.g.Created
	}

	digest := p.Digest()
	rec, found, err := getSeqRec(txn, e.g.ID, a.key, p.Seq)
	if err != nil {
		return nil, err
	}
	switch {
	case found && rec.id == id:
		// This very envelope, kept aside after its number was recorded
		// (a key update waiting for its rotation's parent): go on.
		a.order = rec.order
		return a, nil
	case found && rec.digest == digest:
		return nil, fmt.Errorf("%w: author %s sequence %d already seen", errReplay, keymgmt.Fingerprint(p.AuthorKey()), p.Seq)
	case found:
		return nil, m.equivocation(txn, e, p, id, a.key, rec)
	}
	obs, err := e.tracker.Observe(a.key, p.Seq)
	if err != nil {
		return nil, err
	}
	if obs.Status == groupstate.SeqDuplicate {
		// Seen, but its record is not kept (from before records existed,
		// out of the window, or a closed membership: seqprune.go): a copy
		// and another message cannot be told apart, so nobody is accused.
		return nil, fmt.Errorf("%w: author %s sequence %d already seen (its record is no longer kept)", errReplay, keymgmt.Fingerprint(p.AuthorKey()), p.Seq)
	}
	e.tracker.SetOwner(a.key, p.Author)
	if m.isSelf(p.AuthorKey()) && a.key == m.seqKeyOf(e) && p.Seq >= e.local.NextSeq {
		// An own envelope this database never recorded: the node stored
		// it and crashed before committing (managed.go relies on this to
		// recover its own state events and key updates). Never reuse its
		// sequence number.
		e.local.NextSeq = p.Seq + 1
	}
	pushHead(e.local, id)

	notBefore := created
	if joined.After(notBefore) {
		notBefore = joined
	}
	sent := p.SentTime()
	if f := groupstate.CheckSentTime(sent, now, notBefore); f != groupstate.TimeOK {
		a.flags = append(a.flags, f.String())
		detail := fmt.Sprintf("claims to be sent at %s", sent.UTC().Format(time.RFC3339))
		if f == groupstate.TimeBeforeJoin {
			detail += fmt.Sprintf(", before its author joined or the group was created (%s)", notBefore.UTC().Format(time.RFC3339))
		}
		if err := m.logTxn(txn, e, rejFlagged, f.String(), detail, p, id, now); err != nil {
			return nil, err
		}
	}
	lower := notBefore
	for _, par := range p.Parents {
		if t, ok, err := orderOf(txn, e.g.ID, par); err != nil {
			return nil, err
		} else if ok && t.After(lower) {
			lower = t
		}
	}
	if p.Seq > 1 {
		if prev, ok, err := getSeqRec(txn, e.g.ID, a.key, p.Seq-1); err != nil {
			return nil, err
		} else if ok && time.UnixMilli(prev.order).After(lower) {
			lower = time.UnixMilli(prev.order)
		}
	}
	a.order = groupstate.OrderTime(sent, lower, now).UnixMilli()
	rec = seqRec{id: id, digest: digest, order: a.order, epoch: p.Epoch}
	if err := m.recordSeqTxn(txn, e.g.ID, a.key, p.Seq, rec); err != nil {
		return nil, err
	}
	if e.chain != nil {
		// The last message a removal admitted may settle its membership.
		m.settleAuthor(e, p.Author, added, a.key)
	}
	return a, nil
}

// orderOf reads the order time recorded for a processed envelope ('I').
func orderOf(txn *badger.Txn, g groupstate.GroupID, id envelope.ID) (time.Time, bool, error) {
	it, err := txn.Get(gkey(pfxSeen, g, id[:]))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	v, err := it.ValueCopy(nil)
	if err != nil || len(v) != 8 {
		return time.Time{}, false, err
	}
	ms := int64(binary.BigEndian.Uint64(v))
	if ms <= 0 {
		return time.Time{}, false, nil // a refused envelope
	}
	return time.UnixMilli(ms), true, nil
}

// recordOwnSeqTxn records the sequence number of an own payload.
func (m *member) recordOwnSeqTxn(txn *badger.Txn, g groupstate.GroupID, o ownSeq) error {
	return m.recordSeqTxn(txn, g, o.key, o.seq, o.rec)
}

// ownSeq is an own payload's sequence record, written with the payload.
type ownSeq struct {
	key [32]byte
	seq uint64
	rec seqRec
}

// addEvent adds a state event carried by a payload to the chain and
// records what follows from it. It returns nil when the head moved,
// ErrReplay, ErrUnknownParent (kept until its parent arrives), a fork
// (reported with its evidence, passed on), or the reason the event is
// refused. Call with m.mu held.
func (m *member) addEvent(txn *badger.Txn, e *groupEntry, p *groupstate.Payload, id envelope.ID, ev *groupstate.Event) error {
	err := e.chain.Add(ev)
	var fe *groupstate.ForkError
	switch {
	case err == nil:
		if err := m.indexEvent(txn, e, ev.ID(), id, p.Epoch); err != nil {
			return err
		}
		if err := m.chainGrew(txn, e); err != nil {
			return err
		}
		if ev.Kind == groupstate.EventRemove && m.isSelf(ev.Target[:]) {
			e.local.Removed = true
		}
		if ev.Revokes() {
			if err := m.flagUnseen(txn, e, ev); err != nil {
				return err
			}
			if key, ok := e.chain.RevokedKey(ev.ID()); ok {
				m.settleMembership(e, key, ev)
			}
		}
		return nil
	case errors.Is(err, groupstate.ErrReplay):
		return err
	case errors.Is(err, groupstate.ErrUnknownParent):
		evID := ev.ID()
		if !e.chain.HoldsOrphan(ev) {
			// The chain keeps MaxOrphans; this one waits with its payload
			// (kept aside, bounded per author) and is added again then.
			return err
		}
		if err := txn.Set(gkey(pfxOrphan, e.g.ID, evID[:]), p.Body); err != nil {
			return err
		}
		if err := m.indexEvent(txn, e, evID, id, p.Epoch); err != nil {
			return err
		}
		// Not applied (the state is unchanged) but not refused either:
		// it is applied if its parent arrives.
		m.noteRejection(e.g.ID, id, err)
		return err
	case errors.As(err, &fe):
		if err := m.indexEvent(txn, e, ev.ID(), id, p.Epoch); err != nil {
			return err
		}
		if err := saveChainTxn(txn, e); err != nil {
			return err
		}
		if err := m.reportSplit(txn, e, p.Epoch, fe, p.Author); err != nil {
			return err
		}
		// Payloads held for a head on this branch can be judged now.
		m.markChanged(e.g.ID)
		return err
	}
	return fmt.Errorf("%s state event: %w", ev.Kind, err)
}

// flagUnseen marks, when a removal or demotion applies, the messages of
// the membership it ended that its author had not seen: shown here before
// the event was known, they were in flight when the manager acted, and
// every member that learns of the event first refuses them. They stay
// shown, marked (unseen_by_remover); on the removed member's own node its
// messages are marked not delivered (not_delivered_removed) and reported
// to it. Call with m.mu held.
func (m *member) flagUnseen(txn *badger.Txn, e *groupEntry, ev *groupstate.Event) error {
	key, ok := e.chain.RevokedKey(ev.ID())
	if !ok {
		return nil
	}
	own := m.isSelf(ev.Target[:])
	flag := flagUnseenByRemover
	if own {
		flag = flagNotDelivered
	}
	prefix := gkey(pfxSeq, e.g.ID, key[:])
	// Every number up to the contiguous prefix of the seen set (or below
	// the limit) is admitted: start after it.
	from := uint64(1)
	switch {
	case ev.Seen != nil:
		from = ev.Seen.Upto + 1
	case ev.SeqLimit != 0:
		from = ev.SeqLimit
	}
	type hit struct {
		seq uint64
		rec seqRec
	}
	var hits []hit
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
	for it.Seek(append(slices.Clone(prefix), u64(from)...)); it.Valid(); it.Next() {
		k := it.Item().Key()
		seq := binary.BigEndian.Uint64(k[len(k)-8:])
		if ev.Admits(seq) {
			continue
		}
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			it.Close()
			return err
		}
		rec, err := decodeSeqRec(v)
		if err != nil {
			it.Close()
			return err
		}
		hits = append(hits, hit{seq, rec})
	}
	it.Close()
	for _, h := range hits {
		mk := messageKey(e.g.ID, h.rec.order, h.seq, h.rec.id)
		item, err := txn.Get(mk)
		if errors.Is(err, badger.ErrKeyNotFound) {
			continue // not shown (a profile, a control payload)
		}
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		msg, err := decodeMessage(v)
		if err != nil {
			return err
		}
		if msg.Kind == KindEvent || hasFlag(msg.Flags, flag) {
			continue
		}
		if ev.Kind == groupstate.EventSetRole && !isWritten(msg.Kind) {
			continue
		}
		msg.Flags = append(msg.Flags, flag)
		if err := putMessageTxn(txn, mk, msg); err != nil {
			return err
		}
		m.mg.notices = append(m.mg.notices, *msg)
		detail := fmt.Sprintf("message %d of %s was not among those %s had seen when it %s them (%s)",
			h.seq, keymgmt.Fingerprint(ev.Target[:]), keymgmt.Fingerprint(ev.Author[:]), revokedWhat(ev), seenDesc(ev))
		if own {
			detail = fmt.Sprintf("your message %d was not delivered: %s %s you before it saw it (%s)",
				h.seq, keymgmt.Fingerprint(ev.Author[:]), revokedWhat(ev), seenDesc(ev))
		}
		r := groupRejection{At: time.Now().UTC(), Kind: rejFlagged, Reason: flag, Detail: detail,
			Author: ev.Target, HasAuthor: true, Envelope: h.rec.id, Seq: h.seq, Epoch: h.rec.epoch}
		if err := m.putRejection(txn, e, r); err != nil {
			return err
		}
	}
	return nil
}

func isWritten(kind string) bool {
	return kind == groupstate.KindText.String() || kind == groupstate.KindDirect.String() || kind == groupstate.KindReply.String() ||
		kind == groupstate.KindFile.String()
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}

func revokedWhat(ev *groupstate.Event) string {
	switch {
	case ev.Kind == groupstate.EventRemove && ev.Target == ev.Author:
		return "left"
	case ev.Kind == groupstate.EventRemove:
		return "removed"
	}
	return "made a reader"
}

func seenDesc(ev *groupstate.Event) string {
	switch {
	case ev.Seen != nil:
		return "it had seen " + ev.Seen.String()
	case ev.SeqLimit != 0:
		return fmt.Sprintf("its limit was %d", ev.SeqLimit)
	}
	return "no limit"
}

// equivocation handles a second payload with a recorded sequence number
// and other content: the evidence is kept, one notice per author shown,
// both envelopes passed on; the second payload is refused. Without the
// first payload (retention took it) nobody is accused. Call with m.mu
// held.
func (m *member) equivocation(txn *badger.Txn, e *groupEntry, p *groupstate.Payload, id envelope.ID, key [32]byte, rec seqRec) error {
	first, firstEnv, err := m.openOwnCopy(e, rec)
	if err != nil {
		m.log.Info("cannot prove a conflicting message", "group", e.g.ID.Short(), "err", err)
		return fmt.Errorf("%w: author %s sequence %d", errConflictUnproven, keymgmt.Fingerprint(p.AuthorKey()), p.Seq)
	}
	ev, err := groupstate.NewEquivocation(first, p)
	switch {
	case err != nil:
	case e.chain != nil:
		err = ev.SameMembership(e.chain)
	default:
		err = ev.SameOpenMembership()
	}
	if err != nil {
		// Not evidence (the same content after all, two memberships):
		// nobody is accused.
		return fmt.Errorf("%w: author %s sequence %d: %v", errConflictUnproven, keymgmt.Fingerprint(p.AuthorKey()), p.Seq, err)
	}
	b, err := groupstate.MarshalEquivocation(ev)
	if err != nil {
		return err
	}
	vk := gkey(pfxEquivocation, e.g.ID, key[:], u64(p.Seq))
	_, gerr := txn.Get(vk)
	fresh := errors.Is(gerr, badger.ErrKeyNotFound)
	if gerr != nil && !fresh {
		return gerr
	}
	fp := keymgmt.Fingerprint(p.AuthorKey())
	if fresh {
		if err := txn.Set(vk, b); err != nil {
			return err
		}
		if m.met != nil {
			m.met.equivocations.Inc()
		}
		if err := m.equivocationNotice(txn, e, p, fp); err != nil {
			return err
		}
		mb := firstEnv.Mailbox()
		m.passOn(e.g.ID, mb, rec.id)
		if keys, err := e.keysFor(p.Epoch); err == nil {
			m.passOn(e.g.ID, keys.Mailbox, id)
		}
	}
	return fmt.Errorf("%w: %s signed two different messages numbered %d (envelopes %s and %s); the first one stays shown",
		groupstate.ErrEquivocation, fp, p.Seq, rec.id.Short(), id.Short())
}

// openOwnCopy opens the envelope of a sequence record from the own store.
// Call with m.mu held.
func (m *member) openOwnCopy(e *groupEntry, rec seqRec) (*groupstate.Payload, *envelope.Envelope, error) {
	keys, err := e.keysFor(rec.epoch)
	if err != nil {
		return nil, nil, err
	}
	if m.st == nil {
		return nil, nil, errors.New("no store")
	}
	env, err := m.st.Get(keys.Mailbox, rec.id)
	if err != nil {
		return nil, nil, err
	}
	p, err := groupstate.OpenMessage(keys, e.g.ID, rec.epoch, env)
	if err != nil {
		return nil, nil, err
	}
	return p, env, nil
}

// equivocationNotice writes, once per author and group, a warning into
// the group's messages (handed to followers after the commit).
func (m *member) equivocationNotice(txn *badger.Txn, e *groupEntry, p *groupstate.Payload, fp string) error {
	wk := gkey(pfxEquivocation, e.g.ID, []byte("notice"), p.Author[:])
	if _, err := txn.Get(wk); err == nil {
		return nil
	} else if !errors.Is(err, badger.ErrKeyNotFound) {
		return err
	}
	now := time.Now().UTC()
	if err := txn.Set(wk, u64(uint64(now.UnixMilli()))); err != nil {
		return err
	}
	name := fp
	if p.Nick != "" {
		name = fmt.Sprintf("%s (%s)", p.Nick, fp)
	}
	notice := Message{
		ID: "equivocation-" + hexKey(p.Author[:8]), Group: e.g.ID.String(), GroupName: e.g.Name,
		Author: fp, Nick: p.Nick, Kind: KindEquivocation, Sent: now, Received: now, Epoch: p.Epoch, Seq: p.Seq,
		Text: fmt.Sprintf("WARNING: %s signed two different messages with the same number %d: members may have been shown "+
			"different things. Both are kept as evidence (see `meshnode group rejections`).", name, p.Seq),
	}
	if err := putMessageTxn(txn, messageKey(e.g.ID, now.UnixMilli(), 0, envelope.ID(sha256.Sum256([]byte(notice.ID)))), &notice); err != nil {
		return err
	}
	m.mg.notices = append(m.mg.notices, notice)
	return nil
}
