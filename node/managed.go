package node

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
)

// Managed groups (ARCHITECTURE §7): the member side. A managed group's
// membership is a state chain (groupstate.Chain) stored next to the group
// record ('C', see memberdb.go). For every payload opened in a managed
// group the member:
//
//	1. checks the payload's state head against its chain (CheckHead): a
//	   head on a branch, or one missing from a closed epoch, is a split —
//	   recorded once ('X') and shown as a KindSplit notice in the group's
//	   messages (the API's message stream carries it; the CLI warns); a head
//	   not known yet is kept as a claim and checked again when the chain
//	   grows;
//	2. checks that the author is a member (at the head, or at the head the
//	   payload names, for a member removed since — whose payloads at or past
//	   the removal's sequence limit are refused, as sent after it); an
//	   unknown author with an unknown head is deferred ('Q') and retried
//	   when the chain grows;
//	3. by kind: state events go into the chain (orphans wait in 'O'); key
//	   updates are opened (Chain.AcceptKeyUpdate) and the new epoch's
//	   mailbox joins the member's mailboxes, is hosted and caught up, so a
//	   member moves epoch by epoch through the old mailboxes' key updates
//	   without re-fetching anything; manager requests are queued for the
//	   bot ('R', bot.go) once AuthorizeRequest accepts them.
//
// Rejected payloads change nothing: the chain only moves on an accepted
// event, and the reason is logged and kept in the node's recent
// rejections.
//
// Manager operations are in manage.go and rotation.go, welcomes in
// welcome.go, the always-on manager in bot.go.

// Message kinds of managed groups, besides the payload kinds.
const (
	// KindEvent is an accepted state event (or a rotation), described in
	// words: who added, removed or changed whom.
	KindEvent = "event"
	// KindSplit is a warning written by the node: another member's
	// payload, or an event, shows that the manager showed members
	// different states or keys.
	KindSplit = "split"
)

// Managed-group errors.
var (
	// ErrNotManaged: a management operation on an open group.
	ErrNotManaged = errors.New("node: not a managed group (create one with --managed)")
	// ErrNotManager: a management operation by a member without the
	// manage role.
	ErrNotManager = errors.New("node: you do not have the manage role in this group")
	// ErrRemoved: this member was removed from the group.
	ErrRemoved = errors.New("node: you were removed from this group")
	// ErrNoBot: a request for the always-on manager in a group without one.
	ErrNoBot = errors.New("node: the group has no bot manager to send the request to")
	// ErrNotMember: a payload whose author is not a member of the group.
	ErrNotMember = errors.New("node: author is not a member of the group")
	// ErrNotWriter: a message, direct or profile whose author has only
	// the read role (it obtained the write key from someone else).
	ErrNotWriter = errors.New("node: author may only read in this group")
	// ErrNoInvite: an invite asked for a managed group (its members are
	// added by a manager).
	ErrNoInvite = errors.New("node: no invite for this group")
	// ErrBadKeyPackage: a key package that does not parse, verify or has
	// expired.
	ErrBadKeyPackage = errors.New("node: invalid key package")
)

// errDeferred: the payload was kept to be handled when the chain grows.
var errDeferred = errors.New("payload deferred until the state chain grows")

// Bounds on what a managed group keeps waiting.
const (
	maxClaims     = 256
	maxDeferred   = 1024
	maxRejections = 64
)

// managedMember is the managed-group state of the member, guarded by
// member.mu.
type managedMember struct {
	// bot is set on an always-on manager (RoleBot).
	bot bool
	// added are epoch mailboxes found during a pass (hostAddedLocked).
	added []envelope.MailboxID
	// changed marks groups whose chain grew (their deferred payloads are
	// retried).
	changed map[groupstate.GroupID]bool
	// notices are split warnings to hand to followers after the commit.
	notices []Message
	// kps are own key packages awaiting a welcome (welcome.go).
	kps map[[32]byte]*pendingKeyPackage
	// botKick wakes the manager loop (bot.go).
	botKick chan struct{}
	// rejections are the latest rejected payloads, for diagnosis.
	rejections []Rejection
	// catchUpAgain marks groups to catch up again after the running
	// catch-up (catchup.go).
	catchUpAgain map[groupstate.GroupID]bool
	// catchUpLocks serialise each group's catch-ups (catchup.go).
	catchUpLocks map[groupstate.GroupID]*sync.Mutex
}

// Rejection is a payload a member refused, and why.
type Rejection struct {
	Group    string    `json:"group"`
	Envelope string    `json:"envelope"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

// headClaim is a state head a payload named that the chain did not hold.
type headClaim struct {
	epoch  uint64
	head   groupstate.EventID
	author [32]byte
}

// splitRec is a recorded split ('X').
type splitRec struct {
	Group    string    `json:"group"`
	Epoch    uint64    `json:"epoch"`
	Head     string    `json:"head,omitempty"`
	Author   string    `json:"author,omitempty"` // whose payload showed it
	Reason   string    `json:"reason"`
	Evidence string    `json:"evidence,omitempty"` // hex of groupstate fork evidence
	Detected time.Time `json:"detected"`
}

// Split is a detected split, as the API shows it.
type Split = splitRec

func (m *member) noteRejection(g groupstate.GroupID, id envelope.ID, err error) {
	m.mg.rejections = append(m.mg.rejections, Rejection{Group: g.String(), Envelope: id.String(), Reason: err.Error(), At: time.Now().UTC()})
	if len(m.mg.rejections) > maxRejections {
		m.mg.rejections = slices.Delete(m.mg.rejections, 0, len(m.mg.rejections)-maxRejections)
	}
}

// Rejections returns the latest payloads this member refused and why
// (bounded; newest last).
func (n *Node) Rejections() ([]Rejection, error) {
	m, err := n.mem()
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.mg.rejections), nil
}

// loadChain reads a group's state chain (nil for an open group) and
// re-adds the orphans kept for it.
func (m *member) loadChain(g groupstate.GroupID) (*groupstate.Chain, error) {
	b, err := m.db.get(gkey(pfxChain, g))
	if err != nil || b == nil {
		return nil, err
	}
	c, err := groupstate.UnmarshalChain(b)
	if err != nil {
		return nil, fmt.Errorf("%w: state chain of %s: %v", ErrCorrupt, g.Short(), err)
	}
	err = m.db.scan(gkey(pfxOrphan, g), func(_, v []byte) error {
		if ev, err := groupstate.ParseEvent(v); err == nil {
			// Kept again as an orphan, or applied if its parent came.
			_ = c.Add(ev)
		}
		return nil
	})
	return c, err
}

// saveChainTxn stores a managed group's chain and forgets the orphans it
// has since applied.
func saveChainTxn(txn *badger.Txn, e *groupEntry) error {
	if e.chain == nil {
		return nil
	}
	b, err := e.chain.MarshalBinary()
	if err != nil {
		return err
	}
	if err := txn.Set(gkey(pfxChain, e.g.ID), b); err != nil {
		return err
	}
	var applied [][]byte
	it := txn.NewIterator(badger.IteratorOptions{Prefix: gkey(pfxOrphan, e.g.ID)})
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().KeyCopy(nil)
		var id groupstate.EventID
		copy(id[:], k[1+16:])
		if _, ok := e.chain.Event(id); ok {
			applied = append(applied, k)
		}
	}
	it.Close()
	for _, k := range applied {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// countMessage counts a text or direct message of the current epoch for
// the rotate-after policy, and wakes the manager loop when the count is
// reached. Call with m.mu held.
func (m *member) countMessage(e *groupEntry, p *groupstate.Payload) {
	if e.chain == nil || p.Epoch != e.g.Epoch {
		return
	}
	e.local.EpochMsgs++
	if after := e.policy().RotateAfter; after > 0 && e.local.EpochMsgs >= after {
		m.kickManager()
	}
}

// policy returns a managed group's policy at the head.
func (e *groupEntry) policy() groupstate.Policy { return e.chain.Policy() }

// checkManaged checks a managed group's payload before its kind is
// handled: the state head it names and its author's membership.
func (m *member) checkManaged(txn *badger.Txn, e *groupEntry, p *groupstate.Payload, id envelope.ID) error {
	c := e.chain
	head := groupstate.EventID(p.StateHead)
	if head.IsZero() {
		return fmt.Errorf("%w: a payload of a managed group without a state head", groupstate.ErrPayloadMalformed)
	}
	herr := c.CheckHead(p.Epoch, head)
	unknown := errors.Is(herr, groupstate.ErrUnknownHead)
	switch {
	case herr == nil, unknown:
	case errors.Is(herr, groupstate.ErrSplit), errors.Is(herr, groupstate.ErrFork):
		// A head on a branch we hold comes with evidence (two signed
		// events on one parent), whoever carried it. A head we do not
		// hold is only its author's word: taken from members alone, or
		// anyone holding an old epoch's keys (a removed member) could
		// fill every member's messages with split warnings.
		var fe *groupstate.ForkError
		if _, ok := c.Member(p.AuthorKey()); !ok && !errors.As(herr, &fe) {
			return fmt.Errorf("%w: %s names state head %s for epoch %d, which %q never had, and is not a member",
				ErrNotMember, keymgmt.Fingerprint(p.AuthorKey()), head.Short(), p.Epoch, e.g.Name)
		}
		if err := m.reportSplit(txn, e, p.Epoch, head, p.Author, herr); err != nil {
			return err
		}
	default:
		return herr
	}
	author := p.AuthorKey()
	var sentAfter *groupstate.Event
	// role is the author's role where it is judged: at the head for a
	// member, at the head the payload names for one demoted or removed
	// since.
	var role groupstate.Role
	member := func() bool {
		if mb, ok := c.Member(author); ok {
			role = mb.Role
			if writes(p.Kind) && !role.CanWrite() && !unknown {
				// Demoted since? Replaying the chain to the named head
				// costs more, so it is done only on this rare path. What
				// it wrote at or past the demotion's limit is refused.
				if st, err := c.StateAt(head); err == nil {
					if old, ok := st.Member(author); ok {
						role = old.Role
					}
				}
				if rv, ok := c.RevokedAfter(head, p.Author); ok && rv.SeqLimit > 0 && p.Seq >= rv.SeqLimit {
					sentAfter = rv
					return false
				}
			}
			return true
		}
		if unknown {
			return false
		}
		// A member removed since: judged at the head it wrote under, and
		// by the removal's sequence limit, so that a removed member cannot
		// go on posting to an old epoch's mailbox under an old head.
		st, err := c.StateAt(head)
		if err != nil {
			return false
		}
		mb, ok := st.Member(author)
		if !ok {
			return false
		}
		role = mb.Role
		if rm, ok := c.RevokedAfter(head, p.Author); ok && rm.SeqLimit > 0 && p.Seq >= rm.SeqLimit {
			sentAfter = rm
			return false
		}
		return true
	}()
	if sentAfter != nil {
		sentinel, what := ErrNotMember, "removed from"
		if sentAfter.Kind == groupstate.EventSetRole {
			sentinel, what = ErrNotWriter, "made a reader in"
		}
		return fmt.Errorf("%w: %s was %s %q by %s; its message %d is at or past the limit %d",
			sentinel, keymgmt.Fingerprint(author), what, e.g.Name, sentAfter.ID().Short(), p.Seq, sentAfter.SeqLimit)
	}
	switch {
	case member && writes(p.Kind) && !role.CanWrite() && unknown:
		// Perhaps promoted by an event that has not arrived yet.
		return m.deferPayload(txn, e, p, id)
	case member && writes(p.Kind) && !role.CanWrite():
		return fmt.Errorf("%w: %s has the role %s in %q, and posted a %s", ErrNotWriter,
			keymgmt.Fingerprint(author), role, e.g.Name, p.Kind)
	case member && unknown:
		return e.addClaim(txn, headClaim{epoch: p.Epoch, head: head, author: p.Author})
	case member:
		return nil
	case unknown:
		// Probably a newcomer whose add event has not arrived yet.
		return m.deferPayload(txn, e, p, id)
	}
	return fmt.Errorf("%w: %s is not a member of %q at state %s", ErrNotMember, keymgmt.Fingerprint(author), e.g.Name, head.Short())
}

// addClaim keeps a head claim, in memory and in the member DB ('H'), so a
// split it reveals later is reported even across restarts.
// writes reports whether a payload kind needs the write role: what
// members say to the group. Key updates, state events and requests are
// authorized by the chain (AcceptKeyUpdate, Chain.Add, AuthorizeRequest).
func writes(k groupstate.Kind) bool {
	return k == groupstate.KindText || k == groupstate.KindDirect || k == groupstate.KindProfile
}

func (e *groupEntry) addClaim(txn *badger.Txn, c headClaim) error {
	for _, x := range e.claims {
		if x == c {
			return nil
		}
	}
	if len(e.claims) >= maxClaims {
		if err := txn.Delete(claimKey(e.g.ID, e.claims[0])); err != nil {
			return err
		}
		e.claims = e.claims[1:]
	}
	if err := txn.Set(claimKey(e.g.ID, c), c.marshal()); err != nil {
		return err
	}
	e.claims = append(e.claims, c)
	return nil
}

// claimSize is the size of a head claim record: epoch, head, author.
const claimSize = 8 + 32 + 32

func (c headClaim) marshal() []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, claimSize), c.epoch)
	b = append(b, c.head[:]...)
	return append(b, c.author[:]...)
}

func claimKey(g groupstate.GroupID, c headClaim) []byte {
	h := sha256.Sum256(c.marshal())
	return gkey(pfxClaim, g, h[:])
}

// decodeClaim decodes a head claim record ('H').
func decodeClaim(b []byte) (headClaim, error) {
	var c headClaim
	if len(b) != claimSize {
		return c, fmt.Errorf("%w: head claim record of %d bytes, want %d", ErrCorrupt, len(b), claimSize)
	}
	c.epoch = binary.BigEndian.Uint64(b)
	copy(c.head[:], b[8:40])
	copy(c.author[:], b[40:])
	return c, nil
}

// loadClaims reads a managed group's head claims.
func (m *member) loadClaims(g groupstate.GroupID) ([]headClaim, error) {
	var out []headClaim
	err := m.db.scan(gkey(pfxClaim, g), func(_, v []byte) error {
		c, err := decodeClaim(v)
		if err != nil {
			return err
		}
		out = append(out, c)
		return nil
	})
	return out, err
}

// deferPayload keeps a payload to handle again when the chain grows.
func (m *member) deferPayload(txn *badger.Txn, e *groupEntry, p *groupstate.Payload, id envelope.ID) error {
	key := gkey(pfxDeferred, e.g.ID, id[:])
	if _, err := txn.Get(key); err == nil {
		return errDeferred
	} else if !errors.Is(err, badger.ErrKeyNotFound) {
		return err
	}
	n := 0
	it := txn.NewIterator(badger.IteratorOptions{Prefix: gkey(pfxDeferred, e.g.ID)})
	for it.Rewind(); it.Valid() && n < maxDeferred; it.Next() {
		n++
	}
	it.Close()
	if n >= maxDeferred {
		return fmt.Errorf("%s payload names an unknown state head and %d payloads already wait for the chain", p.Kind, maxDeferred)
	}
	pb, err := groupstate.MarshalPayload(p)
	if err != nil {
		return err
	}
	if err := txn.Set(key, append(u64(p.Epoch), pb...)); err != nil {
		return err
	}
	return errDeferred
}

// processManaged handles the managed-group payload kinds. Call with m.mu
// held.
func (m *member) processManaged(txn *badger.Txn, e *groupEntry, p *groupstate.Payload, id envelope.ID, msg *Message, now time.Time) (*Message, error) {
	seen := func(shown *Message) (*Message, error) {
		return shown, markSeenTxn(txn, e.g.ID, id, p.Sent, shown)
	}
	switch p.Kind {
	case groupstate.KindStateEvent:
		ev, err := groupstate.ParseEvent(p.Body)
		if err != nil {
			return nil, err
		}
		if err := checkOwnRemoval(p, ev); err != nil {
			return nil, err
		}
		err = e.chain.Add(ev)
		var fe *groupstate.ForkError
		switch {
		case err == nil:
			if err := m.chainGrew(txn, e); err != nil {
				return nil, err
			}
			msg.Kind, msg.Text = KindEvent, describeEvent(e.chain, ev)
			if ev.Kind == groupstate.EventRemove && ed25519.PublicKey(ev.Target[:]).Equal(m.id.SigningKey()) {
				e.local.Removed = true
			}
			return seen(msg)
		case errors.Is(err, groupstate.ErrReplay):
			return seen(nil)
		case errors.Is(err, groupstate.ErrUnknownParent):
			evID := ev.ID()
			if err := txn.Set(gkey(pfxOrphan, e.g.ID, evID[:]), p.Body); err != nil {
				return nil, err
			}
			// Not applied (the state is unchanged) but not refused either:
			// it is applied if its parent arrives.
			m.noteRejection(e.g.ID, id, err)
			return seen(nil)
		case errors.As(err, &fe):
			if err := saveChainTxn(txn, e); err != nil {
				return nil, err
			}
			if err := m.reportSplit(txn, e, p.Epoch, ev.ID(), p.Author, err); err != nil {
				return nil, err
			}
			return seen(nil)
		default:
			return nil, fmt.Errorf("%s state event: %w", ev.Kind, err)
		}
	case groupstate.KindKeyUpdate:
		return m.processKeyUpdate(txn, e, p, id, msg)
	case groupstate.KindRequest:
		if !m.autoManages(e) {
			return seen(nil)
		}
		r, err := groupstate.ParseRequest(p.Body)
		if err != nil {
			return nil, err
		}
		if r.Author != p.Author {
			return nil, fmt.Errorf("%w: request signed by %s inside a payload of %s", groupstate.ErrUnauthorized,
				keymgmt.Fingerprint(r.Author[:]), keymgmt.Fingerprint(p.AuthorKey()))
		}
		if err := groupstate.AuthorizeRequest(e.chain.State(), r, now); err != nil {
			return nil, fmt.Errorf("%s request: %w", r.Op, err)
		}
		b, err := groupstate.MarshalRequest(r)
		if err != nil {
			return nil, err
		}
		h := sha256.Sum256(b)
		if err := txn.Set(gkey(pfxRequest, e.g.ID, h[:]), b); err != nil {
			return nil, err
		}
		m.kickManager()
		return seen(nil)
	}
	return seen(nil)
}

// checkOwnRemoval holds a member's removal of itself (leaving) to the
// sequence limit it names. A manager sets the limit of a removal it makes
// from what it saw; a leaver sets its own, and could name none or one far
// ahead and go on posting to the old epoch's mailbox (whose keys it keeps)
// under a head from before its removal. So the leaver's own payload must
// carry its removal, as the leaving node does (manage_ops.go), and the
// limit must be the next sequence number after that payload: what the
// leaver posts afterwards is refused. Honest nodes accept no other, so a
// welcome (which carries their chain) holds no other either.
func checkOwnRemoval(p *groupstate.Payload, ev *groupstate.Event) error {
	if ev.Kind != groupstate.EventRemove || ev.Target != ev.Author {
		return nil
	}
	if p.Author != ev.Author || ev.SeqLimit != p.Seq+1 {
		return fmt.Errorf("%w: %s's removal of itself names the sequence limit %d, and came in message %d of %s (want its own, and limit %d)",
			groupstate.ErrInvalidEvent, keymgmt.Fingerprint(ev.Author[:]), ev.SeqLimit, p.Seq, keymgmt.Fingerprint(p.Author[:]), p.Seq+1)
	}
	return nil
}

// chainGrew stores the chain after it accepted events, re-checks the
// pending head claims and marks the group for a retry of its deferred
// payloads.
func (m *member) chainGrew(txn *badger.Txn, e *groupEntry) error {
	if err := saveChainTxn(txn, e); err != nil {
		return err
	}
	if m.mg.changed == nil {
		m.mg.changed = map[groupstate.GroupID]bool{}
	}
	m.mg.changed[e.g.ID] = true
	if !slices.Equal(e.chain.Hosts(), e.g.Hosts) {
		// A set-hosts event: the manager loop moves the group to the new
		// hosts (followChainHosts) now rather than on its next pass.
		m.kickManager()
	}
	var kept []headClaim
	for _, c := range e.claims {
		err := e.chain.CheckHead(c.epoch, c.head)
		if errors.Is(err, groupstate.ErrUnknownHead) {
			kept = append(kept, c)
			continue
		}
		if errors.Is(err, groupstate.ErrSplit) || errors.Is(err, groupstate.ErrFork) {
			if err := m.reportSplit(txn, e, c.epoch, c.head, c.author, err); err != nil {
				return err
			}
		}
		if err := txn.Delete(claimKey(e.g.ID, c)); err != nil {
			return err
		}
	}
	e.claims = kept
	return nil
}

// reportSplit records a split once and writes a warning into the group's
// messages (handed to followers after the commit).
func (m *member) reportSplit(txn *badger.Txn, e *groupEntry, epoch uint64, head groupstate.EventID, author [32]byte, cause error) error {
	rec := splitRec{Group: e.g.ID.String(), Epoch: epoch, Reason: cause.Error(), Detected: time.Now().UTC()}
	if !head.IsZero() {
		rec.Head = head.String()
	}
	if author != ([32]byte{}) {
		rec.Author = keymgmt.Fingerprint(author[:])
	}
	var key [32]byte
	var fe *groupstate.ForkError
	if errors.As(cause, &fe) {
		a, b := fe.Evidence.A.ID(), fe.Evidence.B.ID()
		if slices.Compare(a[:], b[:]) > 0 {
			a, b = b, a
		}
		key = sha256.Sum256(append(a[:], b[:]...))
		if ev, err := groupstate.MarshalForkEvidence(fe.Evidence); err == nil {
			rec.Evidence = hex.EncodeToString(ev)
		}
	} else {
		key = sha256.Sum256(binary.BigEndian.AppendUint64(head[:], epoch))
	}
	k := gkey(pfxSplit, e.g.ID, key[:])
	if _, err := txn.Get(k); err == nil {
		return nil
	} else if !errors.Is(err, badger.ErrKeyNotFound) {
		return err
	}
	b, err := json.Marshal(&rec)
	if err != nil {
		return err
	}
	if err := txn.Set(k, b); err != nil {
		return err
	}
	now := rec.Detected
	notice := Message{
		ID: "split-" + hex.EncodeToString(key[:8]), Group: e.g.ID.String(), GroupName: e.g.Name,
		Author: rec.Author, Kind: KindSplit, Sent: now, Received: now, Epoch: epoch,
		Text: "WARNING: the group's manager showed members different states or keys (a split); " +
			"compare fingerprints and the member list out of band. Detail: " + rec.Reason,
	}
	nb, err := json.Marshal(&notice)
	if err != nil {
		return err
	}
	if err := txn.Set(messageKey(e.g.ID, now.UnixMilli(), 0, envelope.ID(key)), nb); err != nil {
		return err
	}
	m.mg.notices = append(m.mg.notices, notice)
	return nil
}

// flushNotices hands the split warnings of a committed transaction to
// followers (drop them instead when it failed). Call with m.mu held.
func (m *member) flushNotices(committed bool) {
	if committed {
		for _, msg := range m.mg.notices {
			m.notifyLocked(msg)
		}
	}
	m.mg.notices = nil
}

// Splits returns the splits detected in a group, oldest first.
func (n *Node) Splits(group string) ([]Split, error) {
	m, gid, err := n.lookup(group)
	if err != nil {
		return nil, err
	}
	var out []Split
	err = m.db.scan(gkey(pfxSplit, gid), func(_, v []byte) error {
		s, err := decodeSplit(v)
		if err != nil {
			return err
		}
		out = append(out, s)
		return nil
	})
	slices.SortFunc(out, func(a, b Split) int { return a.Detected.Compare(b.Detected) })
	return out, err
}

// decodeSplit decodes a split record ('X').
func decodeSplit(b []byte) (Split, error) {
	var s Split
	if err := json.Unmarshal(b, &s); err != nil {
		return Split{}, fmt.Errorf("%w: split: %v", ErrCorrupt, err)
	}
	return s, nil
}

// decodeDeferred decodes a deferred payload record ('Q': 8 epoch ‖
// payload) and checks the payload's signature again.
func decodeDeferred(b []byte) (*groupstate.Payload, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("%w: deferred payload of %d bytes", ErrCorrupt, len(b))
	}
	p, err := groupstate.ParsePayload(b[8:])
	if err != nil {
		return nil, fmt.Errorf("%w: deferred payload: %v", ErrCorrupt, err)
	}
	if err := p.VerifyAuthor(); err != nil {
		return nil, fmt.Errorf("%w: deferred payload: %v", ErrCorrupt, err)
	}
	if binary.BigEndian.Uint64(b[:8]) != p.Epoch {
		return nil, fmt.Errorf("%w: deferred payload of epoch %d filed under epoch %d", ErrCorrupt, p.Epoch, binary.BigEndian.Uint64(b[:8]))
	}
	return p, nil
}

// retryDeferred handles again the deferred payloads of the groups whose
// chain grew. Call with m.mu held.
func (n *Node) retryDeferred() {
	m := n.member
	for pass := 0; pass < 8 && len(m.mg.changed) > 0; pass++ {
		changed := m.mg.changed
		m.mg.changed = nil
		for gid := range changed {
			e, ok := m.groups[gid]
			if !ok {
				continue
			}
			var shown []*Message
			now := time.Now()
			err := m.db.db.Update(func(txn *badger.Txn) error {
				shown = shown[:0]
				type item struct{ k, v []byte }
				var items []item
				it := txn.NewIterator(badger.IteratorOptions{Prefix: gkey(pfxDeferred, gid), PrefetchValues: true})
				for it.Rewind(); it.Valid(); it.Next() {
					v, err := it.Item().ValueCopy(nil)
					if err != nil {
						it.Close()
						return err
					}
					items = append(items, item{it.Item().KeyCopy(nil), v})
				}
				it.Close()
				for _, x := range items {
					var id envelope.ID
					copy(id[:], x.k[1+16:])
					var msg *Message
					p, perr := decodeDeferred(x.v)
					if perr == nil {
						msg, perr = m.handle(txn, e, p, id, now)
					}
					if errors.Is(perr, errDeferred) {
						continue
					}
					if err := txn.Delete(x.k); err != nil {
						return err
					}
					if err := n.settle(txn, e, id, msg, perr, &shown); err != nil {
						return err
					}
				}
				return saveLocalTxn(txn, e)
			})
			if err != nil {
				m.flushNotices(false)
				if rerr := m.reload(e); rerr != nil {
					n.log.Error("reloading group state failed", "group", gid.Short(), "err", rerr)
				}
				n.log.Error("retrying deferred payloads failed", "group", gid.Short(), "err", err)
				continue
			}
			m.flushNotices(true)
			for _, msg := range shown {
				m.notifyLocked(*msg)
			}
		}
	}
}

// describeEvent says in words what an accepted event did.
func describeEvent(c *groupstate.Chain, ev *groupstate.Event) string {
	who := func(key [32]byte) string {
		fp := keymgmt.Fingerprint(key[:])
		if mb, ok := c.Member(ed25519.PublicKey(key[:])); ok && mb.Nick != "" {
			return fmt.Sprintf("%s (%s)", mb.Nick, fp)
		}
		return fp
	}
	switch ev.Kind {
	case groupstate.EventCreate:
		return fmt.Sprintf("created the managed group %q", ev.Name)
	case groupstate.EventAdd:
		kp, err := keymgmt.ParseKeyPackageBinary(ev.KeyPackage, ev.TimeValue())
		if err != nil {
			return "added a member"
		}
		what := "as " + ev.Role.String()
		if ev.Bot {
			what += " (bot)"
		}
		return fmt.Sprintf("added %s %s", who([32]byte(kp.Identity.SignPub)), what)
	case groupstate.EventRemove:
		if ev.Target == ev.Author {
			return "left the group"
		}
		// The removed member is named as the state before knew it.
		if st, err := c.StateAt(ev.Parent); err == nil {
			if mb, ok := st.Members[ev.Target]; ok && mb.Nick != "" {
				return fmt.Sprintf("removed %s (%s)", mb.Nick, mb.Fingerprint())
			}
		}
		return fmt.Sprintf("removed %s", who(ev.Target))
	case groupstate.EventSetRole:
		return fmt.Sprintf("gave %s the role %s", who(ev.Target), ev.Role)
	case groupstate.EventAddManager:
		return fmt.Sprintf("made %s a manager", who(ev.Target))
	case groupstate.EventTransferManager:
		return fmt.Sprintf("handed management to %s", who(ev.Target))
	case groupstate.EventSetPolicy:
		return "set the policy: " + describePolicy(ev.Policy)
	case groupstate.EventSetHosts:
		return fmt.Sprintf("set the group's hosts (%d)", len(ev.Hosts))
	case groupstate.EventRotate:
		return fmt.Sprintf("rotated the keys to epoch %d", ev.Epoch)
	}
	return ev.Kind.String()
}

func describePolicy(p groupstate.Policy) string {
	parts := []string{"history " + p.History.String()}
	if p.RotateEvery > 0 {
		parts = append(parts, "rotate every "+p.RotateEvery.String())
	}
	if p.RotateAfter > 0 {
		parts = append(parts, fmt.Sprintf("rotate after %d messages", p.RotateAfter))
	}
	return strings.Join(parts, ", ")
}

// GroupPolicy returns a managed group's policy.
func (n *Node) GroupPolicy(group string) (groupstate.Policy, error) {
	m, err := n.mem()
	if err != nil {
		return groupstate.Policy{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.resolve(group)
	if err != nil {
		return groupstate.Policy{}, err
	}
	if e.chain == nil {
		return groupstate.Policy{}, fmt.Errorf("%w: %q", ErrNotManaged, e.g.Name)
	}
	return e.chain.Policy(), nil
}
