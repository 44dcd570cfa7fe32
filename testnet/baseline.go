package testnet

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/meshnode/meshnode/relay"
)

// The baseline is plain gossipsub carrying the same messages over the same
// nodes, links and connections as meshnode: a second gossipsub router on
// every host (its own protocol ID, meshnode's pubsub options), one topic
// per group, subscribed by every node of the group — its members and the
// nodes it names as hosts. Each send also publishes the same text there,
// from the author's node, at the same instant.
//
// Why the hosts' mesh degree is raised. The connections a group has are
// the ones meshnode makes: every member dials the group's hosts and
// nothing else, so under the server and bot strategies the group is a
// star around its host. Gossipsub with its default degree (D = 6, Dhi =
// 12) keeps at most 12 of the hub's 20 members in its mesh, prunes back to
// 6, and the pruned members may not graft again for the one-minute prune
// backoff. The other members then receive the baseline only through gossip
// (IHAVE/IWANT at the 1 s heartbeat, to six of them per heartbeat, for
// three heartbeats): a p50 of 0.5 s, a p99 of 3 s and 12% of messages
// never delivered in small.json, which was the baseline reported before.
// Meshnode's hosts do not have that limit: a host that receives an
// envelope by direct relay publishes it as its originator, and flood
// publishing sends it to every subscriber it is connected to. So the
// baseline's hosting nodes (every node a group names as host, members
// included under peers and hybrid) run gossipsub with D = Dlo = Dhi at
// least the number of nodes of their largest group: their mesh is every
// topic peer, and they forward each message to all of them, as meshnode's
// hosts do. The other members keep gossipsub's defaults. Authors flood
// publish (meshnode's option) to every topic peer they are connected to.
//
// Before traffic starts, the run waits (up to baselineReadyWait) until
// every hosting node's mesh holds every member of its groups it is
// connected to; the fraction reached is reported as mesh_coverage.

// baselineProtocol is the gossipsub protocol ID of the baseline: a second
// gossipsub router on every host, apart from meshnode's.
const baselineProtocol = protocol.ID("/meshnode-testnet/baseline-gossipsub/1.2.0")

// baselineReadyWait bounds the wait for the baseline's meshes after the
// warmup.
const baselineReadyWait = 10 * time.Second

func baselineFeatures(f pubsub.GossipSubFeature, p protocol.ID) bool {
	return p == baselineProtocol && f != pubsub.GossipSubFeatureExtensions
}

func baselineTopic(gi int) string { return fmt.Sprintf("/meshnode-testnet/baseline/%d", gi) }

// hubParams are the gossipsub parameters of a hosting node whose largest
// group has n nodes: a mesh of every topic peer.
func hubParams(n int) pubsub.GossipSubParams {
	p := pubsub.DefaultGossipSubParams()
	if d := n - 1; d > p.Dhi {
		p.D, p.Dlo, p.Dhi = d, d, d
	} else if d > p.D {
		p.D, p.Dlo = d, d
	}
	return p
}

// hosting returns, per node, the size of the largest group it hosts (0:
// it hosts none).
func (m *sim) hosting() []int {
	out := make([]int, len(m.nodes))
	for _, g := range m.grps {
		for _, h := range g.hosts {
			out[h] = max(out[h], len(g.nodes))
		}
	}
	return out
}

// startBaseline starts a second gossipsub router on every node, with
// meshnode's pubsub options, and subscribes each group's nodes to the
// group's baseline topic.
func (m *sim) startBaseline() error {
	hub := m.hosting()
	for _, sn := range m.nodes {
		opts, err := relay.PubSubOptions(relay.DefaultParams())
		if err != nil {
			return err
		}
		sn.mesh = newMeshTracer()
		opts = append(opts,
			pubsub.WithGossipSubProtocols([]protocol.ID{baselineProtocol}, baselineFeatures),
			pubsub.WithMessageIdFn(func(msg *pb.Message) string {
				sum := sha256.Sum256(msg.Data)
				return string(sum[:])
			}),
			pubsub.WithRawTracer(sn.mesh))
		if hub[sn.idx] > 0 {
			opts = append(opts, pubsub.WithGossipSubParams(hubParams(hub[sn.idx])))
		}
		ps, err := pubsub.NewGossipSub(m.ctx, sn.h, opts...)
		if err != nil {
			return fmt.Errorf("testnet: baseline gossipsub: %w", err)
		}
		sn.bps = ps
		for _, gi := range sn.groups {
			t, err := ps.Join(baselineTopic(gi))
			if err != nil {
				return err
			}
			sub, err := t.Subscribe()
			if err != nil {
				return err
			}
			sn.topics[gi] = t
			m.wg.Add(1)
			go m.baselineReader(sn, sub)
		}
	}
	return nil
}

// baselineCoverage is the fraction of (hosting node, group, member of the
// group connected to it) whose member is in the hosting node's mesh.
func (m *sim) baselineCoverage() float64 {
	var want, have int
	for _, g := range m.grps {
		topic := baselineTopic(g.idx)
		for _, h := range g.hosts {
			hn := m.nodes[h]
			for _, mi := range g.plan.Members {
				if mi == h || !m.fab.reachable(h, mi) || len(hn.h.Network().ConnsToPeer(m.nodes[mi].h.ID())) == 0 {
					continue
				}
				want++
				if hn.mesh.inMesh(topic, m.nodes[mi].h.ID()) {
					have++
				}
			}
		}
	}
	if want == 0 {
		return 1
	}
	return float64(have) / float64(want)
}

// waitBaseline waits until every hosting node's baseline mesh holds every
// member connected to it, at most baselineReadyWait, and returns the
// coverage reached.
func (m *sim) waitBaseline(ctx context.Context) (float64, error) {
	deadline := time.Now().Add(baselineReadyWait)
	for {
		c := m.baselineCoverage()
		if c >= 1 || time.Now().After(deadline) {
			return c, nil
		}
		if err := sleepUntil(ctx, time.Now().Add(100*time.Millisecond)); err != nil {
			return c, err
		}
	}
}

func (m *sim) baselineReader(sn *simNode, sub *pubsub.Subscription) {
	defer m.wg.Done()
	defer sub.Cancel()
	self := sn.h.ID()
	for {
		msg, err := sub.Next(m.ctx)
		if err != nil {
			return
		}
		if msg.ReceivedFrom == self || !sn.member {
			continue
		}
		if id, ok := parseText(string(msg.Data)); ok {
			m.col.baseShown(id, sn.idx, time.Now())
		}
	}
}

func (m *sim) publishBaseline(ev Event) {
	t := m.nodes[ev.Node].topics[ev.Group]
	if t == nil {
		return
	}
	data := []byte(messageText(ev.Msg, m.s.Traffic.Size))
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		// Dropped: a baseline message that cannot be published is simply
		// not delivered, which the baseline's delivery ratio shows.
		_ = t.Publish(m.ctx, data)
	}()
}

// meshTracer follows one baseline router's mesh (pubsub calls it
// synchronously from its event loop: it only records).
type meshTracer struct {
	mu   sync.Mutex
	mesh map[string]map[peer.ID]bool
}

func newMeshTracer() *meshTracer { return &meshTracer{mesh: map[string]map[peer.ID]bool{}} }

func (t *meshTracer) inMesh(topic string, p peer.ID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mesh[topic][p]
}

func (t *meshTracer) Graft(p peer.ID, topic string) {
	t.mu.Lock()
	if t.mesh[topic] == nil {
		t.mesh[topic] = map[peer.ID]bool{}
	}
	t.mesh[topic][p] = true
	t.mu.Unlock()
}

func (t *meshTracer) Prune(p peer.ID, topic string) {
	t.mu.Lock()
	delete(t.mesh[topic], p)
	t.mu.Unlock()
}

func (t *meshTracer) RemovePeer(p peer.ID) {
	t.mu.Lock()
	for _, m := range t.mesh {
		delete(m, p)
	}
	t.mu.Unlock()
}

func (t *meshTracer) Leave(topic string) {
	t.mu.Lock()
	delete(t.mesh, topic)
	t.mu.Unlock()
}

func (*meshTracer) OnNewOutboundStream(peer.ID, protocol.ID) {}
func (*meshTracer) OnClosedOutboundStream(peer.ID)           {}
func (*meshTracer) AddPeer(peer.ID, protocol.ID)             {}
func (*meshTracer) Join(string)                              {}
func (*meshTracer) ValidateMessage(*pubsub.Message)          {}
func (*meshTracer) DeliverMessage(*pubsub.Message)           {}
func (*meshTracer) RejectMessage(*pubsub.Message, string)    {}
func (*meshTracer) DuplicateMessage(*pubsub.Message)         {}
func (*meshTracer) ThrottlePeer(peer.ID)                     {}
func (*meshTracer) RecvRPC(*pubsub.RPC)                      {}
func (*meshTracer) SendRPC(*pubsub.RPC, peer.ID)             {}
func (*meshTracer) DropRPC(*pubsub.RPC, peer.ID)             {}
func (*meshTracer) UndeliverableMessage(*pubsub.Message)     {}
