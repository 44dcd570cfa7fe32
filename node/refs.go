package node

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
)

// Replies, reactions, edits and deletes (issue 18; the formats and rules
// are groupstate's, refs.go). What a member keeps of them, in its
// encrypted database:
//
//	'y' gid id(32)             → referable message: 32 author ‖ 1 kind ‖
//	                             8 order ‖ 8 seq (its 'M' key is
//	                             order ‖ seq ‖ id), for every text and reply
//	'a' gid target(32) id(32)  → a reaction, edit or delete of target:
//	                             1 version ‖ 1 kind ‖ 32 actor ‖ 1 flags
//	                             (bit 0: the actor managed the group) ‖
//	                             8 order ‖ 8 seq ‖ 8 epoch ‖ reference body
//
// A reference is judged when it arrives if its target is known
// (groupstate.CheckRef: an edit or delete of another's message is refused
// and logged like any refusal), and otherwise kept until the target
// arrives, judged then, and refused and logged if it breaks a rule.
// Listings fold the references of each message (groupstate.FoldRefs,
// which applies the rules again) into its view: the latest edit's text,
// a tombstone for a delete, reaction counts, and for a reply a quote of
// what it answers. The message records themselves keep the original
// text, except that a delete removes it, and the edits, from this
// database (hosts keep the ciphertext until their retention drops it).
const (
	pfxRefTarget = 'y'
	pfxRefAction = 'a'
)

const (
	refTargetSize     = 32 + 1 + 8 + 8
	refActionVersion  = 1
	refActionFixed    = 1 + 1 + 32 + 1 + 8 + 8 + 8
	refFlagManager    = 1
	quoteMaxRunes     = 200
	minMessageIDChars = 8
)

// refTargetRec is a referable message's record ('y').
type refTargetRec struct {
	author [32]byte
	kind   groupstate.Kind
	order  int64
	seq    uint64
}

func (r refTargetRec) marshal() []byte {
	b := make([]byte, 0, refTargetSize)
	b = append(b, r.author[:]...)
	b = append(b, byte(r.kind))
	b = binary.BigEndian.AppendUint64(b, uint64(r.order))
	return binary.BigEndian.AppendUint64(b, r.seq)
}

func decodeRefTarget(b []byte) (refTargetRec, error) {
	var r refTargetRec
	if len(b) != refTargetSize {
		return r, fmt.Errorf("%w: message reference record of %d bytes", ErrCorrupt, len(b))
	}
	copy(r.author[:], b)
	r.kind = groupstate.Kind(b[32])
	if !r.kind.Referable() {
		return r, fmt.Errorf("%w: message reference record of kind %s", ErrCorrupt, r.kind)
	}
	r.order = int64(binary.BigEndian.Uint64(b[33:]))
	r.seq = binary.BigEndian.Uint64(b[41:])
	return r, nil
}

func (r refTargetRec) target() groupstate.RefTarget {
	return groupstate.RefTarget{Author: r.author, Kind: r.kind}
}

func refTargetKey(g groupstate.GroupID, id envelope.ID) []byte { return gkey(pfxRefTarget, g, id[:]) }

func refActionKey(g groupstate.GroupID, target, id envelope.ID) []byte {
	return gkey(pfxRefAction, g, target[:], id[:])
}

func encodeRefAction(a *groupstate.RefAction, epoch uint64) ([]byte, error) {
	body, err := groupstate.MarshalRef(&a.Ref)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, refActionFixed+len(body))
	b = append(b, refActionVersion, byte(a.Kind))
	b = append(b, a.Actor[:]...)
	flags := byte(0)
	if a.Manager {
		flags |= refFlagManager
	}
	b = append(b, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(a.Order))
	b = binary.BigEndian.AppendUint64(b, a.Seq)
	b = binary.BigEndian.AppendUint64(b, epoch)
	return append(b, body...), nil
}

// decodeRefAction decodes an 'a' record of the reference with envelope
// ID id.
func decodeRefAction(id envelope.ID, b []byte) (*groupstate.RefAction, uint64, error) {
	if len(b) < refActionFixed || b[0] != refActionVersion || b[34]&^refFlagManager != 0 {
		return nil, 0, fmt.Errorf("%w: message reference of %d bytes", ErrCorrupt, len(b))
	}
	r, err := groupstate.ParseRef(groupstate.Kind(b[1]), b[refActionFixed:])
	if err != nil || r.Kind == groupstate.KindReply {
		return nil, 0, fmt.Errorf("%w: message reference: %v", ErrCorrupt, err)
	}
	a := &groupstate.RefAction{Ref: *r, ID: id, Manager: b[34]&refFlagManager != 0}
	copy(a.Actor[:], b[2:34])
	a.Order = int64(binary.BigEndian.Uint64(b[35:]))
	a.Seq = binary.BigEndian.Uint64(b[43:])
	return a, binary.BigEndian.Uint64(b[51:]), nil
}

func getRefTarget(txn *badger.Txn, g groupstate.GroupID, id envelope.ID) (refTargetRec, bool, error) {
	item, err := txn.Get(refTargetKey(g, id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return refTargetRec{}, false, nil
	}
	if err != nil {
		return refTargetRec{}, false, err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return refTargetRec{}, false, err
	}
	r, err := decodeRefTarget(v)
	return r, err == nil, err
}

// refActions reads the references to target.
func refActions(txn *badger.Txn, g groupstate.GroupID, target envelope.ID) ([]groupstate.RefAction, []uint64, error) {
	prefix := gkey(pfxRefAction, g, target[:])
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
	defer it.Close()
	var out []groupstate.RefAction
	var epochs []uint64
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		if len(k) != len(prefix)+32 {
			return nil, nil, fmt.Errorf("%w: message reference key of %d bytes", ErrCorrupt, len(k))
		}
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return nil, nil, err
		}
		a, epoch, err := decodeRefAction(envelope.ID(k[len(prefix):]), v)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, *a)
		epochs = append(epochs, epoch)
	}
	return out, epochs, nil
}

// refManager reports whether the author of an admitted payload managed
// the group at the head it names (never in an open group).
func refManager(e *groupEntry, a *admitted) bool {
	return e.chain != nil && a.role.CanManage()
}

// handleReply completes msg for an admitted reply. Call with m.mu held.
func (m *member) handleReply(txn *badger.Txn, e *groupEntry, p *groupstate.Payload, id envelope.ID) (string, error) {
	r, err := groupstate.ParseRef(p.Kind, p.Body)
	if err != nil {
		return "", err
	}
	if err := checkKnownTarget(txn, e.g.ID, r, p.Author, false); err != nil {
		return "", err
	}
	return r.Text, nil
}

// checkKnownTarget applies CheckRef if r's target is known; an unknown
// target is no error (it may arrive later; a message of another group
// never will, and nothing of it is shown).
func checkKnownTarget(txn *badger.Txn, g groupstate.GroupID, r *groupstate.Ref, actor [32]byte, manager bool) error {
	t, ok, err := getRefTarget(txn, g, r.Target)
	if err != nil {
		return err
	}
	if ok {
		return groupstate.CheckRef(r, actor, manager, t.target())
	}
	if order, seen, err := orderOf(txn, g, r.Target); err != nil {
		return err
	} else if seen && !order.IsZero() && order.UnixMilli() != 0 {
		// Processed and shown or acted upon, but not referable: a direct,
		// a profile, a control payload.
		return fmt.Errorf("%w: %s %s", groupstate.ErrRefTarget, r.Kind, r.Target.Short())
	}
	return nil
}

// handleRefAction records an admitted reaction, edit or delete. Call
// with m.mu held.
func (m *member) handleRefAction(txn *badger.Txn, e *groupEntry, p *groupstate.Payload, id envelope.ID, a *admitted) error {
	r, err := groupstate.ParseRef(p.Kind, p.Body)
	if err != nil {
		return err
	}
	act := &groupstate.RefAction{Ref: *r, Actor: p.Author, Manager: refManager(e, a), Order: a.order, Seq: p.Seq, ID: id}
	if err := checkKnownTarget(txn, e.g.ID, r, p.Author, act.Manager); err != nil {
		return err
	}
	if err := m.putRefActionTxn(txn, e, act, p.Epoch); err != nil {
		return err
	}
	return markSeenTxn(txn, e.g.ID, id, a.order, nil)
}

// putRefActionTxn stores a reference and applies it to its target's
// record when the target is known: a delete removes the target's text and
// edits. Call with m.mu held.
func (m *member) putRefActionTxn(txn *badger.Txn, e *groupEntry, act *groupstate.RefAction, epoch uint64) error {
	t, known, err := getRefTarget(txn, e.g.ID, act.Target)
	if err != nil {
		return err
	}
	if known && act.Kind == groupstate.KindEdit {
		if deleted, err := isDeletedTxn(txn, e.g.ID, act.Target, t); err != nil || deleted {
			return err // an edit of a deleted message keeps no text
		}
	}
	b, err := encodeRefAction(act, epoch)
	if err != nil {
		return err
	}
	if err := txn.Set(refActionKey(e.g.ID, act.Target, act.ID), b); err != nil {
		return err
	}
	if !known {
		return nil
	}
	if act.Kind == groupstate.KindEdit {
		// The new text is found by search too (the old one no longer
		// matches: results are checked against the current text).
		if err := indexTxn(txn, e.g.ID, messageKey(e.g.ID, t.order, t.seq, act.Target)[len(gkey(pfxMessage, e.g.ID)):], act.Text); err != nil {
			return err
		}
	}
	if act.Kind == groupstate.KindDelete {
		if err := scrubTxn(txn, e.g.ID, act.Target, t); err != nil {
			return err
		}
	}
	msg, err := getMessageTxn(txn, e.g.ID, act.Target, t)
	if err != nil || msg == nil {
		return err
	}
	m.refUpdates = append(m.refUpdates, *msg)
	return nil
}

func isDeletedTxn(txn *badger.Txn, g groupstate.GroupID, target envelope.ID, t refTargetRec) (bool, error) {
	acts, _, err := refActions(txn, g, target)
	if err != nil {
		return false, err
	}
	return groupstate.FoldRefs(t.target(), acts).Deleted, nil
}

// scrubTxn removes a deleted message's text and edits from this
// database (its record stays, as a tombstone).
func scrubTxn(txn *badger.Txn, g groupstate.GroupID, id envelope.ID, t refTargetRec) error {
	acts, _, err := refActions(txn, g, id)
	if err != nil {
		return err
	}
	if !groupstate.FoldRefs(t.target(), acts).Deleted {
		return nil
	}
	pos := messageKey(g, t.order, t.seq, id)[len(gkey(pfxMessage, g)):]
	for _, a := range acts {
		if a.Kind == groupstate.KindEdit {
			if err := txn.Delete(refActionKey(g, id, a.ID)); err != nil {
				return err
			}
			if err := unindexTxn(txn, g, pos, a.Text); err != nil {
				return err
			}
		}
	}
	key := messageKey(g, t.order, t.seq, id)
	msg, err := getMessageTxn(txn, g, id, t)
	if err != nil || msg == nil || (msg.Text == "" && msg.File == nil) {
		return err
	}
	if err := unindexTxn(txn, g, pos, indexedText(msg)); err != nil {
		return err
	}
	msg.Text, msg.File = "", nil
	// A deleted file keeps no keys: it can no longer be downloaded.
	if err := txn.Delete(manifestKey(g, id)); err != nil {
		return err
	}
	return putMessageTxn(txn, key, msg)
}

func getMessageTxn(txn *badger.Txn, g groupstate.GroupID, id envelope.ID, t refTargetRec) (*Message, error) {
	item, err := txn.Get(messageKey(g, t.order, t.seq, id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, err
	}
	return decodeMessage(v)
}

// recordReferableTxn makes a text or reply referable ('y') and judges
// the references that arrived before it: those that break a rule are
// refused and logged, and an allowed delete removes msg's text before it
// is stored. Call with m.mu held.
func (m *member) recordReferableTxn(txn *badger.Txn, e *groupEntry, p *groupstate.Payload, id envelope.ID, order int64, msg *Message) error {
	t := refTargetRec{author: p.Author, kind: p.Kind, order: order, seq: p.Seq}
	if err := txn.Set(refTargetKey(e.g.ID, id), t.marshal()); err != nil {
		return err
	}
	acts, epochs, err := refActions(txn, e.g.ID, id)
	if err != nil || len(acts) == 0 {
		return err
	}
	var kept []groupstate.RefAction
	for i, a := range acts {
		if rerr := groupstate.CheckRef(&a.Ref, a.Actor, a.Manager, t.target()); rerr != nil {
			if err := txn.Delete(refActionKey(e.g.ID, id, a.ID)); err != nil {
				return err
			}
			perr := &authorError{author: a.Actor, seq: a.Seq, epoch: epochs[i], err: rerr}
			m.noteRejection(e.g.ID, a.ID, perr)
			if err := m.logRefusal(txn, e, a.ID, epochs[i], perr); err != nil {
				return err
			}
			continue
		}
		kept = append(kept, a)
	}
	if groupstate.FoldRefs(t.target(), kept).Deleted && msg != nil {
		msg.Text, msg.File = "", nil
		if err := txn.Delete(manifestKey(e.g.ID, id)); err != nil {
			return err
		}
		for _, a := range kept {
			if a.Kind == groupstate.KindEdit {
				if err := txn.Delete(refActionKey(e.g.ID, id, a.ID)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// recordOwnRefTxn records what an own payload of a new kind means, as
// processing does for others' (sealOwn). Call with m.mu held.
func (m *member) recordOwnRefTxn(txn *badger.Txn, e *groupEntry, p *groupstate.Payload, id envelope.ID, shown *Message) error {
	switch {
	case p.Kind == groupstate.KindFile:
		if err := txn.Set(manifestKey(e.g.ID, id), p.Body); err != nil {
			return err
		}
		return m.recordReferableTxn(txn, e, p, id, p.Sent, shown)
	case p.Kind.Referable():
		return m.recordReferableTxn(txn, e, p, id, p.Sent, shown)
	case p.Kind.IsRef():
		r, err := groupstate.ParseRef(p.Kind, p.Body)
		if err != nil {
			return err
		}
		act := &groupstate.RefAction{Ref: *r, Actor: p.Author, Manager: m.managesNow(e), Order: p.Sent, Seq: p.Seq, ID: id}
		return m.putRefActionTxn(txn, e, act, p.Epoch)
	}
	return nil
}

// managesNow reports whether this member manages the group at its head.
// Call with m.mu held.
func (m *member) managesNow(e *groupEntry) bool {
	if e.chain == nil {
		return false
	}
	me, ok := e.chain.Member(m.id.SigningKey())
	return ok && me.Role.CanManage() && !e.local.Removed
}

// flushRefUpdates hands the messages that references changed to
// followers once their transaction committed (ok), or forgets them. Call
// with m.mu held.
func (m *member) flushRefUpdates(ok bool) {
	ups := m.refUpdates
	m.refUpdates = nil
	if !ok {
		return
	}
	for _, msg := range ups {
		msg.Updated = true
		m.notifyLocked(msg)
	}
}

// MessageView is what a message's references change in its display,
// filled when messages are listed (never stored).
type MessageView struct {
	// Quote is what a reply answers.
	Quote *Quote
	// Edited: the text shown is the author's latest edit, made at
	// EditedAt; Edits is every version, oldest first (only from
	// Node.Message).
	Edited   bool
	EditedAt time.Time
	Edits    []MessageEdit
	// Deleted: a tombstone (the text is gone); DeletedBy is the
	// fingerprint of who deleted it (the author, or a manager).
	Deleted   bool
	DeletedBy string
	Reactions []MessageReaction
}

// Quote is the message a reply answers, as far as this member knows it.
type Quote struct {
	ID     string
	Author string
	Nick   string
	// Text is the start of the answered message's current text.
	Text    string
	Deleted bool
	// Missing: this member does not hold the answered message (not
	// arrived yet, or not a message of this group).
	Missing bool
}

// MessageEdit is one version of an edited message.
type MessageEdit struct {
	Text string
	At   time.Time
}

// MessageReaction is one emoji's reactions to a message.
type MessageReaction struct {
	Emoji string
	Count int
	// Mine: this member is among them.
	Mine bool
	// By are the reacting members' fingerprints.
	By []string
}

// decorateTxn fills the views of msgs (messages of group g) from their
// references; withEdits lists every version of an edited message.
func (m *member) decorateTxn(txn *badger.Txn, g groupstate.GroupID, msgs []*Message, withEdits bool) error {
	self := [32]byte(m.id.SigningKey())
	for _, msg := range msgs {
		k := groupstate.Kind(0)
		switch msg.Kind {
		case groupstate.KindText.String():
			k = groupstate.KindText
		case groupstate.KindReply.String():
			k = groupstate.KindReply
		case groupstate.KindFile.String():
			k = groupstate.KindFile
		default:
			continue
		}
		id, err := envelope.ParseID(msg.ID)
		if err != nil {
			continue
		}
		msg.View = nil
		v := &MessageView{}
		if msg.ReplyTo != "" {
			q, err := quoteTxn(txn, g, msg.ReplyTo)
			if err != nil {
				return err
			}
			v.Quote = q
		}
		t, ok, err := getRefTarget(txn, g, id)
		if err != nil {
			return err
		}
		if !ok || t.kind != k {
			if v.Quote != nil {
				msg.View = v
			}
			continue
		}
		acts, _, err := refActions(txn, g, id)
		if err != nil {
			return err
		}
		fold := groupstate.FoldRefs(t.target(), acts)
		switch {
		case fold.Deleted:
			msg.Text = ""
			v.Deleted, v.DeletedBy = true, keymgmt.Fingerprint(fold.Deleter[:])
		case len(fold.Edits) > 0:
			last := fold.Edits[len(fold.Edits)-1]
			if withEdits {
				v.Edits = append(v.Edits, MessageEdit{Text: msg.Text, At: msg.Sent})
				for _, ed := range fold.Edits {
					v.Edits = append(v.Edits, MessageEdit{Text: ed.Text, At: time.UnixMilli(ed.Order).UTC()})
				}
			}
			msg.Text, v.Edited, v.EditedAt = last.Text, true, time.UnixMilli(last.Order).UTC()
		}
		for _, r := range fold.Reactions {
			mr := MessageReaction{Emoji: r.Emoji, Count: len(r.Actors)}
			for _, a := range r.Actors {
				mr.Mine = mr.Mine || a == self
				mr.By = append(mr.By, keymgmt.Fingerprint(a[:]))
			}
			v.Reactions = append(v.Reactions, mr)
		}
		if v.Quote != nil || v.Edited || v.Deleted || len(v.Reactions) > 0 {
			msg.View = v
		}
	}
	return nil
}

// quoteTxn describes the message a reply answers.
func quoteTxn(txn *badger.Txn, g groupstate.GroupID, target string) (*Quote, error) {
	q := &Quote{ID: target, Missing: true}
	id, err := envelope.ParseID(target)
	if err != nil {
		return q, nil
	}
	t, ok, err := getRefTarget(txn, g, id)
	if err != nil || !ok {
		return q, err
	}
	msg, err := getMessageTxn(txn, g, id, t)
	if err != nil || msg == nil {
		return q, err
	}
	acts, _, err := refActions(txn, g, id)
	if err != nil {
		return nil, err
	}
	fold := groupstate.FoldRefs(t.target(), acts)
	q.Missing, q.Author, q.Nick = false, msg.Author, msg.Nick
	switch {
	case fold.Deleted:
		q.Deleted = true
	case len(fold.Edits) > 0:
		q.Text = excerpt(fold.Edits[len(fold.Edits)-1].Text)
	default:
		q.Text = excerpt(msg.Text)
	}
	return q, nil
}

// excerpt is the start of a text, at most quoteMaxRunes runes.
func excerpt(s string) string {
	if utf8.RuneCountInString(s) <= quoteMaxRunes {
		return s
	}
	n := 0
	for i := range s {
		if n == quoteMaxRunes {
			return s[:i] + "…"
		}
		n++
	}
	return s
}

// decorate fills the views of messages of one group (a listing).
func (m *member) decorate(g groupstate.GroupID, msgs []Message) error {
	ptrs := make([]*Message, len(msgs))
	for i := range msgs {
		ptrs[i] = &msgs[i]
	}
	return m.db.db.View(func(txn *badger.Txn) error { return m.decorateTxn(txn, g, ptrs, false) })
}

// decorateListed is decorate for a page.
func (m *member) decorateListed(g groupstate.GroupID, msgs []ListedMessage) error {
	ptrs := make([]*Message, len(msgs))
	for i := range msgs {
		ptrs[i] = &msgs[i].Message
	}
	return m.db.db.View(func(txn *badger.Txn) error { return m.decorateTxn(txn, g, ptrs, false) })
}

// Decorate fills a message's view (replies, edits, deletes, reactions)
// as listings do: for messages handed out by Follow.
func (n *Node) Decorate(msg *Message) error {
	m, err := n.mem()
	if err != nil {
		return err
	}
	g, err := groupstate.ParseGroupID(msg.Group)
	if err != nil {
		return nil // not a group message
	}
	return m.db.db.View(func(txn *badger.Txn) error { return m.decorateTxn(txn, g, []*Message{msg}, false) })
}

// findMessage resolves a message ID, or a unique prefix of at least
// minMessageIDChars hex characters, among the referable messages of the
// member's groups (of group only, if it is set).
func (m *member) findMessage(id string, group *groupstate.GroupID) (groupstate.GroupID, envelope.ID, refTargetRec, error) {
	var zero refTargetRec
	if len(id) < minMessageIDChars || len(id) > 2*len(envelope.ID{}) {
		return groupstate.GroupID{}, envelope.ID{}, zero, fmt.Errorf("%w: %q: give a message ID (at least %d of its hex characters)", ErrUnknownMessage, id, minMessageIDChars)
	}
	even := id
	if len(even)%2 == 1 {
		even = even[:len(even)-1]
	}
	pre, err := hex.DecodeString(even)
	if err != nil {
		return groupstate.GroupID{}, envelope.ID{}, zero, fmt.Errorf("%w: %q is not a message ID (hex)", ErrUnknownMessage, id)
	}
	var groups []groupstate.GroupID
	if group != nil {
		groups = []groupstate.GroupID{*group}
	} else {
		m.mu.Lock()
		for g := range m.groups {
			groups = append(groups, g)
		}
		m.mu.Unlock()
	}
	type hit struct {
		g  groupstate.GroupID
		id envelope.ID
		t  refTargetRec
	}
	var hits []hit
	err = m.db.db.View(func(txn *badger.Txn) error {
		for _, g := range groups {
			prefix := gkey(pfxRefTarget, g, pre)
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
			for it.Rewind(); it.Valid() && len(hits) < 2; it.Next() {
				k := it.Item().Key()
				full := k[len(gkey(pfxRefTarget, g)):]
				if len(full) != len(envelope.ID{}) || !bytes.HasPrefix([]byte(hex.EncodeToString(full)), []byte(id)) {
					continue
				}
				v, err := it.Item().ValueCopy(nil)
				if err != nil {
					it.Close()
					return err
				}
				t, err := decodeRefTarget(v)
				if err != nil {
					it.Close()
					return err
				}
				hits = append(hits, hit{g, envelope.ID(full), t})
			}
			it.Close()
		}
		return nil
	})
	switch {
	case err != nil:
		return groupstate.GroupID{}, envelope.ID{}, zero, err
	case len(hits) == 0 && group != nil:
		return groupstate.GroupID{}, envelope.ID{}, zero, fmt.Errorf("%w: no message %s in this group that can be answered, reacted to, edited or deleted", ErrUnknownMessage, id)
	case len(hits) == 0:
		return groupstate.GroupID{}, envelope.ID{}, zero, fmt.Errorf("%w: no message %s in your groups that can be reacted to, edited or deleted", ErrUnknownMessage, id)
	case len(hits) > 1:
		return groupstate.GroupID{}, envelope.ID{}, zero, fmt.Errorf("%w: %s is the start of more than one message ID; give more of it", ErrUnknownMessage, id)
	}
	return hits[0].g, hits[0].id, hits[0].t, nil
}
