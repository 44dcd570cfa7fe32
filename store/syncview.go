package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
)

// SyncView is a read snapshot of one mailbox's sync set (live envelopes
// and tombstones, see syncindex.go) for one reconciliation session: every
// call sees the store as it was when the view was opened. Node sums at
// levels 2 and 3 are one index read each; levels 0 and 1 add up to 256
// level-2 records; deeper nodes are summed from their IDs. It is not safe
// for concurrent use. Close it when the session ends: until then the
// store counts it as a call in progress and Close waits for it.
type SyncView struct {
	s      *Store
	txn    *badger.Txn
	m      envelope.MailboxID
	closed bool
}

// SyncView opens a snapshot of m's sync set.
func (s *Store) SyncView(m envelope.MailboxID) (*SyncView, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	return &SyncView{s: s, txn: s.db.NewTransaction(false), m: m}, nil
}

// Close releases the snapshot. It is idempotent.
func (v *SyncView) Close() {
	if v.closed {
		return
	}
	v.closed = true
	v.txn.Discard()
	v.s.leave()
}

func checkNode(level int, node uint64) error {
	if level < 0 || level > 16 || (level < 16 && node>>(syncFanoutBits*level) != 0) {
		return fmt.Errorf("%w: trie node %x at level %d", ErrInvalidArgument, node, level)
	}
	return nil
}

// Sum returns the summary of the IDs of the trie node (level, node).
func (v *SyncView) Sum(level int, node uint64) (NodeSum, error) {
	var out [1]NodeSum
	if err := v.Sums(level, node, 0, out[:]); err != nil {
		return NodeSum{}, err
	}
	return out[0], nil
}

// Sums fills out (16^depth entries) with the summaries of the descendants
// of node (level, node) at level+depth, in ID order.
func (v *SyncView) Sums(level int, node uint64, depth int, out []NodeSum) error {
	if err := checkNode(level, node); err != nil {
		return err
	}
	t := level + depth
	if depth < 0 || depth > 3 || t > 16 || len(out) != 1<<(syncFanoutBits*depth) {
		return fmt.Errorf("%w: %d sums at depth %d", ErrInvalidArgument, len(out), depth)
	}
	clear(out)
	first := node << (syncFanoutBits * depth) // first descendant at level t
	var err error
	switch {
	case t == SyncIndexMinLevel || t == SyncIndexMaxLevel:
		err = v.records(t, first, uint64(len(out)), func(n uint64, s NodeSum) { out[n-first].add(s) })
	case t < SyncIndexMinLevel:
		// Add up the level-2 records below each descendant.
		shift := syncFanoutBits * (SyncIndexMinLevel - t)
		err = v.records(SyncIndexMinLevel, first<<shift, uint64(len(out))<<shift, func(n uint64, s NodeSum) {
			out[n>>shift-first].add(s)
		})
	default:
		err = v.Scan(level, node, func(id envelope.ID) bool {
			out[nodeOf(id, t)-first].add(sumOfID(id))
			return true
		})
	}
	if err != nil {
		return fmt.Errorf("store: sync sums of %s: %w", v.m.Short(), err)
	}
	return nil
}

// records calls fn for each index record at level with node in
// [from, from+count).
func (v *SyncView) records(level int, from, count uint64, fn func(uint64, NodeSum)) error {
	prefix := append(mailboxKey(prefixSyncIndex, v.m), byte(level))
	it := v.txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Seek(binary.BigEndian.AppendUint16(slices.Clone(prefix), uint16(from))); it.Valid(); it.Next() {
		k := it.Item().Key()
		if len(k) != syncKeySize {
			return fmt.Errorf("%w: sync index key of %d bytes", ErrCorrupt, len(k))
		}
		n := uint64(binary.BigEndian.Uint16(k[len(prefix):]))
		if n >= from+count {
			return nil
		}
		var s NodeSum
		if err := it.Item().Value(func(b []byte) (err error) { s, err = decodeNodeSum(b); return err }); err != nil {
			return err
		}
		fn(n, s)
	}
	return nil
}

// Scan calls fn, in ascending order, for each ID of the sync set in the
// trie node (level, node), until fn returns false.
func (v *SyncView) Scan(level int, node uint64, fn func(envelope.ID) bool) error {
	if err := checkNode(level, node); err != nil {
		return err
	}
	var lo, hi [8]byte
	bounded := false
	if level > 0 {
		shift := 64 - syncFanoutBits*level
		binary.BigEndian.PutUint64(lo[:], node<<shift)
		if next := node + 1; level == 16 && next == 0 || level < 16 && next>>(syncFanoutBits*level) != 0 {
			bounded = false
		} else {
			binary.BigEndian.PutUint64(hi[:], next<<shift)
			bounded = true
		}
	}
	live := v.cursor(prefixIndex, lo[:])
	defer live.Close()
	dead := v.cursor(prefixTombstone, lo[:])
	defer dead.Close()
	inNode := func(it *badger.Iterator) (envelope.ID, bool, error) {
		if !it.Valid() {
			return envelope.ID{}, false, nil
		}
		id, err := idFromKey(it.Item().Key(), it.Item().Key()[0])
		if err != nil {
			return id, false, err
		}
		if bounded && bytes.Compare(id[:8], hi[:]) >= 0 {
			return id, false, nil
		}
		return id, true, nil
	}
	for {
		a, okA, err := inNode(live)
		if err != nil {
			return err
		}
		b, okB, err := inNode(dead)
		if err != nil {
			return err
		}
		var id envelope.ID
		switch c := bytes.Compare(a[:], b[:]); {
		case okA && (!okB || c < 0):
			id = a
			live.Next()
		case okB && (!okA || c > 0):
			id = b
			dead.Next()
		case okA && okB: // both: cannot happen, but count it once
			id = a
			live.Next()
			dead.Next()
		default:
			return nil
		}
		if !fn(id) {
			return nil
		}
	}
}

func (v *SyncView) cursor(prefix byte, lo []byte) *badger.Iterator {
	it := v.txn.NewIterator(badger.IteratorOptions{Prefix: mailboxKey(prefix, v.m)})
	it.Seek(append(mailboxKey(prefix, v.m), lo...))
	return it
}

// sortedMailboxes returns the keys of states in ascending order.
func sortedMailboxes(states map[envelope.MailboxID]*mailboxState) []envelope.MailboxID {
	out := make([]envelope.MailboxID, 0, len(states))
	for m := range states {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b envelope.MailboxID) int { return bytes.Compare(a[:], b[:]) })
	return out
}
