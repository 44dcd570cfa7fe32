package node

// What the rest of the node asks of the outbox (outbox.go): where an own
// envelope goes, a queued envelope read back for an attempt, the list
// of what waits or failed, and the delivery state of own messages.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
)

// errOutboxGone: a queued envelope's record is no longer there.
var errOutboxGone = errors.New("outbox: envelope no longer queued")

// loadOutboxEnvelope reads a queued envelope's encoding.
func (m *member) loadOutboxEnvelope(gid groupstate.GroupID, id envelope.ID) (*envelope.Envelope, error) {
	b, err := m.db.get(outboxEnvKey(gid, id))
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, errOutboxGone
	}
	env, err := envelope.Decode(b, envelope.AbsoluteMaxSize)
	if err != nil {
		return nil, fmt.Errorf("%w: queued envelope %s: %v", ErrCorrupt, id.Short(), err)
	}
	if env.ID() != id {
		return nil, fmt.Errorf("%w: the envelope queued as %s is %s", ErrCorrupt, id.Short(), env.ID().Short())
	}
	return env, nil
}

// outboxTargets are where an envelope of a group goes.
type outboxTargets struct {
	peers []peer.ID
	// self: this node is one of the group's hosts.
	self     bool
	hostless bool
	err      error
}

// outboxTargets returns the group's hosts, or, for a group that names
// none, a few members met on the mailbox's topic.
func (n *Node) outboxTargets(gid groupstate.GroupID, mb envelope.MailboxID) outboxTargets {
	m := n.member
	m.mu.Lock()
	e, ok := m.groups[gid]
	if !ok {
		m.mu.Unlock()
		return outboxTargets{err: ErrUnknownGroup}
	}
	hosts, removed := e.g.Hosts, e.local.Removed
	m.mu.Unlock()
	if removed {
		return outboxTargets{err: fmt.Errorf("%w: this node was removed from the group", ErrRemoved)}
	}
	var t outboxTargets
	ais, _ := parseHosts(hosts)
	for _, ai := range ais {
		if ai.ID == n.h.ID() {
			t.self = true
			continue
		}
		n.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
		t.peers = append(t.peers, ai.ID)
	}
	if len(ais) > 0 {
		return t
	}
	t.hostless = true
	peers := n.relay.TopicPeers(mb)
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	t.peers = peers[:min(len(peers), maxTopicTargets)]
	return t
}

// clearDialBackoff drops libp2p's dial backoff for p: the outbox and the
// host redial loop keep schedules of their own, and libp2p's would fail
// the first dials after a host restarted without trying.
func (n *Node) clearDialBackoff(p peer.ID) {
	if sw, ok := n.h.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(p)
	}
}

// Outbox lists the own envelopes not stored yet and those given up,
// oldest first.
func (n *Node) Outbox() ([]OutboxEntry, error) {
	m, err := n.mem()
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	names := map[groupstate.GroupID]string{}
	for id, e := range m.groups {
		names[id] = e.g.Name
	}
	m.mu.Unlock()
	out := []OutboxEntry{}
	err = m.db.scan([]byte{pfxOutbox}, func(k, v []byte) error {
		if len(k) != 1+16+32 {
			return nil
		}
		rec, err := decodeOutboxRec(v)
		if err != nil || rec.state == outboxStateOK {
			return nil
		}
		var gid groupstate.GroupID
		copy(gid[:], k[1:17])
		var id envelope.ID
		copy(id[:], k[17:])
		out = append(out, OutboxEntry{ID: id.String(), Group: gid.String(), GroupName: names[gid], State: rec.stateName(),
			Created: rec.created.UTC(), NextAttempt: rec.next.UTC(), Attempts: int(rec.attempts), Reason: rec.reason})
		return nil
	})
	// The records say what changed last; attempts and the next one are
	// the loop's.
	ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
	live := m.outbox.snapshot(ctx)
	cancel()
	for i := range out {
		id, _ := envelope.ParseID(out[i].ID)
		if s, ok := live[id]; ok {
			out[i].Attempts, out[i].NextAttempt = s.attempts, s.next.UTC()
			if s.reason != "" {
				out[i].Reason = s.reason
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

// annotateDelivery sets the delivery state of the own messages in msgs
// (all of group gid) from the outbox records.
func (m *member) annotateDelivery(gid groupstate.GroupID, msgs []Message) error {
	own := false
	for i := range msgs {
		own = own || msgs[i].Own
	}
	if !own {
		return nil
	}
	recs := map[string]*outboxRec{}
	err := m.db.scan(gkey(pfxOutbox, gid), func(k, v []byte) error {
		if len(k) != 1+16+32 {
			return nil
		}
		rec, err := decodeOutboxRec(v)
		if err != nil {
			return nil
		}
		var id envelope.ID
		copy(id[:], k[17:])
		recs[id.String()] = rec
		return nil
	})
	for i := range msgs {
		if rec, ok := recs[msgs[i].ID]; ok && msgs[i].Own {
			msgs[i].Delivery = rec.stateName()
			msgs[i].StoredByCount = len(rec.storedBy)
			if rec.state != outboxStateOK {
				msgs[i].DeliveryError = rec.reason
			}
		}
	}
	return err
}
