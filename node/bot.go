package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
)

// The manager loop (runManager) runs on every member node; it fetches the
// welcome mailboxes of pending key packages and does the work of an
// automatic manager for the managed groups this node auto-manages:
//
//   - in a group with a bot manager (a member the chain marks as a bot,
//     like a node run with RoleBot, `meshnode run --bot`, that created the
//     group or was added AsBot), that bot — of several, the one with the
//     smallest identity key;
//   - in a group without one, the manager with the smallest identity key,
//     so that a group managed by people still rotates by policy.
//
// The choice depends on the chain alone, so every node that holds the same
// head agrees on it and exactly one acts: two automatic managers would
// serve the same request and rotate on the same head, forking the chain.
//
// On every member node it also makes the hosts of each managed group's
// state chain the ones the node uses (followChainHosts, manage_ops.go).
// For each auto-managed group it serves the queued manager requests ('R',
// signed KindRequest payloads from members with the manage role, or from
// a member asking for its own removal, checked again with
// AuthorizeRequest against the current state before acting), then
// rotates when groupstate.NeedsRotation says so: a removal, demotion or
// from-join add not yet followed by a rotation, the policy's period since
// the last rotation, or its message count in the epoch.

// kickManager wakes the manager loop without waiting.
func (m *member) kickManager() {
	if m.mg.botKick == nil {
		return
	}
	select {
	case m.mg.botKick <- struct{}{}:
	default:
	}
}

// runManager is the manager loop (see above).
func (n *Node) runManager() {
	defer n.wg.Done()
	m := n.member
	kick := make(chan struct{}, 1)
	m.mu.Lock()
	m.mg.botKick = kick
	m.mu.Unlock()
	tick := time.NewTicker(n.params.ManageInterval)
	defer tick.Stop()
	for {
		n.managePass()
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
		case <-kick:
		}
	}
}

// managePass is one round of the manager loop.
func (n *Node) managePass() {
	ctx, cancel := context.WithTimeout(n.ctx, 2*time.Minute)
	defer cancel()
	n.fetchWelcomes(ctx)
	n.followChainHosts(ctx)
	m := n.member
	m.mu.Lock()
	var gids []groupstate.GroupID
	for id, e := range m.groups {
		if m.autoManages(e) {
			gids = append(gids, id)
		}
	}
	m.mu.Unlock()
	for _, gid := range gids {
		if ctx.Err() != nil {
			return
		}
		n.serveRequests(ctx, gid)
		n.applyPolicy(ctx, gid)
	}
}

// autoManages reports whether this node does a group's automatic
// management (see the top of this file). Call with m.mu held.
func (m *member) autoManages(e *groupEntry) bool {
	if e.chain == nil || e.local.Removed {
		return false
	}
	st := e.chain.State()
	me, ok := st.Member(m.id.SigningKey())
	if !ok || !me.Role.CanManage() {
		return false
	}
	for _, mb := range st.Members {
		if !mb.Role.CanManage() || mb == me {
			continue
		}
		switch {
		case mb.Bot && !me.Bot:
			return false // a bot manages, not a person
		case mb.Bot != me.Bot:
			continue // this node is the bot, mb a person
		case slices.Compare(mb.Identity.SignPub, me.Identity.SignPub) < 0:
			return false
		}
	}
	return true
}

// serveRequests performs the queued manager requests of a group, oldest
// key first; each is authorized again against the current state.
func (n *Node) serveRequests(ctx context.Context, gid groupstate.GroupID) {
	m := n.member
	type queued struct {
		key []byte
		r   *groupstate.Request
	}
	var reqs []queued
	err := m.db.scan(gkey(pfxRequest, gid), func(k, v []byte) error {
		r, err := groupstate.ParseRequest(v)
		if err != nil {
			return fmt.Errorf("%w: queued request: %v", ErrCorrupt, err)
		}
		reqs = append(reqs, queued{key: k, r: r})
		return nil
	})
	if err != nil {
		n.log.Error("reading queued manager requests failed", "group", gid.Short(), "err", err)
		return
	}
	slices.SortFunc(reqs, func(a, b queued) int { return int(a.r.Time - b.r.Time) })
	for _, q := range reqs {
		_, err := n.manage(ctx, gid.String(), func(op *managerOp) error {
			op.drop = append(op.drop, q.key)
			return op.serve(q.r)
		})
		if err != nil {
			// Dropped: the request is refused (state changed since it was
			// queued, or it no longer applies); its author sees nothing
			// happen and can ask again.
			n.log.Info("manager request refused", "group", gid.Short(), "op", q.r.Op,
				"by", keymgmt.Fingerprint(q.r.Author[:]), "reason", err)
			m.mu.Lock()
			m.mg.rejections = append(m.mg.rejections, Rejection{Group: gid.String(), Reason: fmt.Sprintf("%s request: %v", q.r.Op, err), At: time.Now().UTC()})
			if len(m.mg.rejections) > maxRejections {
				m.mg.rejections = slices.Delete(m.mg.rejections, 0, len(m.mg.rejections)-maxRejections)
			}
			m.mu.Unlock()
			if derr := m.db.db.Update(func(txn *badger.Txn) error { return txn.Delete(q.key) }); derr != nil {
				n.log.Error("dropping a refused request failed", "group", gid.Short(), "err", derr)
			}
		}
	}
}

// serve performs one authorized request as this manager.
func (op *managerOp) serve(r *groupstate.Request) error {
	if err := groupstate.AuthorizeRequest(op.e.chain.State(), r, op.now); err != nil {
		return err
	}
	switch r.Op {
	case groupstate.RequestAdd:
		kp, err := keymgmt.ParseKeyPackageBinary(r.KeyPackage, op.now)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBadKeyPackage, err)
		}
		return op.addMember(kp, r.Role, r.Bot)
	case groupstate.RequestRemove:
		if _, err := op.appendEvent(r.Event()); err != nil {
			return err
		}
		return op.rotate("member removed")
	case groupstate.RequestSetRole:
		t, ok := op.e.chain.State().Members[r.Target]
		if !ok {
			return fmt.Errorf("%w: set-role of a non-member", ErrUnknownMember)
		}
		return op.setRole(t, r.Role)
	case groupstate.RequestRotate:
		return op.rotate("on request of " + keymgmt.Fingerprint(r.Author[:]))
	case groupstate.RequestTransferManager:
		// One operation, so both events are committed or neither: a
		// failure in the second leaves the first in memory only, and
		// manage reloads the group.
		t, ok := op.e.chain.State().Members[r.Target]
		if !ok {
			return fmt.Errorf("%w: transfer to a non-member", ErrUnknownMember)
		}
		return op.transferFor(t, r)
	}
	_, err := op.appendEvent(r.Event())
	return err
}

// applyPolicy rotates a group when a rotation is due.
func (n *Node) applyPolicy(ctx context.Context, gid groupstate.GroupID) {
	m := n.member
	m.mu.Lock()
	e, ok := m.groups[gid]
	var due bool
	var why groupstate.RotationReason
	if ok && e.chain != nil && e.chain.Epoch() == e.g.Epoch {
		st := e.chain.State()
		// Another manager's removal is followed by its own rotation:
		// a second one on the same head would fork the chain.
		due, why = groupstate.AutoRotationDue(st, [32]byte(m.id.SigningKey()), e.local.EpochMsgs, time.Now())
	}
	m.mu.Unlock()
	if !due {
		return
	}
	_, err := n.manage(ctx, gid.String(), func(op *managerOp) error { return op.rotate(why.String()) })
	if err != nil && !errors.Is(err, context.Canceled) {
		n.log.Warn("policy rotation failed", "group", gid.Short(), "reason", why, "err", err)
	}
}
