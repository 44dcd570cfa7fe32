package node

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/groupstate"
)

// Rejoining (issue 13, item 5). A member removed from a managed group
// keeps the group's record (what it read until then) and knows it was
// removed; one that left forgot the group. Either may be added again with
// a new key package. The chain then holds a new membership for it — a
// sequence space of its own (groupstate.MembershipKey) — so its numbers
// start again from 1 and nothing it sends is taken for a replay of its
// first membership.
//
// A node that left starts from nothing (addGroup). A node that kept the
// group after its removal merges the welcome into its record (rejoin): the
// new epochs' secrets (and, under shared history, the earlier ones it
// lacks), the chain's new events, the hosts; its own sequence starts again
// at 1 and it is no longer marked removed.

// rejoin merges a welcome into a group this node already holds, when it
// welcomes this member to a membership the node's record does not know
// (it was removed, or the welcome's chain adds it again). It reports
// whether it did.
func (n *Node) rejoin(j *groupstate.Joined) (bool, error) {
	m := n.member
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.groups[j.Group.ID]
	if !ok || e.chain == nil {
		return false, nil
	}
	self := [32]byte(m.id.SigningKey())
	newAdded, _, ok := j.Chain.MemberSince(self)
	if !ok {
		return false, fmt.Errorf("%w: the welcome's chain does not hold this member", groupstate.ErrWelcomeInvalid)
	}
	if added, _, ok := e.chain.MemberSince(self); ok && added == newAdded && !e.local.Removed {
		return false, nil // the welcome of the membership held already
	}
	before := e.chain.Head()
	for _, ev := range j.Chain.Events() {
		if err := e.chain.Add(ev); err != nil && !errors.Is(err, groupstate.ErrReplay) {
			break
		}
	}
	if e.chain.Head() != j.Chain.Head() {
		// The welcome's main line is not an extension of ours: take it.
		e.chain = j.Chain
	}
	for epoch, s := range j.Group.Secrets {
		if _, has := e.g.Secrets[epoch]; has && epoch != j.Group.Epoch {
			continue
		}
		if err := e.g.AddEpoch(epoch, s); err != nil {
			return false, err
		}
		delete(e.keys, epoch)
		k, err := e.keysFor(epoch)
		if err != nil {
			return false, err
		}
		if _, known := m.mailboxes[k.Mailbox]; !known {
			m.mailboxes[k.Mailbox] = mailboxRef{group: e.g.ID, epoch: epoch}
			m.mg.added = append(m.mg.added, k.Mailbox)
		}
	}
	e.g.Hosts = append([]string(nil), j.Group.Hosts...)
	e.local.Removed = false
	e.local.NextSeq = 1
	e.local.EpochMsgs = 0
	err := m.db.db.Update(func(txn *badger.Txn) error { return saveGroupTxn(txn, e) })
	if err != nil {
		if rerr := m.reload(e); rerr != nil {
			n.log.Error("reloading group state failed", "group", e.g.ID.Short(), "err", rerr)
		}
		return false, fmt.Errorf("node: record the rejoin: %w", err)
	}
	m.markChanged(e.g.ID)
	n.log.Info("added to a group again", "group", e.g.ID.Short(), "head", before.Short()+"→"+e.chain.Head().Short())
	m.kickProcessing()
	return true, nil
}
