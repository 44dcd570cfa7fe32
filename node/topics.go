package node

import (
	"container/list"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/relay"
)

// Topics of hosted mailboxes: joined while they are active, not for ever.
//
// A node hosts two kinds of mailboxes. Pinned ones it hosts on purpose
// (its own groups' mailboxes, the allowlist's, its directory's request
// mailboxes: HostMailbox, hostGroupMailbox): their gossip topics stay
// joined for as long as they are hosted. The others it stores because
// someone relayed to them under an open or allowlist policy (hostStored):
// at start, every mailbox in the store; later, every one that receives a
// new envelope. Joining a topic costs a subscription, a validator, a
// reader goroutine and a share of every gossip heartbeat, so on a host
// with 100,000 such mailboxes these are joined only while active:
//
//	activity on m (an envelope stored, a fetch or relay request served,
//	a peer announcing a subscription to m's topic)
//	    └─► touch(m) ─► topic loop: join m's topic and watch it for sync,
//	                    most recently active first; past MaxJoinedTopics,
//	                    leave the least recently active one
//
// Idle mailboxes live on disk only: the store keeps them and serves
// fetches; gossip and sync resume with activity. One goroutine (runTopics)
// owns the order of joined topics and does every lazy join and leave, at
// most joinRate a second (a flood of subscription announcements cannot
// make the host churn through its topics); touches it cannot take at once
// are dropped (activity recurs).

// joinRate and joinBurst bound lazy topic joins.
const (
	joinRate  = 50
	joinBurst = 100
)

// touchBuffer is how many touches wait for the topic loop.
const touchBuffer = 256

// topicState is the node's record of hosted mailboxes' topics; n.mu
// guards it.
type topicState struct {
	pinned map[envelope.MailboxID]struct{}
	// byHash maps the hash in a hosted mailbox's topic name (pinned or
	// not) back to the mailbox, for subscription announcements.
	byHash  map[[32]byte]envelope.MailboxID
	touches chan envelope.MailboxID
}

func newTopicState() topicState {
	return topicState{
		pinned:  map[envelope.MailboxID]struct{}{},
		byHash:  map[[32]byte]envelope.MailboxID{},
		touches: make(chan envelope.MailboxID, touchBuffer),
	}
}

// pinned reports whether m is hosted on purpose.
func (n *Node) pinned(m envelope.MailboxID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.topics.pinned[m]
	return ok
}

// host records m as hosted (pinned or not). Call without n.mu.
func (n *Node) host(m envelope.MailboxID, pin bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	n.hosted[m] = struct{}{}
	if pin {
		n.topics.pinned[m] = struct{}{}
	}
	n.topics.byHash[relay.TopicHash(m)] = m
	return nil
}

// hostStored hosts m without joining its topic (it is joined while m is
// active).
func (n *Node) hostStored(m envelope.MailboxID) error { return n.host(m, false) }

// touch records activity on m; the topic loop joins its topic if m is a
// hosted mailbox that is not pinned. It never blocks.
func (n *Node) touch(m envelope.MailboxID) {
	select {
	case n.topics.touches <- m:
	default:
	}
}

// inspectRPC looks at the subscriptions a peer announces: a peer on the
// topic of a hosted mailbox makes it active. It runs in pubsub's event
// loop, so it only looks up a map and hands touches to the topic loop.
func (n *Node) inspectRPC(_ peer.ID, rpc *pubsub.RPC) error {
	for _, sub := range rpc.GetSubscriptions() {
		if !sub.GetSubscribe() {
			continue
		}
		h, ok := relay.ParseTopic(sub.GetTopicid())
		if !ok {
			continue
		}
		n.mu.Lock()
		m, hosted := n.topics.byHash[h]
		_, pinned := n.topics.pinned[m]
		n.mu.Unlock()
		if hosted && !pinned {
			n.touch(m)
		}
	}
	return nil
}

// topicOfInterest is the node's relay.Interest: a peer's subscription to
// the topic of a hosted mailbox that is established, or from a trusted
// peer, uses the share of pubsub's subscription limits reserved for them.
// It runs in pubsub's event loop: map lookups only.
func (n *Node) topicOfInterest(h [32]byte, from peer.ID) bool {
	n.mu.Lock()
	m, hosted := n.topics.byHash[h]
	n.mu.Unlock()
	return hosted && n.adm.Privileged(m, from)
}

// runTopics is the topic loop: it owns the recency order of lazily joined
// topics (lru, most recent at the front) and joins and leaves them.
func (n *Node) runTopics() {
	defer n.wg.Done()
	lru := list.New()
	at := map[envelope.MailboxID]*list.Element{}
	limit := rate.NewLimiter(joinRate, joinBurst)
	for {
		var m envelope.MailboxID
		select {
		case m = <-n.topics.touches:
		case <-n.ctx.Done():
			return
		}
		if e, ok := at[m]; ok {
			lru.MoveToFront(e)
			continue
		}
		if !n.Hosts(m) || n.pinned(m) || !limit.Allow() {
			continue
		}
		if err := n.relay.Join(m); err != nil {
			if n.ctx.Err() == nil {
				n.log.Debug("could not join an active mailbox's topic", "mailbox", m.Short(), "err", err)
			}
			continue
		}
		n.sync.Watch(m)
		at[m] = lru.PushFront(m)
		for lru.Len() > n.params.MaxJoinedTopics {
			old := lru.Remove(lru.Back()).(envelope.MailboxID)
			delete(at, old)
			if n.pinned(old) {
				continue // pinned since: stays joined
			}
			n.sync.Unwatch(old)
			if err := n.relay.Leave(old); err != nil && n.ctx.Err() == nil {
				n.log.Debug("could not leave an idle mailbox's topic", "mailbox", old.Short(), "err", err)
			}
		}
	}
}
