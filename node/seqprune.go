package node

import (
	"slices"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/groupstate"
)

// Bounds on sequence records (issue 13). A record ('S' gid key seq, see
// admission.go) is written for every admitted number of every membership;
// they were never deleted. Two rules bound them without reopening
// replays — the tracker, not the records, is what refuses a number seen
// before (a replay whose record is gone is still refused as one):
//
//   - A live membership keeps the records of its latest seqRecordWindow
//     numbers: admitting number s deletes the record of s-seqRecordWindow.
//     What an older record gave: the evidence when its author signs
//     another message with that number (without it the copy is refused
//     as conflicting_copy, accusing no one), and the flag of a message
//     shown before its author's removal that the remover had not seen —
//     when the remover lagged that author by more than the window.
//   - A membership that a removal ended, once every number the removal
//     admits has arrived (groupstate.MembershipSettled), is closed in the
//     tracker (one range: every number seen) and all its records go, in
//     batches after the processing pass (a removed member who posted a
//     million messages is not deleted in one transaction). Closed spaces
//     whose records a crash left behind are queued again at load.
const seqRecordWindow = 4096

// pruneBatch is how many records one transaction deletes.
const pruneBatch = 1024

// prunedSpace is a closed sequence space whose records are to go.
type prunedSpace struct {
	group groupstate.GroupID
	key   [32]byte
}

// recordSeqTxn writes the record of an admitted number of a space and
// deletes the one that falls out of the window.
func (m *member) recordSeqTxn(txn *badger.Txn, g groupstate.GroupID, key [32]byte, seq uint64, rec seqRec) error {
	if err := txn.Set(seqRecKey(g, key, seq), rec.marshal()); err != nil {
		return err
	}
	if w := m.window(); seq > w {
		return txn.Delete(seqRecKey(g, key, seq-w))
	}
	return nil
}

func (m *member) window() uint64 {
	if m.seqWindow > 0 {
		return m.seqWindow
	}
	return seqRecordWindow
}

// settleMembership closes the sequence space key of a membership that
// the removal ev ended, once nothing of it is left to admit, and queues
// its records for deletion. Call with m.mu held.
func (m *member) settleMembership(e *groupEntry, key [32]byte, ev *groupstate.Event) {
	if e.tracker.Closed(key) || !groupstate.MembershipSettled(e.tracker, key, ev) {
		return
	}
	e.tracker.Close(key)
	m.queuePrune(e.g.ID, key)
}

// settleAuthor is settleMembership for the membership of an admitted
// payload (a message in flight at its author's removal may be the last
// one the removal admits). Call with m.mu held.
func (m *member) settleAuthor(e *groupEntry, author [32]byte, added groupstate.EventID, key [32]byte) {
	if e.tracker.Closed(key) {
		return
	}
	if rm, ok := e.chain.RemovalOf(author, added); ok {
		m.settleMembership(e, key, rm)
	}
}

// queuePrune queues a closed space's records for deletion. Call with m.mu
// held.
func (m *member) queuePrune(g groupstate.GroupID, key [32]byte) {
	it := prunedSpace{group: g, key: key}
	if !slices.Contains(m.pruneQueue, it) {
		m.pruneQueue = append(m.pruneQueue, it)
	}
}

// pruneClosed deletes the records of the queued closed spaces, a batch per
// transaction, without holding m.mu across a commit.
func (m *member) pruneClosed() {
	m.mu.Lock()
	queue := m.pruneQueue
	m.pruneQueue = nil
	m.mu.Unlock()
	for _, it := range queue {
		m.mu.Lock()
		e, ok := m.groups[it.group]
		closed := ok && e.tracker.Closed(it.key)
		m.mu.Unlock()
		if !closed {
			continue // the group is gone, or its closing was not committed
		}
		prefix := gkey(pfxSeq, it.group, it.key[:])
		for {
			var keys [][]byte
			err := m.db.db.Update(func(txn *badger.Txn) error {
				keys = keys[:0]
				iter := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
				for iter.Rewind(); iter.Valid() && len(keys) < pruneBatch; iter.Next() {
					keys = append(keys, iter.Item().KeyCopy(nil))
				}
				iter.Close()
				for _, k := range keys {
					if err := txn.Delete(k); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				// Dropped: the space is queued again at the next load.
				m.log.Warn("could not delete the records of a closed sequence space", "group", it.group.Short(), "err", err)
				break
			}
			if len(keys) < pruneBatch {
				break
			}
		}
	}
}
