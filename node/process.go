package node

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/store"
)

// processPage is how many envelopes of the local store one transaction of
// the member database processes.
const processPage = 256

// runMember is the member's processing loop. The node's own store is the
// source of truth: whatever arrives (gossip, relay, catch-up) is stored
// first, and this loop reads each group mailbox from its saved local
// cursor, so nothing is processed twice or skipped even across crashes.
func (n *Node) runMember() {
	defer n.wg.Done()
	arrivals, stop := n.Subscribe(512)
	defer stop()
	tick := time.NewTicker(n.params.ProcessInterval)
	defer tick.Stop()
	catchup := time.NewTicker(n.params.CatchUpInterval)
	defer catchup.Stop()
	n.member.mu.Lock()
	n.member.mg.bot = n.params.Role == RoleBot
	n.member.mu.Unlock()
	if err := n.loadKeyPackages(); err != nil {
		n.log.Error("loading pending key packages failed", "err", err)
	}
	// The first pass goes before the manager loop and before sends: it
	// records own envelopes a crash left stored but unrecorded.
	n.processAll()
	close(n.member.recovered)
	n.wg.Add(1)
	go n.runManager()
	n.catchUpAllAsync()
	for {
		select {
		case <-n.ctx.Done():
			return
		case _, ok := <-arrivals:
			if !ok {
				return
			}
			// Coalesce a burst into one pass. The channel is closed when the
			// node closes: a receive then succeeds at once, so check it, or
			// this loop spins forever and Close waits for it forever.
			for drained := false; !drained; {
				select {
				case _, ok := <-arrivals:
					if !ok {
						return
					}
				default:
					drained = true
				}
			}
			n.processAll()
		case <-n.member.kick:
			n.processAll()
		case <-tick.C:
			n.processAll()
			// Other writes (sends, outbox, managed groups) are not counted:
			// an in-memory database looks at its level 0 on every tick.
			n.member.db.compact.Check()
		case <-catchup.C:
			n.catchUpAllAsync()
		}
	}
}

// kickProcessing asks the loop for a pass without waiting.
func (m *member) kickProcessing() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// processAll processes every group mailbox's new local envelopes. Key
// updates found on the way add the next epoch's mailbox, which is hosted
// and processed in the same call and caught up from the group's hosts.
func (n *Node) processAll() {
	m := n.member
	m.mu.Lock()
	var gapped []groupstate.GroupID
	var gappedMbs []envelope.MailboxID
	var moved []groupstate.GroupID
	for pass := 0; pass < maxEpochPasses; pass++ {
		for mb, ref := range m.mailboxes {
			e, ok := m.groups[ref.group]
			if !ok {
				continue
			}
			newGaps, err := n.processMailbox(e, mb, ref.epoch)
			if err != nil && n.ctx.Err() == nil {
				n.log.Error("processing group messages failed", "group", e.g.ID.Short(), "err", err)
			}
			if newGaps {
				gapped = append(gapped, e.g.ID)
				gappedMbs = append(gappedMbs, mb)
			}
		}
		n.retryDeferred()
		groups := n.hostAddedLocked()
		if len(groups) == 0 {
			break
		}
		moved = append(moved, groups...)
	}
	pass := len(m.mg.passQueue) > 0
	prune := len(m.pruneQueue) > 0
	m.mu.Unlock()
	if pass {
		n.passEvidence()
	}
	if prune {
		m.pruneClosed()
	}
	for _, mb := range gappedMbs {
		// A gap: reconcile with every known host of the mailbox...
		n.sync.Trigger(mb)
	}
	for _, id := range append(gapped, moved...) {
		// ...and fetch from every known host (for a new epoch: its
		// mailbox, from the start).
		n.catchUpAsync(id)
	}
	n.checkWelcomes()
}

// maxEpochPasses bounds the epochs one processing call moves a group
// through (the next call continues).
const maxEpochPasses = 16

// hostAddedLocked hosts the epoch mailboxes found since the last call and
// returns their groups. Call with m.mu held (the node's own locks come
// after it).
func (n *Node) hostAddedLocked() []groupstate.GroupID {
	m := n.member
	added := m.mg.added
	m.mg.added = nil
	var groups []groupstate.GroupID
	for _, mb := range added {
		ref, ok := m.mailboxes[mb]
		if !ok {
			continue
		}
		e, ok := m.groups[ref.group]
		if !ok {
			continue
		}
		n.setNamedHosts([]envelope.MailboxID{mb}, e.g.Hosts)
		if err := n.hostGroupMailbox(mb); err != nil && !errors.Is(err, ErrClosed) {
			n.log.Warn("could not host a new epoch's mailbox", "group", e.g.ID.Short(), "epoch", ref.epoch, "err", err)
		}
		if !slices.Contains(groups, ref.group) {
			groups = append(groups, ref.group)
		}
	}
	return groups
}

// hostGroupMailbox hosts a mailbox of one of this member's groups (store,
// serve, join its topic) like HostMailbox, but leaves its anti-entropy
// sync to start after the mailbox's first catch-up (CatchUp watches it):
// started together, sync and catch-up would both fetch the envelopes the
// member lacks, and a member is meant to fetch each envelope once.
//
// Until then it serves no sync session either (Serves): one a host
// starts toward it would race the catch-up the same way.
func (n *Node) hostGroupMailbox(mb envelope.MailboxID) error {
	n.mu.Lock()
	if _, hosted := n.hosted[mb]; !hosted {
		n.uncaught[mb] = struct{}{}
	}
	n.mu.Unlock()
	if err := n.host(mb, true); err != nil {
		return err
	}
	return n.relay.Join(mb)
}

// caughtUp marks a group mailbox's first catch-up done: anti-entropy sync
// with its hosts starts, both ways.
func (n *Node) caughtUp(mb envelope.MailboxID) {
	n.mu.Lock()
	delete(n.uncaught, mb)
	n.mu.Unlock()
	n.sync.Watch(mb)
}

// settle records the outcome of handling one envelope of an epoch in
// txn: shown, addressed to another member, deferred, or refused (marked
// processed, with the reason in the group's rejection log, counted, and
// kept in the node's recent rejections). Call with m.mu held.
func (n *Node) settle(txn *badger.Txn, e *groupEntry, id envelope.ID, epoch uint64, msg *Message, perr error, shown *[]*Message) error {
	switch {
	case perr == nil:
		if msg != nil {
			*shown = append(*shown, msg)
		}
		n.metrics.processed.Inc()
	case errors.Is(perr, errNotForMe), errors.Is(perr, errDeferred):
	default:
		// Not shown by design: content that is not a valid, signed,
		// encrypted message of this group, or that the group's rules
		// refuse. Logged per group, never dropped silently.
		n.log.Info("rejected message", "group", e.g.ID.Short(), "envelope", id.Short(), "reason", perr)
		n.member.noteRejection(e.g.ID, id, perr)
		if err := n.member.logRefusal(txn, e, id, epoch, perr); err != nil {
			return err
		}
		return txn.Set(gkey(pfxSeen, e.g.ID, idBytes(id)), u64(0))
	}
	return nil
}

// processMailbox processes one mailbox page by page. Call with m.mu held.
func (n *Node) processMailbox(e *groupEntry, mb envelope.MailboxID, epoch uint64) (newGaps bool, err error) {
	m := n.member
	key := mb.String()
	for {
		pg, err := n.st.Page(mb, store.Cursor(e.local.Local[key]), processPage, 8<<20)
		if err != nil {
			if errors.Is(err, store.ErrExpiredCursor) {
				// Retention removed envelopes we had not processed yet:
				// restart from the oldest retained one (dedupe skips the rest).
				n.log.Warn("own store expired unprocessed envelopes", "group", e.g.ID.Short())
				delete(e.local.Local, key)
				continue
			}
			return newGaps, err
		}
		if len(pg.Envelopes) == 0 {
			// Nothing new: no transaction (each is a durable write). A
			// cursor that moved past nothing (tombstones) is kept in
			// memory and saved with the next page that holds something;
			// lost in a crash, it only costs reading the same empty page.
			if len(pg.Next) > 0 {
				e.local.Local[key] = pg.Next
			}
			return newGaps, nil
		}
		var shown []*Message
		now := time.Now()
		err = m.db.db.Update(func(txn *badger.Txn) error {
			shown = shown[:0]
			for _, env := range pg.Envelopes {
				seen, err := seenTxn(txn, e.g.ID, env.ID())
				if err != nil {
					return err
				}
				if seen {
					continue
				}
				before := len(e.tracker.Gaps())
				msg, perr := m.process(txn, e, epoch, env, now)
				if len(e.tracker.Gaps()) > before {
					newGaps = true
				}
				if err := n.settle(txn, e, env.ID(), epoch, msg, perr, &shown); err != nil {
					return err
				}
			}
			if len(pg.Next) > 0 {
				e.local.Local[key] = pg.Next
			}
			// A notice of a gap this page filled goes (gapnotice.go).
			if err := m.resolveNoticesTxn(txn, e); err != nil {
				return err
			}
			return saveLocalTxn(txn, e)
		})
		if err != nil {
			m.flushNotices(false)
			m.flushRefUpdates(false)
			// The in-memory state may be ahead of the database: reload it.
			if rerr := m.reload(e); rerr != nil {
				n.log.Error("reloading group state failed", "group", e.g.ID.Short(), "err", rerr)
			}
			return newGaps, err
		}
		m.flushNotices(true)
		// What processing writes is about the page's size again
		// (plaintexts, seen marks, trackers); an in-memory database
		// compacts on it.
		var written int64
		for _, env := range pg.Envelopes {
			written += int64(env.Size())
		}
		m.db.compact.Wrote(written)
		for _, msg := range shown {
			m.notifyLocked(*msg)
		}
		m.flushRefUpdates(true)
		if !pg.More {
			return newGaps, nil
		}
	}
}

// reload re-reads a group (record, chain, bookkeeping) from the database
// after a failed transaction: the in-memory state may be ahead of it.
// Call with m.mu held.
func (m *member) reload(e *groupEntry) error {
	g := e.g
	gb, err := m.db.get(gkey(pfxGroup, e.g.ID))
	if err != nil {
		return err
	}
	if gb != nil {
		stored := &groupstate.Group{}
		if err := stored.UnmarshalBinary(gb); err != nil {
			return fmt.Errorf("%w: group %s: %v", ErrCorrupt, e.g.ID.Short(), err)
		}
		g = stored
	}
	for mb, ref := range m.mailboxes {
		if ref.group == g.ID {
			if _, ok := g.Secrets[ref.epoch]; !ok {
				delete(m.mailboxes, mb)
			}
		}
	}
	fresh, err := m.addEntry(g)
	if err != nil {
		return err
	}
	*e = *fresh
	m.groups[e.g.ID] = e
	return nil
}

func idBytes(id envelope.ID) []byte { return id[:] }
