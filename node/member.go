package node

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
	"github.com/meshnode/meshnode/store"
)

// Message is a verified, decrypted message as the member sees it. The JSON
// field names are a contract of `meshnode messages --json`.
type Message struct {
	ID        string    `json:"id"`
	Group     string    `json:"group"`
	GroupName string    `json:"group_name"`
	Author    string    `json:"author"` // fingerprint of the author's identity key
	Nick      string    `json:"nick"`
	Text      string    `json:"text"`
	Sent      time.Time `json:"sent"`
	Received  time.Time `json:"received"`
	Kind      string    `json:"kind"` // text, direct, gap
	Verified  bool      `json:"verified"`
	Seq       uint64    `json:"seq"`
	Epoch     uint64    `json:"epoch"`
	To        string    `json:"to,omitempty"` // direct: recipient fingerprint
	Own       bool      `json:"own"`
	// Flags mark a message shown with a reservation: sent_in_future,
	// sent_before_join (its claimed sent time is out of bounds; it is
	// placed by its parents and arrival), unseen_by_remover (in flight
	// when its author was removed), not_delivered_removed (an own message
	// the group refuses: this member was removed first).
	Flags []string `json:"flags,omitempty"`
	// Delivery, for an own message, is DeliveryPending (no host has
	// stored it yet; the node keeps trying), DeliveryStored (StoredByCount
	// hosts, or members in a group without hosts, acknowledged it) or
	// DeliveryFailed (DeliveryError says why). Set when messages are
	// listed (from the outbox, outbox.go), never stored with the message.
	Delivery      string `json:"delivery,omitempty"`
	StoredByCount int    `json:"stored_by_count,omitempty"`
	DeliveryError string `json:"delivery_error,omitempty"`
	// ReplyTo is the ID of the message a reply answers (refs.go).
	ReplyTo string `json:"reply_to,omitempty"`
	// File describes a file message (files.go).
	File *FileInfo `json:"file,omitempty"`
	// View is what replies, edits, deletes and reactions change in the
	// display, filled when messages are listed (refs.go); never stored.
	View *MessageView `json:"-"`
	// Updated marks a message Follow hands out again because a
	// reference changed it (an edit, a delete, a reaction).
	Updated bool `json:"-"`
}

// Kinds shown to the user besides the payload kinds.
const (
	// KindGap is a notice that messages of an author are missing and no
	// known host could supply them.
	KindGap = "gap"
)

// member is the person's side of a node: identity, groups, messages.
//
// Lock order: member.mu, then anything the node owns (Node.mu is only taken
// briefly inside node methods and never held while calling member code).
type member struct {
	id  *keymgmt.Identity
	db  *memberDB
	log *slog.Logger
	// st is the node's own store (an equivocation's first envelope is
	// read from it); met the node's metrics.
	st  *store.Store
	met *metrics

	mu        sync.Mutex
	nick      string
	groups    map[groupstate.GroupID]*groupEntry
	mailboxes map[envelope.MailboxID]mailboxRef
	followers map[int]chan<- Message
	nextF     int
	// catchingUp marks groups with a background catch-up running.
	catchingUp map[groupstate.GroupID]bool
	// kick asks the processing loop for a pass.
	kick chan struct{}
	// recovered is closed after the member loop's first pass over the own
	// store: own envelopes stored but not recorded before a crash are
	// recorded then, so a send waits for it rather than reuse their
	// sequence numbers (awaitRecovered).
	recovered chan struct{}
	// outbox relays own envelopes until a host stores them (outbox.go).
	outbox *outbox
	// mg is the managed-group side (managed.go), guarded by mu.
	mg managedMember
	// refUpdates are messages references changed in the processing
	// transaction under way, for followers once it commits (refs.go).
	refUpdates []Message
	// pruneQueue are closed sequence spaces whose records are to go, and
	// seqWindow the records kept per live space (0: seqRecordWindow;
	// seqprune.go). Guarded by mu.
	pruneQueue []prunedSpace
	seqWindow  uint64
}

type groupEntry struct {
	g       *groupstate.Group
	keys    map[uint64]*keymgmt.EpochKeys
	local   *groupLocal
	tracker *groupstate.SeqTracker
	// chain is a managed group's state chain (nil for an open group).
	chain *groupstate.Chain
	// rejlog counts the group's rejection log entries (rejectionlog.go).
	rejlog *rejectionLog
}

type mailboxRef struct {
	group groupstate.GroupID
	epoch uint64
}

func (e *groupEntry) keysFor(epoch uint64) (*keymgmt.EpochKeys, error) {
	if k, ok := e.keys[epoch]; ok {
		return k, nil
	}
	k, err := e.g.Keys(epoch)
	if err != nil {
		return nil, err
	}
	e.keys[epoch] = k
	return k, nil
}

// loadGroups reads every group of the member database.
func (m *member) loadGroups() error {
	return m.db.scan([]byte{pfxGroup}, func(k, v []byte) error {
		g := &groupstate.Group{}
		if err := g.UnmarshalBinary(v); err != nil {
			return fmt.Errorf("%w: group %x: %v", ErrCorrupt, k[1:], err)
		}
		_, err := m.addEntry(g)
		return err
	})
}

// defaultNick is the node's nickname, or one made from the fingerprint
// when none was set: a profile announcement needs a nickname, and without
// one the member could not be listed or receive direct messages.
func (m *member) defaultNick() string {
	if m.nick != "" {
		return m.nick
	}
	return "member-" + m.id.Fingerprint()[:4]
}

// addEntry registers a group in memory (loading its bookkeeping).
func (m *member) addEntry(g *groupstate.Group) (*groupEntry, error) {
	lb, err := m.db.get(gkey(pfxLocal, g.ID))
	if err != nil {
		return nil, err
	}
	local, err := decodeLocal(lb)
	if err != nil {
		return nil, err
	}
	tr := groupstate.NewSeqTracker()
	if tb, err := m.db.get(gkey(pfxTracker, g.ID)); err != nil {
		return nil, err
	} else if tb != nil {
		if err := tr.UnmarshalBinary(tb); err != nil {
			return nil, fmt.Errorf("%w: sequence tracker: %v", ErrCorrupt, err)
		}
	}
	e := &groupEntry{g: g, keys: map[uint64]*keymgmt.EpochKeys{}, local: local, tracker: tr}
	if e.chain, err = m.loadChain(g.ID); err != nil {
		return nil, err
	}
	if err := m.loadRejections(e); err != nil {
		return nil, err
	}
	for _, key := range tr.ClosedSpaces() {
		// Records a crash left behind (seqprune.go).
		m.queuePrune(g.ID, key)
	}
	for epoch := range g.Secrets {
		k, err := e.keysFor(epoch)
		if err != nil {
			return nil, err
		}
		m.mailboxes[k.Mailbox] = mailboxRef{group: g.ID, epoch: epoch}
	}
	m.groups[g.ID] = e
	return e, nil
}

// saveGroupTxn writes the group record, its bookkeeping and tracker.
func saveGroupTxn(txn *badger.Txn, e *groupEntry) error {
	gb, err := e.g.MarshalBinary()
	if err != nil {
		return err
	}
	if err := txn.Set(gkey(pfxGroup, e.g.ID), gb); err != nil {
		return err
	}
	if err := saveChainTxn(txn, e); err != nil {
		return err
	}
	return saveLocalTxn(txn, e)
}

func saveLocalTxn(txn *badger.Txn, e *groupEntry) error {
	lb, err := json.Marshal(e.local)
	if err != nil {
		return err
	}
	if err := txn.Set(gkey(pfxLocal, e.g.ID), lb); err != nil {
		return err
	}
	tb, err := e.tracker.MarshalBinary()
	if err != nil {
		return err
	}
	return txn.Set(gkey(pfxTracker, e.g.ID), tb)
}

// resolve finds a group by hex ID or unique name. Call with m.mu held.
func (m *member) resolve(s string) (*groupEntry, error) {
	s = strings.TrimSpace(s)
	if id, err := groupstate.ParseGroupID(s); err == nil {
		if e, ok := m.groups[id]; ok {
			return e, nil
		}
	}
	var found *groupEntry
	var ids []string
	for _, e := range m.groups {
		if e.g.Name == s {
			found = e
			ids = append(ids, e.g.ID.String())
		}
	}
	if len(ids) > 1 {
		slices.Sort(ids)
		return nil, fmt.Errorf("%w: %q is the name of %d groups: %s", ErrAmbiguousGroup, s, len(ids), strings.Join(ids, ", "))
	}
	if found == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownGroup, s)
	}
	return found, nil
}

// notifyLocked hands a message to followers; slow followers miss it (the
// message stays in the database). Call with m.mu held.
func (m *member) notifyLocked(msg Message) {
	for _, ch := range m.followers {
		select {
		case ch <- msg:
		default:
		}
	}
}

// buildPayload prepares and signs the next own payload of a group, and
// advances the own sequence number. Call with m.mu held.
func (m *member) buildPayload(e *groupEntry, kind groupstate.Kind, body []byte, now time.Time) (*groupstate.Payload, error) {
	return m.buildPayloadAt(e, e.g.Epoch, kind, body, now)
}

// buildPayloadAt is buildPayload for a given epoch (a key update goes in
// the epoch before the one it starts). A managed group's payload carries
// the state head of that epoch. Call with m.mu held.
func (m *member) buildPayloadAt(e *groupEntry, epoch uint64, kind groupstate.Kind, body []byte, now time.Time) (*groupstate.Payload, error) {
	if err := m.checkCanPost(e, kind); err != nil {
		return nil, err
	}
	return m.buildPayloadRaw(e, epoch, kind, body, now)
}

// buildPayloadRaw is buildPayloadAt without the check that this member
// may post (tests build what a misbehaving member would). Call with m.mu
// held.
func (m *member) buildPayloadRaw(e *groupEntry, epoch uint64, kind groupstate.Kind, body []byte, now time.Time) (*groupstate.Payload, error) {
	p := &groupstate.Payload{
		GroupID: e.g.ID,
		Epoch:   epoch,
		Seq:     e.local.NextSeq,
		Parents: append([]envelope.ID(nil), e.local.Heads...),
		Sent:    now.UnixMilli(),
		Kind:    kind,
		Nick:    e.local.Nick,
		Body:    body,
	}
	if e.chain != nil {
		if head, ok := e.chain.HeadOf(epoch); ok {
			p.StateHead = head
		}
	} else if len(e.local.Membership) == len(p.StateHead) {
		p.StateHead = [32]byte(e.local.Membership)
	}
	if err := groupstate.SignPayloadAs(p, m.id); err != nil {
		return nil, err
	}
	return p, nil
}

// sealOwn encrypts an own payload, records it (message, dedupe mark,
// sequence, heads) durably, and returns the envelope to relay. Recording
// first means a crash can never reuse a sequence number, and the sender
// sees its own message (including directs it cannot decrypt itself).
func (m *member) sealOwn(e *groupEntry, p *groupstate.Payload, shown *Message) (*envelope.Envelope, error) {
	env, own, err := m.sealLocal(e, p, shown)
	if err != nil {
		return nil, err
	}
	err = m.db.db.Update(func(txn *badger.Txn) error {
		if err := saveLocalTxn(txn, e); err != nil {
			return err
		}
		if err := m.recordOwnSeqTxn(txn, e.g.ID, own); err != nil {
			return err
		}
		if err := m.recordOwnRefTxn(txn, e, p, env.ID(), shown); err != nil {
			return err
		}
		// Queued in the same transaction: recorded means queued.
		if err := queueOwnTxn(txn, e.g.ID, env, time.Now()); err != nil {
			return err
		}
		return markSeenTxn(txn, e.g.ID, env.ID(), p.Sent, shown)
	})
	if err != nil {
		m.flushRefUpdates(false)
		return nil, fmt.Errorf("node: record own message: %w", err)
	}
	if shown != nil {
		m.notifyLocked(*shown)
	}
	m.flushRefUpdates(true)
	return env, nil
}

// sealLocal encrypts an own payload and advances the in-memory
// bookkeeping (sequence, heads, tracker, messages of the epoch); the
// caller records it durably, with its sequence record. Call with m.mu
// held.
func (m *member) sealLocal(e *groupEntry, p *groupstate.Payload, shown *Message) (*envelope.Envelope, ownSeq, error) {
	keys, err := e.keysFor(p.Epoch)
	if err != nil {
		return nil, ownSeq{}, err
	}
	if !keys.CanWrite() {
		return nil, ownSeq{}, ErrReadOnly
	}
	env, err := groupstate.SealMessage(keys, p)
	if err != nil {
		return nil, ownSeq{}, err
	}
	if shown != nil {
		shown.ID = env.ID().String()
	}
	own := ownSeq{key: m.seqKeyOf(e), seq: p.Seq, rec: seqRec{id: env.ID(), digest: p.Digest(), order: p.Sent, epoch: p.Epoch}}
	if _, err := e.tracker.Observe(own.key, p.Seq); err != nil {
		return nil, ownSeq{}, err
	}
	e.tracker.SetOwner(own.key, p.Author)
	e.local.NextSeq++
	pushHead(e.local, env.ID())
	m.countMessage(e, p)
	return env, own, nil
}

// markSeenTxn records an envelope as processed, with its place in the
// display order (order, Unix ms: its sent time clamped by admit), and, if
// msg is not nil, stores the message for display.
func markSeenTxn(txn *badger.Txn, g groupstate.GroupID, id envelope.ID, order int64, msg *Message) error {
	// Messages are listed by their order time, then by the author's
	// sequence number, so one author's messages of the same millisecond
	// keep their order.
	if err := txn.Set(gkey(pfxSeen, g, id[:]), u64(uint64(order))); err != nil {
		return err
	}
	if msg == nil {
		return nil
	}
	key := messageKey(g, order, msg.Seq, id)
	if err := indexMessageTxn(txn, g, key, msg); err != nil {
		return err
	}
	return putMessageTxn(txn, key, msg)
}

// putMessageTxn stores a message for display under its key.
func putMessageTxn(txn *badger.Txn, key []byte, msg *Message) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	return txn.Set(key, b)
}

// messageKey orders a group's messages by order time (the sent time as
// admit bounds it), then sequence.
func messageKey(g groupstate.GroupID, sent int64, seq uint64, id envelope.ID) []byte {
	return gkey(pfxMessage, g, u64(uint64(sent)), u64(seq), id[:])
}

func pushHead(l *groupLocal, id envelope.ID) {
	l.Heads = append(l.Heads, id)
	if len(l.Heads) > groupstate.MaxParents {
		l.Heads = l.Heads[len(l.Heads)-groupstate.MaxParents:]
	}
}

func (m *member) newMessage(e *groupEntry, p *groupstate.Payload, id envelope.ID, received time.Time) *Message {
	return &Message{
		ID:        id.String(),
		Group:     e.g.ID.String(),
		GroupName: e.g.Name,
		Author:    keymgmt.Fingerprint(p.AuthorKey()),
		Nick:      p.Nick,
		Sent:      p.SentTime().UTC(),
		Received:  received.UTC(),
		Kind:      p.Kind.String(),
		Verified:  true,
		Seq:       p.Seq,
		Epoch:     p.Epoch,
		Own:       p.AuthorKey().Equal(m.id.SigningKey()),
	}
}

// errNotForMe marks a direct message addressed to another member.
var errNotForMe = errors.New("direct message for another member")

// process decrypts and verifies one envelope of a group's epoch and
// records it in txn. It returns the message to show (nil for profile
// updates and directs for others) or the reason it was rejected. Call
// with m.mu held.
func (m *member) process(txn *badger.Txn, e *groupEntry, epoch uint64, env *envelope.Envelope, now time.Time) (*Message, error) {
	keys, err := e.keysFor(epoch)
	if err != nil {
		return nil, err
	}
	p, err := groupstate.OpenMessage(keys, e.g.ID, epoch, env)
	if err != nil {
		return nil, err
	}
	return m.handle(txn, e, p, env.ID(), now)
}

// handle admits and records an opened payload (process, and the retry of
// deferred managed-group payloads). Call with m.mu held.
func (m *member) handle(txn *badger.Txn, e *groupEntry, p *groupstate.Payload, id envelope.ID, now time.Time) (*Message, error) {
	msg, err := m.handleAdmitted(txn, e, p, id, now)
	return msg, authored(p, err)
}

func (m *member) handleAdmitted(txn *badger.Txn, e *groupEntry, p *groupstate.Payload, id envelope.ID, now time.Time) (*Message, error) {
	a, err := m.admit(txn, e, p, id, now)
	if err != nil {
		return nil, err
	}
	order := a.order
	msg := m.newMessage(e, p, id, now)
	msg.Flags = a.flags
	switch p.Kind {
	case groupstate.KindText:
		msg.Text = string(p.Body)
	case groupstate.KindReply:
		if msg.Text, err = m.handleReply(txn, e, p, id); err != nil {
			return nil, err
		}
		msg.ReplyTo = envelope.ID(p.Body[:len(envelope.ID{})]).String()
	case groupstate.KindReaction, groupstate.KindEdit, groupstate.KindDelete:
		return nil, m.handleRefAction(txn, e, p, id, a)
	case groupstate.KindFile:
		if err := handleFileTxn(txn, e.g.ID, p, id, msg); err != nil {
			return nil, err
		}
	case groupstate.KindProfile:
		prof, err := groupstate.ParseProfile(p.Body)
		if err != nil {
			return nil, err
		}
		rec := &profileRec{Nick: p.Nick, KEM: prof.KEM, PublicKey: prof.PublicKey}
		b, err := json.Marshal(rec)
		if err != nil {
			return nil, err
		}
		if err := txn.Set(gkey(pfxProfile, e.g.ID, p.Author[:]), b); err != nil {
			return nil, err
		}
		return nil, markSeenTxn(txn, e.g.ID, id, order, nil)
	case groupstate.KindDirect:
		to, err := groupstate.DirectRecipient(p.Body)
		if err != nil {
			return nil, err
		}
		m.countMessage(e, p)
		msg.To = keymgmt.Fingerprint(to)
		if !to.Equal(m.id.SigningKey()) {
			return nil, errors.Join(errNotForMe, markSeenTxn(txn, e.g.ID, id, order, nil))
		}
		text, err := groupstate.OpenDirect(m.id, e.g.ID, p.AuthorKey(), p.Body)
		if err != nil {
			return nil, err
		}
		msg.Text = string(text)
	case groupstate.KindStateEvent, groupstate.KindKeyUpdate, groupstate.KindRequest:
		if e.chain != nil {
			return m.processManaged(txn, e, p, id, msg, a, now)
		}
		// An open group has no state chain: recorded, not shown.
		return nil, markSeenTxn(txn, e.g.ID, id, order, nil)
	default:
		return nil, markSeenTxn(txn, e.g.ID, id, order, nil)
	}
	if p.Kind.Referable() {
		m.countMessage(e, p)
		if err := m.recordReferableTxn(txn, e, p, id, order, msg); err != nil {
			return nil, err
		}
	}
	return msg, markSeenTxn(txn, e.g.ID, id, order, msg)
}

// seenTxn reports whether an envelope was already processed.
func seenTxn(txn *badger.Txn, g groupstate.GroupID, id envelope.ID) (bool, error) {
	_, err := txn.Get(gkey(pfxSeen, g, id[:]))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

func hexKey(b []byte) string { return hex.EncodeToString(b) }
