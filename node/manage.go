package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
	"github.com/meshnode/meshnode/store"
)

// Manager operations on managed groups. Each runs under member.mu as one
// managerOp: it appends events to the chain, rotates, builds welcomes and
// seals every payload; then commit stores the envelopes in the node's own
// store first and records the group, chain and own messages in one
// member-database transaction; then, outside the lock, every envelope is
// relayed to the group's hosts and gossiped, in order (events before the
// key update that follows them, welcomes last).
//
// Crash safety: an envelope in the own store but not recorded (a crash
// between the two) is processed like anybody's: its state event and key
// update put the chain and the new epoch's secrets back (the manager is a
// recipient of its own rotation), and its sequence number is never
// reused. Every manager operation first processes what the own store
// holds for the group (settleLocked), so it never builds on a chain or a
// sequence number older than its own envelopes — after a restart the
// member loop's first pass may not have run yet — which would fork the
// chain with its own event and reuse sequence numbers. A welcome lost that
// way is not recovered by itself (the add is): adding the same key package
// again sends it again (addMember). A crash after the record but before the relay
// leaves the envelopes in the own store only; the node serves them, and
// anti-entropy sync with the group's hosts moves them there.

// ManageResult reports a manager operation.
type ManageResult struct {
	Group string `json:"group"`
	// Epoch and Head are the group's epoch and state head afterwards.
	Epoch uint64 `json:"epoch"`
	Head  string `json:"head"`
	// Events describes the state events the operation made.
	Events []string `json:"events"`
	// Rotated is set when the operation started a new epoch.
	Rotated bool `json:"rotated"`
	// Requested is set when the operation was sent to the group's bot as
	// a request instead of being done here.
	Requested bool `json:"requested,omitempty"`
	// Delivered counts the envelopes posted; Failed maps hosts that did
	// not store one to the reason.
	Delivered int               `json:"delivered"`
	Failed    map[string]string `json:"failed,omitempty"`
}

// ManageOption changes how a manager operation is done.
type ManageOption func(*manageConfig)

type manageConfig struct {
	viaBot bool
	bot    bool
}

// ViaBot sends the operation as a signed request to the group's always-on
// manager (the bot), which performs it; this member still needs the manage
// role.
func ViaBot() ManageOption { return func(c *manageConfig) { c.viaBot = true } }

// AsBot marks a member being added as a bot (shown as a bot in member
// lists; for an always-on manager).
func AsBot() ManageOption { return func(c *manageConfig) { c.bot = true } }

// PolicyChange is a partial policy update: nil fields are kept.
type PolicyChange struct {
	History     *groupstate.HistoryMode
	RotateEvery *time.Duration
	RotateAfter *uint64
}

// managerOp is one manager operation in progress. Its methods run with
// member.mu held.
type managerOp struct {
	n   *Node
	m   *member
	e   *groupEntry
	now time.Time

	sealed   []sealedOwn
	welcomes []*envelope.Envelope
	events   []string
	rotated  bool
	// drop are member-database keys to delete at commit (served requests).
	drop [][]byte
}

type sealedOwn struct {
	env   *envelope.Envelope
	sent  int64
	shown *Message
	own   ownSeq
	// event is the state event the payload carries (zero: none).
	event groupstate.EventID
}

// seal encrypts an own payload of the operation (bookkeeping in memory;
// commit records it).
func (op *managerOp) seal(p *groupstate.Payload, shown *Message) error {
	env, own, err := op.m.sealLocal(op.e, p, shown)
	if err != nil {
		return err
	}
	op.sealed = append(op.sealed, sealedOwn{env: env, sent: p.Sent, shown: shown, own: own})
	return nil
}

// sealEvent is seal for a payload carrying a state event.
func (op *managerOp) sealEvent(p *groupstate.Payload, shown *Message, ev groupstate.EventID) error {
	if err := op.seal(p, shown); err != nil {
		return err
	}
	op.sealed[len(op.sealed)-1].event = ev
	return nil
}

// appendEvent signs an event as this manager, adds it to the chain and
// seals it as a KindStateEvent payload of the current epoch. A removal or
// demotion carries the set of the target's messages this node had seen.
func (op *managerOp) appendEvent(tmpl *groupstate.Event) (*groupstate.Event, error) {
	if tmpl.SeqLimit == 0 && tmpl.Seen == nil && op.revokesWrite(tmpl) {
		s := op.seenSet(tmpl.Target)
		tmpl.Seen = &s
	}
	ev, err := op.e.chain.Append(tmpl, op.m.id, op.now)
	if err != nil {
		return nil, err
	}
	body, err := groupstate.MarshalEvent(ev)
	if err != nil {
		return nil, err
	}
	p, err := op.m.buildPayload(op.e, groupstate.KindStateEvent, body, op.now)
	if err != nil {
		return nil, err
	}
	shown := op.m.newMessage(op.e, p, envelope.ID{}, op.now)
	shown.Kind, shown.Text = KindEvent, describeEvent(op.e.chain, ev)
	op.events = append(op.events, shown.Text)
	return ev, op.sealEvent(p, shown, ev.ID())
}

// revokesWrite reports whether an event removes its target or takes its
// write role away: such events carry a sequence limit.
func (op *managerOp) revokesWrite(ev *groupstate.Event) bool {
	switch ev.Kind {
	case groupstate.EventRemove:
		return true
	case groupstate.EventSetRole:
		t, ok := op.e.chain.Member(ed25519.PublicKey(ev.Target[:]))
		return ok && t.Role.CanWrite() && !ev.Role.CanWrite()
	}
	return false
}

// seenSet is the seen set of a removal or demotion of target
// (groupstate.Event.Seen): the numbers of its current membership this
// node has seen (its sequence tracker), or, when the node removes itself,
// every number up to the payload that will carry the removal.
func (op *managerOp) seenSet(target [32]byte) groupstate.SeenSet {
	if ed25519.PublicKey(target[:]).Equal(op.m.id.SigningKey()) {
		return groupstate.SeenSet{Upto: op.e.local.NextSeq}
	}
	_, key, ok := op.e.chain.MemberSince(target)
	if !ok {
		return groupstate.SeenSet{}
	}
	return groupstate.NewSeenSet(op.e.tracker.SeenRanges(key))
}

// postEvent seals an event already in the chain (the create) as a
// KindStateEvent payload.
func (op *managerOp) postEvent(ev *groupstate.Event) error {
	body, err := groupstate.MarshalEvent(ev)
	if err != nil {
		return err
	}
	p, err := op.m.buildPayload(op.e, groupstate.KindStateEvent, body, op.now)
	if err != nil {
		return err
	}
	shown := op.m.newMessage(op.e, p, envelope.ID{}, op.now)
	shown.Kind, shown.Text = KindEvent, describeEvent(op.e.chain, ev)
	op.events = append(op.events, shown.Text)
	return op.sealEvent(p, shown, ev.ID())
}

// createManaged creates a managed group with this member as its first
// manager (a bot when the node runs as one) and posts the create event.
func (n *Node) createManaged(ctx context.Context, name string, hosts []string, policy groupstate.Policy) (*GroupInfo, error) {
	m := n.member
	g, c, err := groupstate.NewManagedGroup(name, hosts, m.id, m.defaultNick(), n.params.Role == RoleBot, policy, time.Now())
	if err != nil {
		return nil, err
	}
	if _, err := n.addGroup(ctx, g, c, ""); err != nil {
		return nil, err
	}
	create := c.Events()[0]
	if _, err := n.manage(ctx, g.ID.String(), func(op *managerOp) error { return op.postEvent(create) }); err != nil {
		return nil, err
	}
	if _, err := n.sendProfile(ctx, g.ID); err != nil {
		n.log.Warn("could not announce profile", "group", g.ID.Short(), "err", err)
	}
	return n.GroupInfo(g.ID.String())
}

// rotateIfDue rotates when the chain says a rotation is due (remove,
// demotion, add under from-join).
func (op *managerOp) rotateIfDue() error {
	st := op.e.chain.State()
	if st.RotationDue == groupstate.RotateNotDue {
		return nil
	}
	return op.rotate(st.RotationDue.String())
}

// addMember appends the add of a key package's member and sends the
// welcome (after the rotation from-join history requires). Adding again
// the key package a member was added with sends its welcome again and
// changes nothing else: the way to recover a welcome lost to a crash
// between storing the add and storing the welcome, or one the member's
// node never fetched.
func (op *managerOp) addMember(kp *keymgmt.KeyPackage, role groupstate.Role, bot bool) error {
	if op.addedWith(kp) {
		op.events = append(op.events, "sent "+kp.Identity.Fingerprint()+" the welcome again")
	} else {
		if _, err := op.appendEvent(&groupstate.Event{Kind: groupstate.EventAdd, KeyPackage: kp.Marshal(), Role: role, Bot: bot}); err != nil {
			return err
		}
		if err := op.rotateIfDue(); err != nil {
			return err
		}
	}
	w, err := groupstate.NewWelcome(op.e.chain, op.e.g, kp, op.m.id)
	if err != nil {
		return err
	}
	envs, err := groupstate.SealWelcome(w, kp)
	if err != nil {
		return err
	}
	op.welcomes = append(op.welcomes, envs...)
	return nil
}

// addedWith reports whether the key package's identity is a member that
// was added with this very key package.
func (op *managerOp) addedWith(kp *keymgmt.KeyPackage) bool {
	mb, ok := op.e.chain.Member(kp.Identity.SignPub)
	if !ok {
		return false
	}
	ev, ok := op.e.chain.Event(mb.Added)
	return ok && ev.Kind == groupstate.EventAdd && bytes.Equal(ev.KeyPackage, kp.Marshal())
}

// setRole appends a role change and rotates when the member lost write
// access (it still holds W) or gained it (it lacks W), or became a manager
// while this manager holds the key tree seed (the rotation hands it over:
// keytree.go).
func (op *managerOp) setRole(target *groupstate.Member, role groupstate.Role) error {
	gains := role.CanWrite() && !target.Role.CanWrite()
	handover := role.CanManage() && !target.Role.CanManage() && op.promotionRotates(target)
	if _, err := op.appendEvent(&groupstate.Event{Kind: groupstate.EventSetRole, Target: [32]byte(target.Identity.SignPub), Role: role}); err != nil {
		return err
	}
	switch {
	case gains:
		return op.rotate(target.Fingerprint() + " gained write access")
	case handover:
		return op.rotate("key tree handed over to " + target.Fingerprint())
	}
	return op.rotateIfDue()
}

// lockManaged locks the member (lockGroup) and brings the group up to
// date with the node's own store (settleLocked).
func (n *Node) lockManaged(group string) (*member, *groupEntry, error) {
	m, e, err := n.lockGroup(group)
	if err != nil {
		return nil, nil, err
	}
	n.settleLocked(e)
	return m, e, nil
}

// settleLocked processes the envelopes of a group's mailboxes that the
// node's own store holds and the member has not processed yet, epoch by
// epoch as key updates open new ones, as the member loop would. Own
// envelopes stored but not recorded (a crash inside commit) come back
// this way before an operation appends to the chain or takes a sequence
// number. Nothing new: one page read of at most one envelope per mailbox
// (processMailbox would also write the group's bookkeeping, with an
// fsync, for every mailbox). Call with m.mu held (the member loop and
// catch-ups process under it too).
func (n *Node) settleLocked(e *groupEntry) {
	m := n.member
	done := map[envelope.MailboxID]bool{}
	for range maxEpochPasses {
		todo := false
		for _, mb := range m.mailboxesOf(e) {
			if done[mb] {
				continue
			}
			done[mb], todo = true, true
			if pg, err := n.st.Page(mb, store.Cursor(e.local.Local[mb.String()]), 1, 1); err == nil && len(pg.Envelopes) == 0 {
				continue // nothing after the member's cursor
			}
			// A gap found here is filled by the group's next periodic
			// catch-up (the sync trigger of processAll would block on
			// the sync scheduler under m.mu).
			if _, err := n.processMailbox(e, mb, m.mailboxes[mb].epoch); err != nil && n.ctx.Err() == nil {
				// Dropped: the operation goes on with the state as
				// recorded, and the member loop retries the mailbox.
				n.log.Error("processing group messages failed", "group", e.g.ID.Short(), "err", err)
			}
		}
		n.retryDeferred()
		if !todo {
			return
		}
		// A key update may have opened the next epoch's mailbox: another
		// round processes it (its hosting waits for the commit or the
		// member loop: hostAddedLocked).
	}
}

// manage runs fn as a manager operation on a group this member manages,
// commits and delivers what it made.
func (n *Node) manage(ctx context.Context, group string, fn func(op *managerOp) error) (*ManageResult, error) {
	m, e, err := n.lockManaged(group)
	if err != nil {
		return nil, err
	}
	if err := checkManager(m, e); err != nil {
		m.mu.Unlock()
		return nil, err
	}
	op := &managerOp{n: n, m: m, e: e, now: time.Now()}
	if err := fn(op); err != nil {
		// The chain or bookkeeping may have moved in memory: reload.
		if rerr := m.reload(e); rerr != nil {
			n.log.Error("reloading group state failed", "group", e.g.ID.Short(), "err", rerr)
		}
		m.mu.Unlock()
		return nil, err
	}
	return n.commit(ctx, op)
}

// commit stores and records an operation's envelopes (m.mu held; it is
// released here) and delivers them.
func (n *Node) commit(ctx context.Context, op *managerOp) (*ManageResult, error) {
	m, e := op.m, op.e
	fail := func(err error) (*ManageResult, error) {
		if rerr := m.reload(e); rerr != nil {
			n.log.Error("reloading group state failed", "group", e.g.ID.Short(), "err", rerr)
		}
		// Envelopes already in the own store hold sequence numbers the
		// reloaded bookkeeping does not: take them back now, before any
		// send reuses a number (two payloads with one number are an
		// equivocation).
		n.settleLocked(e)
		m.mu.Unlock()
		return nil, err
	}
	all := make([]*envelope.Envelope, 0, len(op.sealed)+len(op.welcomes))
	for _, s := range op.sealed {
		all = append(all, s.env)
	}
	all = append(all, op.welcomes...)
	for _, env := range all {
		if _, err := n.Deliver(ctx, env, n.h.ID()); err != nil {
			return fail(fmt.Errorf("node: store own envelope: %w", err))
		}
	}
	for _, s := range op.sealed {
		// A removal of a membership this manager has seen all of settles
		// it at once (seqprune.go); saved with the group below.
		if ev, ok := e.chain.Event(s.event); ok && !s.event.IsZero() && ev.Revokes() {
			if key, ok := e.chain.RevokedKey(s.event); ok {
				m.settleMembership(e, key, ev)
			}
		}
	}
	err := m.db.db.Update(func(txn *badger.Txn) error {
		if err := saveGroupTxn(txn, e); err != nil {
			return err
		}
		for _, s := range op.sealed {
			if err := markSeenTxn(txn, e.g.ID, s.env.ID(), s.sent, s.shown); err != nil {
				return err
			}
			if err := m.recordOwnSeqTxn(txn, e.g.ID, s.own); err != nil {
				return err
			}
			if !s.event.IsZero() {
				if err := m.indexEvent(txn, e, s.event, s.env.ID(), s.own.rec.epoch); err != nil {
					return err
				}
			}
		}
		for _, k := range op.drop {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		// Queued for the outbox with the records that make them sent.
		for _, env := range all {
			if err := queueOwnTxn(txn, e.g.ID, env, op.now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fail(fmt.Errorf("node: record manager operation: %w", err))
	}
	for _, s := range op.sealed {
		if s.shown != nil {
			m.notifyLocked(*s.shown)
		}
	}
	if len(op.sealed) > 0 {
		// The chain may have grown (an event, a rotation that closed an
		// epoch): payloads kept aside for it are tried again.
		m.markChanged(e.g.ID)
		m.kickProcessing()
	}
	moved := n.hostAddedLocked()
	res := &ManageResult{
		Group: e.g.ID.String(), Epoch: e.g.Epoch, Head: e.chain.Head().String(),
		Events: op.events, Rotated: op.rotated, Failed: map[string]string{},
	}
	if res.Events == nil {
		res.Events = []string{}
	}
	gid := e.g.ID
	m.mu.Unlock()

	for _, env := range all {
		sr, err := n.deliverOwn(ctx, gid, env)
		if err != nil {
			return res, err
		}
		res.Delivered++
		for h, why := range sr.Failed {
			res.Failed[h] = why
		}
	}
	for _, id := range moved {
		n.catchUpAsync(id)
	}
	return res, nil
}

// checkManager: the group is managed, this member still in it and a
// manager. Call with m.mu held.
func checkManager(m *member, e *groupEntry) error {
	if e.chain == nil {
		return fmt.Errorf("%w: %q", ErrNotManaged, e.g.Name)
	}
	me, ok := e.chain.Member(m.id.SigningKey())
	switch {
	case !ok || e.local.Removed:
		return fmt.Errorf("%w: %q", ErrRemoved, e.g.Name)
	case !me.Role.CanManage():
		return fmt.Errorf("%w: %q (your role is %s)", ErrNotManager, e.g.Name, me.Role)
	case e.chain.Epoch() != e.g.Epoch:
		return fmt.Errorf("%w: the group is at epoch %d and this node holds keys up to %d; wait for the catch-up", ErrNotManager, e.chain.Epoch(), e.g.Epoch)
	}
	return nil
}

func manageOptions(opts []ManageOption) manageConfig {
	var c manageConfig
	for _, o := range opts {
		o(&c)
	}
	return c
}

// parseKeyPackage parses a key package's text form as of now.
func parseKeyPackage(text string, now time.Time) (*keymgmt.KeyPackage, error) {
	kp, err := keymgmt.ParseKeyPackage(text, now)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKeyPackage, err)
	}
	return kp, nil
}

// AddMember adds the person of a key package to a managed group with a
// role, rotating first under from-join history, and posts the welcome
// (sealed to the key package) through the group's hosts. With ViaBot the
// group's bot does it.
func (n *Node) AddMember(ctx context.Context, group, keyPackage string, role groupstate.Role, opts ...ManageOption) (*ManageResult, error) {
	c := manageOptions(opts)
	kp, err := parseKeyPackage(keyPackage, time.Now())
	if err != nil {
		return nil, err
	}
	if c.viaBot {
		return n.request(ctx, group, &groupstate.Request{Op: groupstate.RequestAdd, KeyPackage: kp.Marshal(), Role: role, Bot: c.bot})
	}
	return n.manage(ctx, group, func(op *managerOp) error { return op.addMember(kp, role, c.bot) })
}

// RemoveMember removes a member (by fingerprint) and rotates, so the
// removed member reads nothing new.
func (n *Node) RemoveMember(ctx context.Context, group, fingerprint string, opts ...ManageOption) (*ManageResult, error) {
	c := manageOptions(opts)
	if c.viaBot {
		target, err := n.memberKey(group, fingerprint)
		if err != nil {
			return nil, err
		}
		return n.request(ctx, group, &groupstate.Request{Op: groupstate.RequestRemove, Target: target})
	}
	return n.manage(ctx, group, func(op *managerOp) error {
		t, err := findMember(op.e, fingerprint)
		if err != nil {
			return err
		}
		if _, err := op.appendEvent(&groupstate.Event{Kind: groupstate.EventRemove, Target: [32]byte(t.Identity.SignPub)}); err != nil {
			return err
		}
		return op.rotate("member removed")
	})
}

// SetRole changes a member's role (read, write or manage), rotating when
// the member loses or gains write access.
func (n *Node) SetRole(ctx context.Context, group, fingerprint string, role groupstate.Role, opts ...ManageOption) (*ManageResult, error) {
	c := manageOptions(opts)
	if c.viaBot {
		target, err := n.memberKey(group, fingerprint)
		if err != nil {
			return nil, err
		}
		return n.request(ctx, group, &groupstate.Request{Op: groupstate.RequestSetRole, Target: target, Role: role})
	}
	return n.manage(ctx, group, func(op *managerOp) error {
		t, err := findMember(op.e, fingerprint)
		if err != nil {
			return err
		}
		return op.setRole(t, role)
	})
}

// Rotate starts a new epoch now (rotation on demand).
func (n *Node) Rotate(ctx context.Context, group string, opts ...ManageOption) (*ManageResult, error) {
	if manageOptions(opts).viaBot {
		return n.request(ctx, group, &groupstate.Request{Op: groupstate.RequestRotate})
	}
	return n.manage(ctx, group, func(op *managerOp) error { return op.rotate("on demand") })
}

// SetPolicy changes a managed group's policy (only the fields set).
func (n *Node) SetPolicy(ctx context.Context, group string, ch PolicyChange, opts ...ManageOption) (*ManageResult, error) {
	m, err := n.mem()
	if err != nil {
		return nil, err
	}
	apply := func(p groupstate.Policy) groupstate.Policy {
		if ch.History != nil {
			p.History = *ch.History
		}
		if ch.RotateEvery != nil {
			p.RotateEvery = *ch.RotateEvery
		}
		if ch.RotateAfter != nil {
			p.RotateAfter = *ch.RotateAfter
		}
		return p
	}
	if !manageOptions(opts).viaBot {
		// The change applies to the policy at the head under the manager
		// operation's lock, so two concurrent partial changes both hold.
		return n.manage(ctx, group, func(op *managerOp) error {
			_, err := op.appendEvent(&groupstate.Event{Kind: groupstate.EventSetPolicy, Policy: apply(op.e.chain.Policy())})
			return err
		})
	}
	m.mu.Lock()
	e, err := m.resolve(group)
	if err == nil && e.chain == nil {
		err = fmt.Errorf("%w: %q", ErrNotManaged, e.g.Name)
	}
	var p groupstate.Policy
	if err == nil {
		p = e.chain.Policy()
	}
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return n.request(ctx, group, &groupstate.Request{Op: groupstate.RequestSetPolicy, Policy: apply(p)})
}

// findMember finds a member of a managed group by fingerprint. Call with
// m.mu held.
func findMember(e *groupEntry, fingerprint string) (*groupstate.Member, error) {
	mb, err := e.chain.State().MemberByFingerprint(fingerprint)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnknownMember, err)
	}
	return mb, nil
}

// memberKey resolves a member's identity key by fingerprint.
func (n *Node) memberKey(group, fingerprint string) ([32]byte, error) {
	m, err := n.mem()
	if err != nil {
		return [32]byte{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.resolve(group)
	if err != nil {
		return [32]byte{}, err
	}
	if e.chain == nil {
		return [32]byte{}, fmt.Errorf("%w: %q", ErrNotManaged, e.g.Name)
	}
	t, err := findMember(e, fingerprint)
	if err != nil {
		return [32]byte{}, err
	}
	return [32]byte(t.Identity.SignPub), nil
}

// request signs requests and posts them as KindRequest payloads for the
// group's bot, which authorizes and performs them (postRequests).
func (n *Node) request(ctx context.Context, group string, rs ...*groupstate.Request) (*ManageResult, error) {
	m, e, err := n.lockManaged(group)
	if err != nil {
		return nil, err
	}
	if err := checkManager(m, e); err != nil {
		m.mu.Unlock()
		return nil, err
	}
	hasBot := false
	for _, mb := range e.chain.State().Members {
		if mb.Bot && mb.Role.CanManage() && !mb.Identity.SignPub.Equal(m.id.SigningKey()) {
			hasBot = true
		}
	}
	if !hasBot {
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: %q", ErrNoBot, e.g.Name)
	}
	return n.postRequests(ctx, m, e, rs...)
}

// isSelf reports whether key is this member's identity key.
func (m *member) isSelf(key ed25519.PublicKey) bool { return key.Equal(m.id.SigningKey()) }
