package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/store"
)

// The managed-group operations besides adding, removing and changing
// roles (manage.go): adding a manager, handing management over, setting
// the group's hosts, and leaving a group.
//
// Adding a manager and handing over. A manager appends add-manager or
// transfer-manager (which also steps the author down to write); a member
// that could not write before (a reader) lacks the epoch's write key, and
// a new manager the key tree's seed (keytree.go), so the keys rotate to
// give them. A transfer is therefore add-manager, rotate, then the
// author's own step down to write (a transfer-manager event would leave
// the author unable to sign the rotation); a single transfer-manager event
// only when neither is needed (a writer, and no tree held). Through the bot (ViaBot) adding a manager is a set-role
// request, which the bot performs with the same rotation; a transfer is
// one transfer-manager request (groupstate request version 2), which the
// bot performs as one operation — the target's promotion (and the
// rotation), then the requester's step down to write — or refuses as a
// whole, so the requester is never stepped down without the promotion.
//
// Setting hosts. The set-hosts event is posted to the old and the new
// hosts (members that have not seen it yet still read the old ones), then
// every node whose chain holds it — the manager at once, the others from
// their manager loop, woken as soon as the chain names other hosts
// (followChainHosts) — stores the new hosts in its group record, names
// them for the group's mailboxes (relay, sync), connects to them and
// catches up from them. A member that was offline
// learns of the change from an old host, so keep the old hosts running
// until the members have moved.
//
// Leaving. A member's node removes the group's records (secrets,
// messages, chain) from its database and stops hosting, fetching and
// syncing the group's mailboxes (the envelopes already in its host store
// stay until retention: they are opaque). In a managed group it first
// makes sure the managers learn of it, so that the keys rotate without it:
//
//   - a member the group's automatic manager (bot.go) is not — any member
//     when the group has a bot, the others otherwise — posts a signed
//     request for its own removal, which the automatic manager performs
//     and follows with a rotation (groupstate.AuthorizeRequest lets any
//     member ask for its own removal);
//   - the automatic manager itself appends its own removal; the next
//     automatic manager among the remaining managers finds the rotation
//     due (State.RotationDue) on its next pass and rotates, so the
//     leaving node never holds the new keys;
//   - the only manager of a group with other members cannot leave
//     (groupstate.ErrLastManager): it hands management over first
//     (TransferManager), or removes the others; nobody else could rotate
//     or add anyone after it left;
//   - the only member, or a member already removed, just forgets the
//     group;
//   - a reader, which holds no write key and so can post nothing to the
//     group (not even a request), forgets the group and is told that the
//     managers do not know: it stays in the state (key updates keep
//     sealing read secrets to it, which its node no longer opens) until a
//     manager removes it.
//
// If the group names hosts and none of them stored the removal or the
// request, the group is kept and LeaveGroup fails with ErrLeaveUndelivered
// (try again when a host is reachable). A request is simply asked again.
// An own removal is already in the member's chain (and its envelope in
// the node's own store; gossip may have carried it to some members), so
// it is not rolled back: the next LeaveGroup finds it pending — the
// chain's latest removal of this member is its own — and delivers the
// same envelope again before it forgets the group (the event cannot go in
// another payload: a leaver's sequence limit names the payload that
// carries its removal, checkOwnRemoval in managed.go; if the own store no
// longer holds it, the node forgets the group and says that the managers
// were not told). Until then the
// node keeps hosting and syncing the group's mailboxes, so the removal
// may also reach a host by anti-entropy sync.

// ErrLeaveUndelivered: no group host stored the removal or removal request
// of a member leaving a managed group; the node kept the group.
var ErrLeaveUndelivered = errors.New("node: no host of the group stored your leaving; the group is kept, try again when a host is reachable")

// AddManager gives a member (by fingerprint) the manage role, rotating
// when it could not write before. With ViaBot the group's bot does it.
func (n *Node) AddManager(ctx context.Context, group, fingerprint string, opts ...ManageOption) (*ManageResult, error) {
	if manageOptions(opts).viaBot {
		target, err := n.promotable(group, fingerprint)
		if err != nil {
			return nil, err
		}
		return n.request(ctx, group, &groupstate.Request{Op: groupstate.RequestSetRole, Target: target, Role: groupstate.RoleManage})
	}
	return n.manage(ctx, group, func(op *managerOp) error {
		t, err := findMember(op.e, fingerprint)
		if err != nil {
			return err
		}
		gains, handover := !t.Role.CanWrite(), op.promotionRotates(t)
		if _, err := op.appendEvent(&groupstate.Event{Kind: groupstate.EventAddManager, Target: [32]byte(t.Identity.SignPub)}); err != nil {
			return err
		}
		switch {
		case gains:
			return op.rotate(t.Fingerprint() + " gained write access")
		case handover:
			return op.rotate("key tree handed over to " + t.Fingerprint())
		}
		return op.rotateIfDue()
	})
}

// TransferManager hands this member's management of a group to another
// member (by fingerprint): the member becomes a manager and this one a
// writer. With ViaBot the group's bot does it.
func (n *Node) TransferManager(ctx context.Context, group, fingerprint string, opts ...ManageOption) (*ManageResult, error) {
	if manageOptions(opts).viaBot {
		target, err := n.promotable(group, fingerprint)
		if err != nil {
			return nil, err
		}
		return n.request(ctx, group, &groupstate.Request{Op: groupstate.RequestTransferManager, Target: target})
	}
	return n.manage(ctx, group, func(op *managerOp) error {
		t, err := findMember(op.e, fingerprint)
		if err != nil {
			return err
		}
		target := [32]byte(t.Identity.SignPub)
		if !op.promotionRotates(t) {
			_, err := op.appendEvent(&groupstate.Event{Kind: groupstate.EventTransferManager, Target: target})
			return err
		}
		// A reader needs the write key, a new manager the key tree seed:
		// rotate while still a manager, then step down.
		if _, err := op.appendEvent(&groupstate.Event{Kind: groupstate.EventAddManager, Target: target}); err != nil {
			return err
		}
		why := t.Fingerprint() + " gained write access"
		if t.Role.CanWrite() {
			why = "key tree handed over to " + t.Fingerprint()
		}
		if err := op.rotate(why); err != nil {
			return err
		}
		if _, err = op.appendEvent(&groupstate.Event{Kind: groupstate.EventSetRole, Target: [32]byte(op.m.id.SigningKey()), Role: groupstate.RoleWrite}); err != nil {
			return err
		}
		// The three steps are one handover to whoever reads the result.
		op.events = append(op.events, describeEvent(op.e.chain, &groupstate.Event{Kind: groupstate.EventTransferManager, Target: target}))
		return nil
	})
}

// transferFor performs a transfer-manager request as the automatic
// manager (bot.go): the target's promotion — with a rotation when it
// could not write, so that it gets the write key — then the requester's
// step down to write. AuthorizeRequest has checked both against the
// current state; an error in either leaves the operation uncommitted.
func (op *managerOp) transferFor(target *groupstate.Member, r *groupstate.Request) error {
	promote, stepDown := r.TransferEvents()
	rotates := op.promotionRotates(target)
	if _, err := op.appendEvent(promote); err != nil {
		return err
	}
	if rotates {
		why := target.Fingerprint() + " gained write access"
		if target.Role.CanWrite() {
			why = "key tree handed over to " + target.Fingerprint()
		}
		if err := op.rotate(why); err != nil {
			return err
		}
	}
	_, err := op.appendEvent(stepDown)
	return err
}

// promotable resolves the identity key of a member that may be made a
// manager: a member, not one already.
func (n *Node) promotable(group, fingerprint string) ([32]byte, error) {
	m, e, err := n.lockGroup(group)
	if err != nil {
		return [32]byte{}, err
	}
	defer m.mu.Unlock()
	if e.chain == nil {
		return [32]byte{}, fmt.Errorf("%w: %q", ErrNotManaged, e.g.Name)
	}
	t, err := findMember(e, fingerprint)
	if err != nil {
		return [32]byte{}, err
	}
	if t.Role.CanManage() {
		return [32]byte{}, fmt.Errorf("%w: %s is already a manager", groupstate.ErrInvalidEvent, t.Fingerprint())
	}
	return [32]byte(t.Identity.SignPub), nil
}

// GroupHosts returns the hosts this node relays a group's messages to and
// fetches them from.
func (n *Node) GroupHosts(group string) ([]string, error) {
	m, e, err := n.lockGroup(group)
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	return append([]string{}, e.g.Hosts...), nil
}

// SetHosts replaces a managed group's hosts (multiaddrs with /p2p/, in
// order of preference; none: the members' own nodes only). The event goes
// to the old and the new hosts; members then relay to and fetch from the
// new ones. With ViaBot the group's bot does it.
func (n *Node) SetHosts(ctx context.Context, group string, hosts []string, opts ...ManageOption) (*ManageResult, error) {
	if _, err := parseHosts(hosts); err != nil {
		return nil, err
	}
	hosts = append([]string{}, hosts...)
	if manageOptions(opts).viaBot {
		return n.request(ctx, group, &groupstate.Request{Op: groupstate.RequestSetHosts, Hosts: hosts})
	}
	res, err := n.manage(ctx, group, func(op *managerOp) error {
		if _, err := op.appendEvent(&groupstate.Event{Kind: groupstate.EventSetHosts, Hosts: hosts}); err != nil {
			return err
		}
		// commit delivers to the record's hosts: for this operation the
		// new ones and the old (members still read those until they see
		// the event); followChainHosts then keeps the new ones only.
		op.e.g.Hosts = hostsUnion(hosts, op.e.g.Hosts)
		return nil
	})
	if err != nil {
		return res, err
	}
	n.followChainHosts(ctx)
	return res, nil
}

// hostsUnion is a then the hosts of b not in a, at most
// groupstate.MaxHosts (a first).
func hostsUnion(a, b []string) []string {
	out := slices.Clone(a)
	for _, h := range b {
		if len(out) == groupstate.MaxHosts {
			break
		}
		if !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

// followChainHosts makes the hosts each managed group's state chain names
// (set-hosts events) the ones this node uses: stored in the group record,
// named for its mailboxes (direct relay, sync), connected to and caught
// up from.
func (n *Node) followChainHosts(ctx context.Context) {
	m, err := n.mem()
	if err != nil {
		return
	}
	type moved struct {
		gid   groupstate.GroupID
		mbs   []envelope.MailboxID
		hosts []string
	}
	var todo []moved
	m.mu.Lock()
	for _, e := range m.groups {
		if e.chain == nil || e.local.Removed {
			continue
		}
		hosts := e.chain.Hosts()
		if slices.Equal(hosts, e.g.Hosts) {
			continue
		}
		old := e.g.Hosts
		e.g.Hosts = hosts
		if err := m.db.db.Update(func(txn *badger.Txn) error { return saveGroupTxn(txn, e) }); err != nil {
			// Dropped: the next pass tries again.
			e.g.Hosts = old
			n.log.Error("storing a group's new hosts failed", "group", e.g.ID.Short(), "err", err)
			continue
		}
		todo = append(todo, moved{gid: e.g.ID, mbs: m.mailboxesOf(e), hosts: slices.Clone(hosts)})
	}
	m.mu.Unlock()
	for _, mv := range todo {
		n.log.Info("group hosts changed", "group", mv.gid.Short(), "hosts", len(mv.hosts))
		n.setNamedHosts(mv.mbs, mv.hosts)
		n.connectHosts(ctx, mv.hosts)
		n.catchUpAsync(mv.gid)
	}
}

// leaveHow is how a member leaves a group (see the top of this file).
type leaveHow int

const (
	leaveLocal   leaveHow = iota // forget the group only
	leaveDirect                  // append the own removal as a manager
	leaveRequest                 // ask the automatic manager for it
	leaveResend                  // deliver an own removal again (undelivered before)
	leaveUntold                  // forget the group; a reader cannot tell anyone
)

// leaveMode decides how this member leaves a group. Call with m.mu held.
func (m *member) leaveMode(e *groupEntry) leaveHow {
	if e.chain == nil {
		return leaveLocal
	}
	if m.ownRemoval(e) != nil {
		return leaveResend
	}
	if e.local.Removed {
		return leaveLocal
	}
	if _, ok := e.chain.Member(m.id.SigningKey()); !ok || len(e.chain.State().Members) == 1 {
		return leaveLocal
	}
	if k, err := e.keysFor(e.g.Epoch); err != nil || !k.CanWrite() {
		// A reader holds no write key: it can post nothing, not even a
		// request, to the group's mailbox.
		return leaveUntold
	}
	if m.autoManages(e) {
		return leaveDirect
	}
	return leaveRequest
}

// ownRemoval returns this member's removal of itself when it is the
// latest main-line event that removed this member, and the member has not
// been added again since: a leave appended by this node, which LeaveGroup
// delivers again until a host stores it. Call with m.mu held.
func (m *member) ownRemoval(e *groupEntry) *groupstate.Event {
	self := [32]byte(m.id.SigningKey())
	if _, ok := e.chain.Member(self[:]); ok {
		return nil
	}
	evs := e.chain.Events()
	for i := len(evs) - 1; i >= 0; i-- {
		if ev := evs[i]; ev.Kind == groupstate.EventRemove && ev.Target == self {
			if ev.Author == self {
				return ev
			}
			return nil
		}
	}
	return nil
}

// removalEnvelopes finds the envelope that carried an own event in the
// node's own store: a state-event payload of this member in the group's
// current epoch (the leaver appended its removal there and, removed,
// never enters a later one) whose body is the event. Call with m.mu held.
func (n *Node) removalEnvelopes(m *member, e *groupEntry, ev *groupstate.Event) (*envelope.Envelope, error) {
	want, err := groupstate.MarshalEvent(ev)
	if err != nil {
		return nil, err
	}
	keys, err := e.keysFor(e.g.Epoch)
	if err != nil {
		return nil, err
	}
	var cur []byte
	for {
		pg, err := n.st.Page(keys.Mailbox, store.Cursor(cur), processPage, 8<<20)
		if err != nil {
			return nil, fmt.Errorf("node: look for the pending leave in the own store: %w", err)
		}
		for _, env := range pg.Envelopes {
			p, err := groupstate.OpenMessage(keys, e.g.ID, e.g.Epoch, env)
			if err == nil && p.Kind == groupstate.KindStateEvent && m.isSelf(p.AuthorKey()) && bytes.Equal(p.Body, want) {
				return env, nil
			}
		}
		if !pg.More || len(pg.Next) == 0 {
			return nil, nil
		}
		cur = pg.Next
	}
}

// resendLeave delivers a pending own removal again (leaveResend); untold
// is set when the own store no longer holds it. Call with m.mu held; it is
// released.
func (n *Node) resendLeave(ctx context.Context, m *member, e *groupEntry, ev *groupstate.Event) (res *ManageResult, untold bool, err error) {
	env, err := n.removalEnvelopes(m, e, ev)
	if err != nil {
		m.mu.Unlock()
		return nil, false, err
	}
	if env == nil {
		// Retention took it. The event cannot travel in another payload
		// (its sequence limit names the one that carried it:
		// checkOwnRemoval), so the node leaves without telling anyone.
		res := &ManageResult{Group: e.g.ID.String(), Epoch: e.g.Epoch, Head: e.chain.Head().String(), Failed: map[string]string{},
			Events: []string{"left the group without telling its managers (your removal is no longer in this node's store): ask a manager to remove you"}}
		m.mu.Unlock()
		return res, true, nil
	}
	res = &ManageResult{Group: e.g.ID.String(), Epoch: e.g.Epoch, Head: e.chain.Head().String(),
		Events: []string{"left the group"}, Failed: map[string]string{}}
	gid := e.g.ID
	m.mu.Unlock()
	sr, err := n.deliverOwn(ctx, gid, env)
	if err != nil {
		return res, false, err
	}
	res.Delivered++
	maps.Copy(res.Failed, sr.Failed)
	return res, false, nil
}

// LeaveGroup leaves a group: in a managed group the member's removal is
// posted first (by itself as the group's automatic manager, or as a
// request to that manager, which removes it and rotates the keys); then
// the node forgets the group — its secrets, messages and state — and stops
// hosting and fetching its mailboxes. The only manager of a managed group
// with other members gets groupstate.ErrLastManager: hand management over
// first.
func (n *Node) LeaveGroup(ctx context.Context, group string) (*ManageResult, error) {
	m, e, err := n.lockManaged(group)
	if err != nil {
		return nil, err
	}
	gid, name := e.g.ID, e.g.Name
	others := 0
	ais, _ := parseHosts(e.g.Hosts)
	for _, ai := range ais {
		if ai.ID != n.h.ID() {
			others++
		}
	}
	how := m.leaveMode(e)
	self := [32]byte(m.id.SigningKey())
	var res *ManageResult
	switch how {
	case leaveLocal, leaveUntold:
		res = &ManageResult{Group: gid.String(), Epoch: e.g.Epoch, Events: []string{"left the group"}, Failed: map[string]string{}}
		if how == leaveUntold {
			res.Events = []string{"left the group without telling its managers (a reader cannot post): ask a manager to remove you"}
		}
		if e.chain != nil {
			res.Head = e.chain.Head().String()
		}
		m.mu.Unlock()
	case leaveDirect:
		if err := checkManager(m, e); err != nil {
			m.mu.Unlock()
			return nil, err
		}
		op := &managerOp{n: n, m: m, e: e, now: time.Now()}
		if _, err := op.appendEvent(&groupstate.Event{Kind: groupstate.EventRemove, Target: self}); err != nil {
			if rerr := m.reload(e); rerr != nil {
				n.log.Error("reloading group state failed", "group", gid.Short(), "err", rerr)
			}
			m.mu.Unlock()
			if errors.Is(err, groupstate.ErrLastManager) {
				return nil, fmt.Errorf("%w (you are the only manager of %q: hand management to another member before leaving)", err, name)
			}
			return nil, err
		}
		if res, err = n.commit(ctx, op); err != nil {
			return nil, err
		}
	case leaveRequest:
		if res, err = n.postRequests(ctx, m, e, &groupstate.Request{Op: groupstate.RequestRemove, Target: self}); err != nil {
			return nil, err
		}
		res.Events = []string{"asked the group's manager to remove you"}
	case leaveResend:
		var untold bool
		if res, untold, err = n.resendLeave(ctx, m, e, m.ownRemoval(e)); err != nil {
			return res, err
		}
		if untold {
			how = leaveUntold
		}
	}
	if how != leaveLocal && how != leaveUntold && others > 0 && len(res.Failed) >= others {
		return res, fmt.Errorf("%w: %q", ErrLeaveUndelivered, name)
	}
	if err := n.forgetGroup(gid); err != nil {
		return res, err
	}
	return res, nil
}

// groupPrefixes are the member-database prefixes of a group's records
// besides its group record, bookkeeping, tracker and chain.
var groupPrefixes = []byte{pfxMessage, pfxSeen, pfxProfile, pfxOrphan, pfxDeferred, pfxRequest, pfxSplit, pfxClaim, pfxOutbox, pfxNotice,
	pfxSeq, pfxRejection, pfxEquivocation, pfxEventEnv, pfxRefTarget, pfxRefAction, pfxFile, pfxSearch}

// forgetGroup deletes a group from this member: first its record,
// bookkeeping, tracker and chain in one transaction (the group is gone,
// at the next start too), then its other records; and it stops hosting
// and syncing the group's mailboxes. It holds the group's catch-up lock,
// so that no catch-up in flight saves its cursors (bookkeeping) again
// afterwards; a later one finds the group gone.
func (n *Node) forgetGroup(gid groupstate.GroupID) error {
	m := n.member
	m.mu.Lock()
	lk := m.catchUpLock(gid)
	m.mu.Unlock()
	lk.Lock()
	defer lk.Unlock()
	n.progress.forget(gid)
	m.mu.Lock()
	e, ok := m.groups[gid]
	if !ok {
		m.mu.Unlock()
		return nil
	}
	mbs := m.mailboxesOf(e)
	err := m.db.db.Update(func(txn *badger.Txn) error {
		for _, pfx := range []byte{pfxGroup, pfxLocal, pfxTracker, pfxChain, pfxReadMark} {
			if err := txn.Delete(gkey(pfx, gid)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		m.mu.Unlock()
		return fmt.Errorf("node: forget group: %w", err)
	}
	delete(m.groups, gid)
	for _, mb := range mbs {
		delete(m.mailboxes, mb)
	}
	m.mu.Unlock()

	for _, mb := range mbs {
		if err := n.DropMailbox(mb); err != nil {
			// Dropped: the topic closes with the node.
			n.log.Info("could not leave a group mailbox's topic", "group", gid.Short(), "err", err)
		}
	}
	n.mu.Lock()
	for _, mb := range mbs {
		delete(n.namedHosts, mb)
	}
	n.mu.Unlock()
	return m.db.deletePrefixes(gid, groupPrefixes)
}

// deletePrefixes deletes every record of a group under the prefixes, in
// write batches (a group's messages may not fit one transaction).
func (d *memberDB) deletePrefixes(gid groupstate.GroupID, pfxs []byte) error {
	var keys [][]byte
	err := d.db.View(func(txn *badger.Txn) error {
		for _, pfx := range pfxs {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: gkey(pfx, gid)})
			for it.Rewind(); it.Valid(); it.Next() {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("node: forget group records: %w", err)
	}
	wb := d.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			return fmt.Errorf("node: forget group records: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("node: forget group records: %w", err)
	}
	return nil
}

// postRequests signs requests as this member and posts them, in order, as
// KindRequest payloads of the group's current epoch for the node that
// auto-manages the group (bot.go), which authorizes and performs them.
// Their times are a millisecond apart: the manager serves its queue in
// time order. Call with m.mu held; it is released.
func (n *Node) postRequests(ctx context.Context, m *member, e *groupEntry, rs ...*groupstate.Request) (*ManageResult, error) {
	op := &managerOp{n: n, m: m, e: e, now: time.Now()}
	events := make([]string, 0, len(rs))
	for i, r := range rs {
		r.GroupID = e.g.ID
		r.Time = op.now.Add(time.Duration(i) * time.Millisecond).UnixMilli()
		err := groupstate.SignRequest(r, m.id)
		var body []byte
		if err == nil {
			body, err = groupstate.MarshalRequest(r)
		}
		var p *groupstate.Payload
		if err == nil {
			p, err = m.buildPayload(e, groupstate.KindRequest, body, op.now)
		}
		if err == nil {
			err = op.seal(p, nil)
		}
		if err != nil {
			if rerr := m.reload(e); rerr != nil {
				n.log.Error("reloading group state failed", "group", e.g.ID.Short(), "err", rerr)
			}
			m.mu.Unlock()
			return nil, err
		}
		events = append(events, "asked the bot to "+r.Op.String())
	}
	res, err := n.commit(ctx, op)
	if res != nil {
		res.Requested = true
		res.Events = events
	}
	return res, err
}
