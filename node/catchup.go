package node

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
	"github.com/meshnode/meshnode/store"
)

// CatchUpResult reports one catch-up of a group. JSON names are a CLI
// contract of `meshnode fetch`.
type CatchUpResult struct {
	Group   string            `json:"group"`
	Hosts   int               `json:"hosts"`
	Fetched int               `json:"fetched"`
	Failed  map[string]string `json:"failed,omitempty"`
	// Gaps lists messages that are still missing after asking every host.
	Gaps []Gap `json:"gaps,omitempty"`
}

// Gap is a run of an author's messages nobody could supply.
type Gap struct {
	Author string `json:"author"`
	Nick   string `json:"nick"`
	First  uint64 `json:"first"`
	Last   uint64 `json:"last"`
}

// maxTopicSources bounds the topic peers a host-less group catches up
// from. Every source is paged from its own cursor (from the start for a
// new peer), so fetching from every member would multiply the traffic;
// anti-entropy sync (hostsync) reconciles with all of them at a cost that
// grows with the difference instead.
const maxTopicSources = 3

// catchUpSources are the nodes to fetch a group's mailboxes from: the hosts
// the group names, or, for a group that names none (members host each
// other), a few peers met on its mailbox topics.
func (n *Node) catchUpSources(hosts []string, mbs []envelope.MailboxID) []peer.ID {
	seen := map[peer.ID]bool{n.h.ID(): true}
	var out []peer.ID
	ais, _ := parseHosts(hosts)
	for _, ai := range ais {
		if !seen[ai.ID] {
			seen[ai.ID] = true
			n.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
			out = append(out, ai.ID)
		}
	}
	if len(out) > 0 {
		return out
	}
	var topic []peer.ID
	for _, mb := range mbs {
		for _, p := range n.relay.TopicPeers(mb) {
			if !seen[p] {
				seen[p] = true
				topic = append(topic, p)
			}
		}
	}
	// Spread the load over the members instead of always asking the same.
	rand.Shuffle(len(topic), func(i, j int) { topic[i], topic[j] = topic[j], topic[i] })
	return topic[:min(len(topic), maxTopicSources)]
}

// redialInterval is how often a member re-dials the hosts its groups name
// when it is not connected to them.
const redialInterval = 10 * time.Second

// keepHostsConnected re-dials the hosts named by the member's groups after
// a network change or a host restart; the connection itself triggers a
// catch-up (watchHosts), so a member whose links return gets what it
// missed within seconds instead of at the next periodic catch-up.
func (n *Node) keepHostsConnected() {
	defer n.wg.Done()
	t := time.NewTicker(redialInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		n.mu.Lock()
		var want []peer.ID
		for _, ids := range n.namedHosts {
			want = append(want, ids...)
		}
		n.mu.Unlock()
		tried := map[peer.ID]bool{}
		for _, p := range want {
			if tried[p] || p == n.h.ID() || n.h.Network().Connectedness(p) == network.Connected {
				continue
			}
			tried[p] = true
			// This loop's schedule decides when to redial; libp2p's dial
			// backoff would make a host that just restarted look down.
			n.clearDialBackoff(p)
			ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
			// Dropped: an unreachable host is tried again next tick.
			_ = n.h.Connect(ctx, peer.AddrInfo{ID: p, Addrs: n.h.Peerstore().Addrs(p)})
			cancel()
		}
	}
}

// CatchUp fetches what the group's hosts hold beyond the saved cursors,
// processes it, and reports gaps that no host could fill.
func (n *Node) CatchUp(ctx context.Context, group string) (*CatchUpResult, error) {
	m, e, err := n.lockGroup(group)
	if err != nil {
		return nil, err
	}
	gid := e.g.ID
	lk := m.catchUpLock(gid)
	m.mu.Unlock()
	// One catch-up of a group at a time: two would fetch the same
	// envelopes from the same saved cursors.
	lk.Lock()
	defer lk.Unlock()
	m.mu.Lock()
	hosts, mbs := e.g.Hosts, m.mailboxesOf(e)
	m.mu.Unlock()
	n.progress.start(gid)
	defer n.progress.finish(gid)

	res := &CatchUpResult{Group: gid.String(), Failed: map[string]string{}}
	// A managed group's key updates add the next epoch's mailbox while
	// processing: fetch each new one in turn (the old ones are not fetched
	// again).
	done := map[envelope.MailboxID]bool{}
	asked := map[peer.ID]bool{}
	for round := 0; round < maxEpochPasses; round++ {
		var todo []envelope.MailboxID
		for _, mb := range mbs {
			if !done[mb] {
				todo = append(todo, mb)
				done[mb] = true
			}
		}
		if len(todo) == 0 {
			break
		}
		sources := n.catchUpSources(hosts, todo)
		n.progress.update(gid, func(pr *CatchUpProgress) { pr.Steps += len(sources) * len(todo) })
		for _, p := range sources {
			asked[p] = true
			for _, mb := range todo {
				got, err := n.catchUpFrom(ctx, gid, p, mb)
				res.Fetched += got
				if err != nil {
					res.Failed[p.String()] = err.Error()
				}
				n.progress.update(gid, func(pr *CatchUpProgress) { pr.Done++; pr.Failed = len(res.Failed) })
			}
		}
		for _, mb := range todo {
			// Caught up: from now on anti-entropy sync moves only what
			// one side lacks (see hostGroupMailbox).
			n.caughtUp(mb)
		}
		n.processAll()
		m.mu.Lock()
		if e, ok := m.groups[gid]; ok {
			mbs = m.mailboxesOf(e)
		}
		m.mu.Unlock()
	}
	res.Hosts = len(asked)
	res.Gaps, err = n.reportGaps(gid)
	return res, err
}

// catchUpFrom pages through mailbox mb on p from the saved cursor, storing
// (and thereby hosting) every envelope, and saves the cursor page by page.
func (n *Node) catchUpFrom(ctx context.Context, gid groupstate.GroupID, p peer.ID, mb envelope.MailboxID) (int, error) {
	m := n.member
	key := p.String() + "/" + mb.String()
	m.mu.Lock()
	e, ok := m.groups[gid]
	if !ok {
		m.mu.Unlock()
		return 0, ErrUnknownGroup
	}
	cursor := store.Cursor(e.local.Hosts[key])
	m.mu.Unlock()

	save := func(pg store.Page) error {
		for _, env := range pg.Envelopes {
			if _, err := n.Deliver(ctx, env, p); err != nil && !errors.Is(err, store.ErrExpired) {
				return err
			}
		}
		n.progress.update(gid, func(pr *CatchUpProgress) { pr.Fetched += len(pg.Envelopes) })
		if len(pg.Next) == 0 {
			return nil
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		e.local.Hosts[key] = pg.Next
		return m.db.db.Update(func(txn *badger.Txn) error { return saveLocalTxn(txn, e) })
	}
	_, got, err := n.fetchCl.CatchUp(ctx, p, mb, cursor, save)
	if errors.Is(err, store.ErrUnknownCursor) || errors.Is(err, store.ErrExpiredCursor) {
		// The host lost or expired our position: start over from its
		// oldest envelope; duplicates are skipped.
		n.log.Info("host reset our cursor; fetching from its start", "host", p, "err", err)
		var more int
		_, more, err = n.fetchCl.CatchUp(ctx, p, mb, nil, save)
		got += more
	}
	return got, err
}

// reportGaps turns gaps still open after a full catch-up into one notice
// each, shown in the group's messages.
func (n *Node) reportGaps(gid groupstate.GroupID) ([]Gap, error) {
	m := n.member
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.groups[gid]
	if !ok {
		return nil, ErrUnknownGroup
	}
	var gaps []Gap
	type notice struct {
		msg   *Message
		key   [32]byte
		run   groupstate.SeqRange
		mkKey []byte
	}
	var notices []notice
	now := time.Now().UTC()
	// The tracker is keyed by membership: name its author (the tracker
	// knows it; a managed group's chain too, for spaces recorded before
	// the tracker kept owners).
	var authors map[[32]byte][32]byte
	if e.chain != nil {
		authors = e.chain.Memberships()
	}
	for key, ranges := range e.tracker.Gaps() {
		author := e.tracker.Owner(key)
		if a, ok := authors[key]; ok {
			author = a
		}
		fp := keymgmt.Fingerprint(author[:])
		nick := ""
		if b, err := m.db.get(gkey(pfxProfile, gid, author[:])); err == nil && b != nil {
			if rec, err := decodeProfileRec(b); err == nil {
				nick = rec.Nick
			}
		}
		for _, r := range ranges {
			g := Gap{Author: fp, Nick: nick, First: r.First, Last: r.Last}
			gaps = append(gaps, g)
			if e.local.Reported[hexKey(key[:])] >= r.Last {
				continue
			}
			e.local.Reported[hexKey(key[:])] = r.Last
			msg := &Message{
				ID:    fmt.Sprintf("gap-%s-%d-%d", hexKey(key[:8]), r.First, r.Last),
				Group: gid.String(), GroupName: e.g.Name, Author: fp, Nick: nick,
				Text: noticeText([]groupstate.SeqRange{r}, displayName(nick, fp)),
				Sent: now, Received: now, Kind: KindGap, Verified: false, Seq: r.First, Epoch: e.g.Epoch,
			}
			id := sha256.Sum256([]byte(msg.ID))
			notices = append(notices, notice{msg: msg, key: key, run: r, mkKey: messageKey(gid, now.UnixMilli(), msg.Seq, id)})
		}
	}
	if len(notices) == 0 {
		return gaps, nil
	}
	err := m.db.db.Update(func(txn *badger.Txn) error {
		for _, nt := range notices {
			b, err := json.Marshal(nt.msg)
			if err != nil {
				return err
			}
			if err := txn.Set(nt.mkKey, b); err != nil {
				return err
			}
			// Resolved when the gap fills (gapnotice.go).
			if err := writeNoticeTxn(txn, gid, nt.key, nt.run, nt.mkKey); err != nil {
				return err
			}
		}
		return saveLocalTxn(txn, e)
	})
	if err != nil {
		return gaps, err
	}
	for _, nt := range notices {
		m.notifyLocked(*nt.msg)
	}
	return gaps, nil
}

func displayName(nick, fp string) string {
	if nick != "" {
		return nick
	}
	return fp
}

// catchUpAsync catches a group up in the background, at most one run per
// group at a time.
func (n *Node) catchUpAsync(gid groupstate.GroupID) {
	m := n.member
	m.mu.Lock()
	if n.ctx.Err() != nil {
		m.mu.Unlock()
		return
	}
	if m.catchingUp[gid] {
		// Run once more when the current run ends: it may have started
		// before what asked for this one (a new epoch's mailbox).
		m.catchUpAgain()[gid] = true
		m.mu.Unlock()
		return
	}
	m.catchingUp[gid] = true
	m.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			ctx, cancel := context.WithTimeout(n.ctx, 2*time.Minute)
			if _, err := n.CatchUp(ctx, gid.String()); err != nil && n.ctx.Err() == nil {
				n.log.Info("background catch-up failed", "group", gid.Short(), "err", err)
			}
			cancel()
			m.mu.Lock()
			again := m.catchUpAgain()[gid] && n.ctx.Err() == nil
			delete(m.catchUpAgain(), gid)
			if !again {
				delete(m.catchingUp, gid)
			}
			m.mu.Unlock()
			if !again {
				return
			}
		}
	}()
}

// catchUpLock is the lock that serialises a group's catch-ups. Call with
// m.mu held.
func (m *member) catchUpLock(gid groupstate.GroupID) *sync.Mutex {
	if m.mg.catchUpLocks == nil {
		m.mg.catchUpLocks = map[groupstate.GroupID]*sync.Mutex{}
	}
	lk, ok := m.mg.catchUpLocks[gid]
	if !ok {
		lk = &sync.Mutex{}
		m.mg.catchUpLocks[gid] = lk
	}
	return lk
}

// catchUpAgain marks groups whose catch-up was asked for while one ran.
// Call with m.mu held.
func (m *member) catchUpAgain() map[groupstate.GroupID]bool {
	if m.mg.catchUpAgain == nil {
		m.mg.catchUpAgain = map[groupstate.GroupID]bool{}
	}
	return m.mg.catchUpAgain
}

func (n *Node) catchUpAllAsync() {
	m := n.member
	m.mu.Lock()
	ids := make([]groupstate.GroupID, 0, len(m.groups))
	for id := range m.groups {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	for _, id := range ids {
		n.catchUpAsync(id)
	}
}

// watchHosts catches a group up whenever one of its hosts connects: after
// a reconnect the member fetches what it missed at once instead of waiting
// for the periodic catch-up.
func (n *Node) watchHosts() {
	n.h.Network().Notify(&network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) {
			p := c.RemotePeer()
			m := n.member
			// What waits for this peer (a group's host back up, a member of
			// a group without hosts) is tried at once.
			m.outbox.hostUp(p)
			m.mu.Lock()
			var groups []groupstate.GroupID
			for id, e := range m.groups {
				ais, _ := parseHosts(e.g.Hosts)
				for _, ai := range ais {
					if ai.ID == p {
						groups = append(groups, id)
						break
					}
				}
			}
			m.mu.Unlock()
			for _, id := range groups {
				n.catchUpAsync(id)
			}
		},
	})
}
