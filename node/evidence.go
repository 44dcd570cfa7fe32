package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
)

// Passing evidence on (ARCHITECTURE §11). A member that holds evidence
// — two payloads of one author with one number (an equivocation), or two
// state events of a manager on one parent (a fork) — sends the envelopes
// that carry it to every host the group names and gossips them on the
// mailbox topic, so that every member fetches both within one catch-up,
// whoever was shown which. Hosts and members store an envelope once (by
// ID), so passing on again costs a duplicate answer, never a loop.
//
// A member that finds a payload naming a state head it does not hold
// passes on the envelope of its own head of that epoch, once per head
// (pushOwnHead): if a manager showed members different events, each side
// then receives the other's, and both hold the fork's evidence. The
// envelopes are found through the event index ('E' gid event(32) → 32
// envelope ‖ 8 epoch), written when an event enters the chain.
//
// The sends run after the processing pass, outside member.mu.

// passItem is an envelope to pass on.
type passItem struct {
	group groupstate.GroupID
	mb    envelope.MailboxID
	id    envelope.ID
}

// maxPassQueue bounds the envelopes waiting to be passed on.
const maxPassQueue = 256

// passOn queues an envelope of a group's mailbox to pass on. Call with
// m.mu held.
func (m *member) passOn(g groupstate.GroupID, mb envelope.MailboxID, id envelope.ID) {
	for _, it := range m.mg.passQueue {
		if it.id == id {
			return
		}
	}
	if len(m.mg.passQueue) >= maxPassQueue {
		return
	}
	m.mg.passQueue = append(m.mg.passQueue, passItem{group: g, mb: mb, id: id})
	m.kickProcessing()
}

// indexEvent records which envelope carried a state event. Call with m.mu
// held.
func (m *member) indexEvent(txn *badger.Txn, e *groupEntry, ev groupstate.EventID, env envelope.ID, epoch uint64) error {
	return txn.Set(gkey(pfxEventEnv, e.g.ID, ev[:]), append(append([]byte(nil), env[:]...), u64(epoch)...))
}

// eventEnvelope finds the envelope that carried an event, from the index.
func (m *member) eventEnvelope(txn *badger.Txn, e *groupEntry, ev groupstate.EventID) (envelope.ID, uint64, bool) {
	it, err := txn.Get(gkey(pfxEventEnv, e.g.ID, ev[:]))
	if err != nil {
		return envelope.ID{}, 0, false
	}
	v, err := it.ValueCopy(nil)
	if err != nil || len(v) != 40 {
		return envelope.ID{}, 0, false
	}
	var id envelope.ID
	copy(id[:], v)
	return id, binary.BigEndian.Uint64(v[32:]), true
}

// passOnEvent queues the envelope that carried an event, if indexed. Call
// with m.mu held, inside a transaction.
func (m *member) passOnEvent(txn *badger.Txn, e *groupEntry, ev groupstate.EventID) {
	id, epoch, ok := m.eventEnvelope(txn, e, ev)
	if !ok {
		return
	}
	if keys, err := e.keysFor(epoch); err == nil {
		m.passOn(e.g.ID, keys.Mailbox, id)
	}
}

// pushOwnHead passes on, once per head, the envelope of this member's
// head of an epoch: another member names a head we do not hold. Call with
// m.mu held.
func (m *member) pushOwnHead(txn *badger.Txn, e *groupEntry, epoch uint64) {
	head, ok := e.chain.HeadOf(epoch)
	if !ok {
		return
	}
	if m.mg.pushed == nil {
		m.mg.pushed = map[groupstate.EventID]bool{}
	}
	if m.mg.pushed[head] {
		return
	}
	if len(m.mg.pushed) >= 4096 {
		m.mg.pushed = map[groupstate.EventID]bool{} // forget the oldest all at once
	}
	m.mg.pushed[head] = true
	m.passOnEvent(txn, e, head)
}

// passEvidence sends the queued envelopes to their groups' hosts and
// topics. Call without m.mu.
func (n *Node) passEvidence() {
	m := n.member
	m.mu.Lock()
	items := m.mg.passQueue
	m.mg.passQueue = nil
	hosts := map[groupstate.GroupID][]string{}
	for _, it := range items {
		if e, ok := m.groups[it.group]; ok {
			hosts[it.group] = e.g.Hosts
		}
	}
	m.mu.Unlock()
	for _, it := range items {
		env, err := n.st.Get(it.mb, it.id)
		if err != nil {
			n.log.Info("cannot pass evidence on", "group", it.group.Short(), "envelope", it.id.Short(), "err", err)
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
		if err := n.spread(ctx, hosts[it.group], env); err != nil && n.ctx.Err() == nil {
			// Dropped: the hosts' anti-entropy sync moves it later.
			n.log.Info("passing evidence on failed", "group", it.group.Short(), "envelope", it.id.Short(), "err", err)
		}
		cancel()
	}
}

// spread relays an envelope already in the own store to every host named
// and gossips it on its topic.
func (n *Node) spread(ctx context.Context, hosts []string, env *envelope.Envelope) error {
	ais, _ := parseHosts(hosts)
	var errs []error
	for _, ai := range ais {
		if ai.ID == n.h.ID() {
			continue
		}
		n.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
		if err := n.Remote(ai.ID).RelayMessageToGroup(ctx, env.Mailbox(), env); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ai.ID.ShortString(), err))
		}
	}
	if n.relay.Joined(env.Mailbox()) {
		if err := n.relay.Publish(ctx, env); err != nil {
			errs = append(errs, err)
		}
	}
	n.sync.Trigger(env.Mailbox())
	return errors.Join(errs...)
}
