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
//	1. admits it (admission.go, groupstate's Chain.AdmitPayload): at the
//	   state head it names, its author's membership and role, and the seen
//	   set of any removal or demotion since; a head the chain does not
//	   hold yet keeps it aside ('Q') until the chain grows; a head on a
//	   branch we hold is a split with the manager's signed evidence —
//	   recorded once ('X') and shown as a KindSplit notice in the group's
//	   messages (the API's message stream carries it; the CLI warns); an
//	   unknown head of a closed epoch is its author's fault, never the
//	   manager's;
//	2. checks its sequence number in its membership's sequence space
//	   (replays, equivocations) and bounds its sent time;
//	3. by kind: state events go into the chain (orphans wait in 'O'); key
//	   updates are opened (Chain.AcceptKeyUpdate) and the new epoch's
//	   mailbox joins the member's mailboxes, is hosted and caught up, so a
//	   member moves epoch by epoch through the old mailboxes' key updates
//	   without re-fetching anything; manager requests are queued for the
//	   bot ('R', bot.go) once AuthorizeRequest accepts them.
//
// Rejected payloads change nothing: the chain only moves on an accepted
// event, and the reason is kept in the group's rejection log
// (rejections.go).
//
// Manager operations are in manage.go and rotation.go, welcomes in
// welcome.go, the always-on manager in bot.go.

// Message kinds of managed groups, besides the payload kinds.
const (
	// KindEvent is an accepted state event (or a rotation), described in
	// words: who added, removed or changed whom.
	KindEvent = "event"
	// KindSplit is a warning written by the node: two state events
	// signed by a manager on one parent (held by this member) show that
	// the manager showed members different states or keys.
	KindSplit = "split"
	// KindEquivocation is a warning written by the node: a member signed
	// two different messages with one sequence number (admission.go).
	KindEquivocation = "equivocation"
)

// Managed-group errors.
var (
	// ErrNotManaged: a management operation on an open group.
	ErrNotManaged = errors.New("node: not a managed group")
	// ErrNotManager: a management operation by a member without the
	// manage role.
	ErrNotManager = errors.New("node: you do not have the manage role in this group")
	// ErrRemoved: this member was removed from the group.
	ErrRemoved = errors.New("node: you were removed from this group")
	// ErrNoBot: a request for the always-on manager in a group without one.
	ErrNoBot = errors.New("node: the group has no bot manager to send the request to")
	// ErrNotMember: a payload whose author is not a member of the group
	// (groupstate's rule).
	ErrNotMember = groupstate.ErrNotMember
	// ErrNotWriter: a message, direct or profile whose author has only
	// the read role (it obtained the write key from someone else).
	ErrNotWriter = groupstate.ErrNotWriter
	// ErrNoInvite: an invite asked for a managed group (its members are
	// added by a manager).
	ErrNoInvite = errors.New("node: no invite for this group")
	// ErrBadKeyPackage: a key package that does not parse, verify or has
	// expired.
	ErrBadKeyPackage = errors.New("node: invalid key package")
)

// errDeferred: the payload was kept to be handled when the chain grows.
var errDeferred = errors.New("payload deferred until the state chain grows")

// maxRejections bounds the node's in-memory list of recent refusals
// (Rejections); each group's log is in the member database.
const maxRejections = 64

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
	// notices are warnings (splits, equivocations, flagged messages) to
	// hand to followers after the commit.
	notices []Message
	// passQueue are envelopes of evidence to pass on after the pass, and
	// pushed the own heads already passed on (evidence.go).
	passQueue []passItem
	pushed    map[groupstate.EventID]bool
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

// splitRec is a recorded split ('X').
type splitRec struct {
	Group    string    `json:"group"`
	Epoch    uint64    `json:"epoch"`
	Head     string    `json:"head,omitempty"`
	Author   string    `json:"author,omitempty"`  // whose payload or event showed it
	Signers  []string  `json:"signers,omitempty"` // who signed the two events
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

// errHeldFull: a payload naming an unknown head, when its author (or the
// group) already has the most payloads kept aside.
var errHeldFull = errors.New("payload names a state head the chain does not hold, and too many wait already")

// deferPayload keeps a payload aside until the chain grows ('Q' gid
// author(32) id(32) → 8 epoch ‖ payload). One author holds at most
// maxDeferredPerAuthor of the places, so a member naming invented heads
// fills its own share only, and the others' payloads still wait.
func (m *member) deferPayload(txn *badger.Txn, e *groupEntry, p *groupstate.Payload, id envelope.ID) error {
	key := gkey(pfxDeferred, e.g.ID, p.Author[:], id[:])
	if _, err := txn.Get(key); err == nil {
		return errDeferred
	} else if !errors.Is(err, badger.ErrKeyNotFound) {
		return err
	}
	count := func(prefix []byte, max int) int {
		n := 0
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		for it.Rewind(); it.Valid() && n < max; it.Next() {
			n++
		}
		it.Close()
		return n
	}
	if n := count(gkey(pfxDeferred, e.g.ID, p.Author[:]), maxDeferredPerAuthor); n >= maxDeferredPerAuthor {
		return fmt.Errorf("%w: %s already has %d payloads waiting for the chain", errHeldFull, keymgmt.Fingerprint(p.AuthorKey()), n)
	}
	if n := count(gkey(pfxDeferred, e.g.ID), maxDeferred); n >= maxDeferred {
		return fmt.Errorf("%w: %d payloads of the group wait for the chain", errHeldFull, n)
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

// processManaged handles the managed-group payload kinds, after admit
// (which added a state event to the chain). Call with m.mu held.
func (m *member) processManaged(txn *badger.Txn, e *groupEntry, p *groupstate.Payload, id envelope.ID, msg *Message, a *admitted, now time.Time) (*Message, error) {
	seen := func(shown *Message) (*Message, error) {
		return shown, markSeenTxn(txn, e.g.ID, id, a.order, shown)
	}
	switch p.Kind {
	case groupstate.KindStateEvent:
		if a.evErr == nil && a.ev != nil {
			msg.Kind, msg.Text = KindEvent, describeEvent(e.chain, a.ev)
			return seen(msg)
		}
		// A replay, an orphan kept for its parent, or a fork (reported).
		return seen(nil)
	case groupstate.KindKeyUpdate:
		return m.processKeyUpdate(txn, e, p, id, msg, a.order)
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
// seen set (or version-1 sequence limit) it names. A manager sets the seen
// set of a removal it makes from what it saw; a leaver sets its own, and
// could name none or one far ahead and go on posting to the old epoch's
// mailbox (whose keys it keeps) under a head from before its removal. So
// the leaver's own payload must carry its removal, as the leaving node
// does (manage_ops.go), and the set must be every number up to that
// payload's (or the limit the next one): what the leaver posts afterwards
// is refused. Honest nodes accept no other, so a welcome (which carries
// their chain) holds no other either.
func checkOwnRemoval(p *groupstate.Payload, ev *groupstate.Event) error {
	if ev.Kind != groupstate.EventRemove || ev.Target != ev.Author {
		return nil
	}
	ok := p.Author == ev.Author
	switch {
	case ev.Seen != nil:
		ok = ok && ev.Seen.Equal(groupstate.SeenSet{Upto: p.Seq})
	default:
		ok = ok && ev.SeqLimit == p.Seq+1
	}
	if !ok {
		named := fmt.Sprintf("the sequence limit %d", ev.SeqLimit)
		if ev.Seen != nil {
			named = "the seen set " + ev.Seen.String()
		}
		return fmt.Errorf("%w: %s's removal of itself names %s, and came in message %d of %s (want its own, and every number up to %d)",
			groupstate.ErrInvalidEvent, keymgmt.Fingerprint(ev.Author[:]), named, p.Seq, keymgmt.Fingerprint(p.Author[:]), p.Seq)
	}
	return nil
}

// chainGrew stores the chain after it accepted events and marks the
// group for a retry of its deferred payloads.
func (m *member) chainGrew(txn *badger.Txn, e *groupEntry) error {
	if err := saveChainTxn(txn, e); err != nil {
		return err
	}
	m.markChanged(e.g.ID)
	if !slices.Equal(e.chain.Hosts(), e.g.Hosts) {
		// A set-hosts event: the manager loop moves the group to the new
		// hosts (followChainHosts) now rather than on its next pass.
		m.kickManager()
	}
	return nil
}

// markChanged marks a group whose chain grew: its deferred payloads are
// retried after the pass. Call with m.mu held.
func (m *member) markChanged(g groupstate.GroupID) {
	if m.mg.changed == nil {
		m.mg.changed = map[groupstate.GroupID]bool{}
	}
	m.mg.changed[g] = true
}

// reportSplit records a split once and writes a warning into the group's
// messages (handed to followers after the commit). It needs the evidence:
// two state events, both signed, on one parent (ARCHITECTURE §11:
// accusations need evidence signed by the accused), which it passes on so
// that every member holds it. author is whose payload showed it.
func (m *member) reportSplit(txn *badger.Txn, e *groupEntry, epoch uint64, fe *groupstate.ForkError, author [32]byte) error {
	a, b := fe.Evidence.A.ID(), fe.Evidence.B.ID()
	m.passOnEvent(txn, e, a)
	m.passOnEvent(txn, e, b)
	rec := splitRec{Group: e.g.ID.String(), Epoch: epoch, Head: b.String(), Reason: fe.Error(), Detected: time.Now().UTC()}
	if author != ([32]byte{}) {
		rec.Author = keymgmt.Fingerprint(author[:])
	}
	signers := []string{keymgmt.Fingerprint(fe.Evidence.A.Author[:])}
	if fe.Evidence.B.Author != fe.Evidence.A.Author {
		signers = append(signers, keymgmt.Fingerprint(fe.Evidence.B.Author[:]))
	}
	rec.Signers = signers
	if slices.Compare(a[:], b[:]) > 0 {
		a, b = b, a
	}
	key := sha256.Sum256(append(a[:], b[:]...))
	if ev, err := groupstate.MarshalForkEvidence(fe.Evidence); err == nil {
		rec.Evidence = hex.EncodeToString(ev)
	}
	k := gkey(pfxSplit, e.g.ID, key[:])
	if _, err := txn.Get(k); err == nil {
		return nil
	} else if !errors.Is(err, badger.ErrKeyNotFound) {
		return err
	}
	b2, err := json.Marshal(&rec)
	if err != nil {
		return err
	}
	if err := txn.Set(k, b2); err != nil {
		return err
	}
	if m.met != nil {
		m.met.splits.Inc()
	}
	now := rec.Detected
	notice := Message{
		ID: "split-" + hex.EncodeToString(key[:8]), Group: e.g.ID.String(), GroupName: e.g.Name,
		Author: signers[0], Kind: KindSplit, Sent: now, Received: now, Epoch: epoch,
		Text: fmt.Sprintf("WARNING: %s signed two different states of the group on one parent (a split): "+
			"members were shown different states or keys; compare fingerprints and the member list out of band. Detail: %s",
			strings.Join(signers, " and "), rec.Reason),
	}
	if err := putMessageTxn(txn, messageKey(e.g.ID, now.UnixMilli(), 0, envelope.ID(key)), &notice); err != nil {
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
					copy(id[:], x.k[len(x.k)-32:])
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
					var epoch uint64
					if p != nil {
						epoch = p.Epoch
					}
					if err := n.settle(txn, e, id, epoch, msg, perr, &shown); err != nil {
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
