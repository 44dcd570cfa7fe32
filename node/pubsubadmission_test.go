package node

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/admission"
	"github.com/meshnode/meshnode/envelope"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/relay"
)

// subscriptionRPC is a gossipsub RPC announcing subscriptions (subscribe
// true) or unsubscriptions to topics, built by hand (pubsub's protobuf
// layout: RPC.subscriptions = 1, SubOpts.subscribe = 1, SubOpts.topicid
// = 2) and framed with a uvarint length as pubsub reads it.
func subscriptionRPC(subscribe bool, topics ...string) []byte {
	var rpc []byte
	for _, topic := range topics {
		sub := []byte{0x08, 0}
		if subscribe {
			sub[1] = 1
		}
		sub = append(sub, 0x12)
		sub = binary.AppendUvarint(sub, uint64(len(topic)))
		sub = append(sub, topic...)
		rpc = append(rpc, 0x0a)
		rpc = binary.AppendUvarint(rpc, uint64(len(sub)))
		rpc = append(rpc, sub...)
	}
	return append(binary.AppendUvarint(nil, uint64(len(rpc))), rpc...)
}

// announcer is a throwaway peer that speaks gossipsub by hand: one stream
// on which it announces topics; the stream stays open (pubsub forgets a
// peer's subscriptions when it closes). ListPeers shows only peers pubsub
// holds a stream to, so it accepts the host's.
type announcer struct {
	h host.Host
	s network.Stream
}

func newAnnouncer(t *testing.T, ip string, hst *Node) *announcer {
	t.Helper()
	h := rawHost(t, ip)
	// It accepts the host's gossipsub stream (and ignores what comes),
	// so pubsub counts it as a peer of its own.
	h.SetStreamHandler(pubsub.GossipSubID_v12, func(s network.Stream) { _, _ = io.Copy(io.Discard, s); s.Reset() })
	dial(t, h, hst)
	s, err := h.NewStream(context.Background(), hst.ID(), pubsub.GossipSubID_v12, pubsub.GossipSubID_v11)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Reset() })
	return &announcer{h: h, s: s}
}

func (a *announcer) send(t *testing.T, subscribe bool, topics ...string) {
	t.Helper()
	if _, err := a.s.Write(subscriptionRPC(subscribe, topics...)); err != nil {
		t.Fatal(err)
	}
}

// trackedBy counts, per peer, the topics pubsub holds it subscribed to.
func trackedBy(n *Node, topics []string) map[peer.ID]int {
	out := map[peer.ID]int{}
	for _, topic := range topics {
		for _, p := range n.ps.ListPeers(topic) {
			out[p]++
		}
	}
	return out
}

// Topic announcements from many throwaway peer IDs on two networks, in
// hand-built gossipsub RPCs: each peer announces 1,500 mailbox topics
// and some names that are not mailbox topics. Pubsub tracks no more than
// the subscription limits (per peer, per network, in all, with a share
// reserved for established mailboxes); a member's node on a third
// network still subscribes to the established mailbox's topic and its
// envelopes arrive by gossip; the attackers' subscriptions are forgotten
// when they leave.
func TestSubscriptionFloodFromManyPeers(t *testing.T) {
	leakCheck(t)
	const perPeer, perPrefix, maxSubs, reserved = 64, 256, 768, 256
	hst, k := establishedHost(t, func(p *Params) {
		p.Relay.SubscriptionsPerPeer = perPeer
		p.Relay.SubscriptionsPerPrefix = perPrefix
		p.Relay.MaxSubscriptions = maxSubs
		p.Relay.ReservedSubscriptions = reserved
	})
	m := tu.Mailbox(k)
	est := relay.TopicName(m)

	var flood []string
	for range 1500 {
		flood = append(flood, relay.TopicName(tu.Mailbox(tu.WriteKey(t))))
	}
	junk := []string{"", "/meshnode/mbx/1/zz", strings.ToUpper(flood[0]), strings.Repeat("x", 4096)}
	var attackers []*announcer
	for _, net := range []string{attackerNet, "127.0.3."} {
		for i := range 12 {
			a := newAnnouncer(t, fmt.Sprintf("%s%d", net, i+1), hst)
			attackers = append(attackers, a)
			// A subscription to the established mailbox's topic (an
			// insider), then the flood, then its unsubscription: once
			// that is seen, pubsub has handled the whole flood.
			a.send(t, true, est)
		}
	}
	for _, a := range attackers {
		tu.Eventually(t, 30*time.Second, func() bool { return slices.Contains(hst.ps.ListPeers(est), a.h.ID()) },
			"the host to see %s's first subscription", a.h.ID())
		for i := 0; i < len(flood); i += 500 {
			a.send(t, true, flood[i:i+500]...)
		}
		a.send(t, true, junk...)
		a.send(t, false, est)
	}
	for _, a := range attackers {
		tu.Eventually(t, 30*time.Second, func() bool { return !slices.Contains(hst.ps.ListPeers(est), a.h.ID()) },
			"the host to handle %s's flood", a.h.ID())
	}

	byPeer := trackedBy(hst, flood)
	total := 0
	for p, n := range byPeer {
		if n > perPeer {
			t.Errorf("pubsub tracks %d topics of peer %s, at most %d", n, p, perPeer)
		}
		total += n
	}
	if total > maxSubs-reserved {
		t.Errorf("pubsub tracks %d of the attackers' subscriptions, at most %d (the general share)", total, maxSubs-reserved)
	}
	if total < perPrefix {
		t.Fatalf("pubsub tracks %d of the attackers' subscriptions: the flood did not arrive", total)
	}
	for _, topic := range junk[1:] { // ListPeers("") lists every peer
		if len(hst.ps.ListPeers(topic)) > 0 {
			t.Errorf("pubsub tracks a subscription to %.40q", topic)
		}
	}
	if u := hst.subs.Usage(); u.Pairs > maxSubs || u.General > maxSubs-reserved {
		t.Errorf("filter usage %+v over its limits", u)
	}
	if !refused(hst, admission.ReasonSubscriptions) {
		t.Error("dropped subscriptions not counted")
	}

	// A member's node joins the established mailbox's topic: the host
	// tracks it (reserved share) and stores what it gossips.
	mem := startNode(t, nodeOpts{})
	if err := mem.HostMailbox(m); err != nil {
		t.Fatal(err)
	}
	connect(t, mem, hst)
	tu.Eventually(t, 30*time.Second, func() bool { return slices.Contains(hst.ps.ListPeers(est), mem.ID()) },
		"the host to track the member's subscription during the attack")
	var sent []*envelope.Envelope
	tu.Eventually(t, 30*time.Second, func() bool {
		env := tu.Envelope(t, k, 200)
		sent = append(sent, env)
		if err := mem.Relay().Publish(context.Background(), env); err != nil {
			t.Fatal(err)
		}
		for _, e := range sent {
			if ok, _ := hst.Store().Has(m, e.ID()); ok {
				return true
			}
		}
		return false
	}, "an envelope gossiped by the member to reach the host")

	// The attackers leave: what they announced is forgotten.
	for _, a := range attackers {
		a.h.Close()
	}
	tu.Eventually(t, 30*time.Second, func() bool {
		u := hst.subs.Usage()
		return u.Peers <= 1 && len(trackedBy(hst, flood)) == 0
	}, "the attackers' subscriptions to be forgotten")
}

// refused reports whether n counted a refusal for reason.
func refused(n *Node, reason admission.Reason) bool {
	for _, r := range n.AdmissionState().Refusals {
		if r.Reason == reason && r.Total > 0 {
			return true
		}
	}
	return false
}
