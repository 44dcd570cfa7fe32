package relay

import (
	"encoding/hex"
	"log/slog"
	"strings"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/admission"
)

// Remote subscriptions: what gossipsub remembers of other peers' topics.
//
// Gossipsub keeps, for every topic a connected peer announces, the set of
// peers subscribed to it, whether or not this node has joined the topic.
// Peer IDs cost nothing and an announcement costs a few dozen bytes, so
// without a filter a handful of throwaway peers grow that state without
// bound (ARCHITECTURE §11). SubscriptionFilter is the pubsub subscription
// filter every node installs (pubsub.WithSubscriptionFilter): pubsub
// learns only of announcements it lets through, and it lets through
//
//	topics      mailbox topics only (TopicPrefix and 64 hex digits)
//	per peer    SubscriptionsPerPeer topics
//	per prefix  SubscriptionsPerPrefix general (peer, topic) pairs from
//	            one network prefix (admission.Key; none for exempt ones)
//	in all      MaxSubscriptions pairs, of which general ones may not use
//	            the last ReservedSubscriptions
//
// A pair is privileged when the Interest function says so (the node: the
// topic is a hosted mailbox's and admission.Controller.Privileged holds:
// the mailbox is established or the peer trusted) and general otherwise,
// as with the stream gates. Announcements past a limit are dropped (one
// admission.ReasonSubscriptions refusal per RPC); unsubscriptions always
// pass. A peer's pairs are forgotten when its last connection closes, as
// pubsub forgets them. The filter runs in pubsub's event loop: it only
// looks up maps.

// Interest reports whether peer from's subscription to the mailbox topic
// whose hash is h uses the capacity reserved for topics of interest. It
// runs in pubsub's event loop and must not call into pubsub.
type Interest func(h [32]byte, from peer.ID) bool

// SubscriptionUsage is what a SubscriptionFilter tracks now.
type SubscriptionUsage struct {
	// Peers with at least one subscription tracked; Pairs of (peer,
	// topic) in all, General of them not privileged.
	Peers, Pairs, General int
}

// SubscriptionFilter bounds the remote subscriptions pubsub tracks; see
// above. It implements pubsub.SubscriptionFilter.
type SubscriptionFilter struct {
	p        Params
	net      network.Network
	adm      *admission.Controller
	interest Interest
	log      *slog.Logger
	notifiee *network.NotifyBundle

	mu      sync.Mutex
	peers   map[peer.ID]*subPeer
	general map[admission.Key]int
	pairs   int
	gen     int
}

type subPeer struct {
	key    admission.Key
	topics map[string]bool // topic → privileged
}

var _ pubsub.SubscriptionFilter = (*SubscriptionFilter)(nil)

// NewSubscriptionFilter returns the filter for a node on net with p's
// limits, counting refusals and prefixes with adm (nil: no per-prefix
// limit) and privileged pairs with interest (nil: none). Close it when
// the node closes.
func NewSubscriptionFilter(net network.Network, p Params, adm *admission.Controller, interest Interest, log *slog.Logger) (*SubscriptionFilter, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	if interest == nil {
		interest = func([32]byte, peer.ID) bool { return false }
	}
	if log == nil {
		log = slog.Default().With("component", "relay")
	}
	f := &SubscriptionFilter{
		p: p, net: net, adm: adm, interest: interest, log: log,
		peers:   map[peer.ID]*subPeer{},
		general: map[admission.Key]int{},
	}
	f.notifiee = &network.NotifyBundle{DisconnectedF: func(n network.Network, c network.Conn) {
		if p := c.RemotePeer(); n.Connectedness(p) != network.Connected {
			f.forget(p)
		}
	}}
	net.Notify(f.notifiee)
	return f, nil
}

// Option installs f in pubsub.
func (f *SubscriptionFilter) Option() pubsub.Option { return pubsub.WithSubscriptionFilter(f) }

// Close stops following disconnections.
func (f *SubscriptionFilter) Close() { f.net.StopNotify(f.notifiee) }

// CanSubscribe allows this node's own joins of mailbox topics.
func (f *SubscriptionFilter) CanSubscribe(topic string) bool {
	_, ok := ParseTopic(topic)
	return ok
}

// FilterIncomingSubscriptions returns the subscriptions in subs that
// pubsub may track; see SubscriptionFilter.
func (f *SubscriptionFilter) FilterIncomingSubscriptions(from peer.ID, subs []*pb.RPC_SubOpts) ([]*pb.RPC_SubOpts, error) {
	if f.net.Connectedness(from) != network.Connected {
		// Pubsub forgets a peer with its last connection; what arrives
		// after that is not kept here either.
		return nil, nil
	}
	// Privilege is looked up before f.mu is taken (Interest takes the
	// node's locks).
	priv := make([]bool, len(subs))
	for i, s := range subs {
		if !s.GetSubscribe() {
			continue
		}
		h, ok := ParseTopic(s.GetTopicid())
		priv[i] = ok && f.interest(h, from)
	}
	out := make([]*pb.RPC_SubOpts, 0, len(subs))
	dropped := 0
	f.mu.Lock()
	ps := f.peers[from]
	if ps == nil {
		ps = &subPeer{key: f.adm.KeyOfPeer(from), topics: map[string]bool{}}
		f.peers[from] = ps
	}
	for i, s := range subs {
		topic := s.GetTopicid()
		was, tracked := ps.topics[topic]
		switch {
		case !s.GetSubscribe():
			if tracked {
				f.drop(ps, topic, was)
				out = append(out, s)
			}
		case tracked:
			out = append(out, s)
		case f.admit(ps, topic, priv[i]):
			out = append(out, s)
		default:
			dropped++
		}
	}
	if len(ps.topics) == 0 {
		delete(f.peers, from)
	}
	f.mu.Unlock()
	if dropped > 0 {
		f.adm.Refuse(admission.ReasonSubscriptions)
		f.log.Debug("subscriptions not tracked", "peer", from, "dropped", dropped, "of", len(subs))
	}
	return out, nil
}

// admit adds a new (peer, topic) pair if the limits allow it. Call with
// f.mu held.
func (f *SubscriptionFilter) admit(ps *subPeer, topic string, privileged bool) bool {
	if _, ok := ParseTopic(topic); !ok {
		return false
	}
	switch {
	case len(ps.topics) >= f.p.SubscriptionsPerPeer, f.pairs >= f.p.MaxSubscriptions:
		return false
	case !privileged && f.gen >= f.p.MaxSubscriptions-f.p.ReservedSubscriptions:
		return false
	case !privileged && ps.key.IsValid() && f.general[ps.key] >= f.p.SubscriptionsPerPrefix:
		return false
	}
	ps.topics[topic] = privileged
	f.pairs++
	if !privileged {
		f.gen++
		if ps.key.IsValid() {
			f.general[ps.key]++
		}
	}
	return true
}

// drop removes a tracked pair. Call with f.mu held.
func (f *SubscriptionFilter) drop(ps *subPeer, topic string, privileged bool) {
	delete(ps.topics, topic)
	f.pairs--
	if !privileged {
		f.gen--
		if ps.key.IsValid() {
			if f.general[ps.key] <= 1 {
				delete(f.general, ps.key)
			} else {
				f.general[ps.key]--
			}
		}
	}
}

// forget drops every pair of p.
func (f *SubscriptionFilter) forget(p peer.ID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ps := f.peers[p]
	if ps == nil {
		return
	}
	for topic, privileged := range ps.topics {
		f.drop(ps, topic, privileged)
	}
	delete(f.peers, p)
}

// Usage reports what the filter tracks now.
func (f *SubscriptionFilter) Usage() SubscriptionUsage {
	if f == nil {
		return SubscriptionUsage{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return SubscriptionUsage{Peers: len(f.peers), Pairs: f.pairs, General: f.gen}
}

// ParseTopic returns the hash in a mailbox topic name (false: not a
// mailbox topic in TopicName's form, lower-case hex).
func ParseTopic(topic string) ([32]byte, bool) {
	var h [32]byte
	rest, ok := strings.CutPrefix(topic, TopicPrefix)
	if !ok || len(rest) != 2*len(h) {
		return h, false
	}
	if _, err := hex.Decode(h[:], []byte(rest)); err != nil || hex.EncodeToString(h[:]) != rest {
		return h, false
	}
	return h, true
}
