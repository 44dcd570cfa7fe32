package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
)

// The sync index: per mailbox, the sum and count of the IDs the store
// knows (live envelopes and tombstones: the set anti-entropy sync
// reconciles) in every node of a trie of fan-out 16 at levels 2 and 3.
// A level-l node is the IDs whose first 4·l bits equal its prefix, so a
// level-2 node is an ID's first byte and a level-3 node its first 12 bits.
// Sums are of IDs read as little-endian 256-bit integers, modulo 2^256, so
// they are additive: a Put adds its ID, a purged tombstone subtracts its
// ID, and retention (which turns an envelope into a tombstone) changes
// nothing. The writer updates the index in the same transaction as the
// change, so it always matches the ID and tombstone keys.
//
//	"x" ‖ mailbox ‖ level:u8 ‖ node:u16be    sum[32] ‖ count:u64be     40 bytes
//	"X"                                      index version: u32be (1)
//
// A node with no IDs has no record. A store opened without the "X" record
// (created before the index existed, or interrupted while building it)
// drops every "x" record and builds the index from the ID and tombstone
// keys before it opens.
const (
	prefixSyncIndex   = 'x'
	prefixSyncVersion = 'X'
	syncIndexVersion  = 1
	syncRecordSize    = 32 + 8
	syncKeySize       = mailboxKeySize + 1 + 2

	// SyncIndexLevels are the trie levels the index keeps.
	SyncIndexMinLevel = 2
	SyncIndexMaxLevel = 3
	syncFanoutBits    = 4
)

var keySyncVersion = []byte{prefixSyncVersion}

// NodeSum is the summary of the IDs of one trie node: their sum as a
// little-endian 256-bit integer (limb 0 least significant) modulo 2^256,
// and their count.
type NodeSum struct {
	Limbs [4]uint64
	Count uint64
}

func (a *NodeSum) add(b NodeSum) {
	var c uint64
	a.Limbs[0], c = bits.Add64(a.Limbs[0], b.Limbs[0], 0)
	a.Limbs[1], c = bits.Add64(a.Limbs[1], b.Limbs[1], c)
	a.Limbs[2], c = bits.Add64(a.Limbs[2], b.Limbs[2], c)
	a.Limbs[3], _ = bits.Add64(a.Limbs[3], b.Limbs[3], c)
	a.Count += b.Count
}

func (a *NodeSum) sub(b NodeSum) {
	var c uint64
	a.Limbs[0], c = bits.Sub64(a.Limbs[0], b.Limbs[0], 0)
	a.Limbs[1], c = bits.Sub64(a.Limbs[1], b.Limbs[1], c)
	a.Limbs[2], c = bits.Sub64(a.Limbs[2], b.Limbs[2], c)
	a.Limbs[3], _ = bits.Sub64(a.Limbs[3], b.Limbs[3], c)
	a.Count -= b.Count
}

func sumOfID(id envelope.ID) NodeSum {
	return NodeSum{Count: 1, Limbs: [4]uint64{
		binary.LittleEndian.Uint64(id[0:]), binary.LittleEndian.Uint64(id[8:]),
		binary.LittleEndian.Uint64(id[16:]), binary.LittleEndian.Uint64(id[24:]),
	}}
}

// nodeOf is the prefix of id at level (1..16).
func nodeOf(id envelope.ID, level int) uint64 {
	return binary.BigEndian.Uint64(id[:8]) >> (64 - syncFanoutBits*level)
}

func syncKey(m envelope.MailboxID, level int, node uint64) []byte {
	k := make([]byte, 0, syncKeySize)
	k = append(k, prefixSyncIndex)
	k = append(k, m[:]...)
	k = append(k, byte(level))
	return binary.BigEndian.AppendUint16(k, uint16(node))
}

func encodeNodeSum(s NodeSum) []byte {
	b := make([]byte, 0, syncRecordSize)
	for _, l := range s.Limbs {
		b = binary.LittleEndian.AppendUint64(b, l)
	}
	return binary.BigEndian.AppendUint64(b, s.Count)
}

func decodeNodeSum(b []byte) (NodeSum, error) {
	var s NodeSum
	if len(b) != syncRecordSize {
		return s, fmt.Errorf("%w: sync index record of %d bytes, want %d", ErrCorrupt, len(b), syncRecordSize)
	}
	for i := range s.Limbs {
		s.Limbs[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	s.Count = binary.BigEndian.Uint64(b[32:])
	if s.Count == 0 || s.Count > maxStoredEnvelopes {
		return s, fmt.Errorf("%w: sync index record counts %d IDs", ErrCorrupt, s.Count)
	}
	return s, nil
}

// syncDelta is what one batch changes in one index node, and the
// node's record after it.
type syncDelta struct {
	add, sub NodeSum
	result   NodeSum
}

type syncNodeKey struct {
	m     envelope.MailboxID
	level int
	node  uint64
}

// syncAdd records that id joins the sync set of m in this batch.
func (b *batch) syncAdd(m envelope.MailboxID, id envelope.ID) { b.syncChange(m, id, true) }

// syncRemove records that id leaves the sync set of m in this batch.
func (b *batch) syncRemove(m envelope.MailboxID, id envelope.ID) { b.syncChange(m, id, false) }

func (b *batch) syncChange(m envelope.MailboxID, id envelope.ID, add bool) {
	if b.sync == nil {
		b.sync = map[syncNodeKey]*syncDelta{}
	}
	s := sumOfID(id)
	for level := SyncIndexMinLevel; level <= SyncIndexMaxLevel; level++ {
		k := syncNodeKey{m: m, level: level, node: nodeOf(id, level)}
		d := b.sync[k]
		if d == nil {
			d = &syncDelta{}
			b.sync[k] = d
		}
		if add {
			d.add.add(s)
		} else {
			d.sub.add(s)
		}
	}
}

// maxSyncCache bounds the writer's cache of sync index records (about
// 100 bytes each).
const maxSyncCache = 1 << 16

// flushSync writes the batch's index changes into its transaction: one
// write (or delete) per node touched, after a read unless the writer's
// cache holds the node. The new records reach the cache only once the
// transaction has committed (installSync).
func (b *batch) flushSync() error {
	for k, d := range b.sync {
		key := syncKey(k.m, k.level, k.node)
		cur, cached := b.w.syncCache[k]
		if !cached {
			item, err := b.txn.Get(key)
			switch {
			case err == nil:
				if err := item.Value(func(v []byte) (err error) { cur, err = decodeNodeSum(v); return err }); err != nil {
					return fmt.Errorf("store: sync index of %s: %w", k.m.Short(), err)
				}
			case !errors.Is(err, badger.ErrKeyNotFound):
				return err
			}
		}
		if cur.Count+d.add.Count < d.sub.Count {
			return fmt.Errorf("%w: sync index of %s node %d/%d would count below zero", ErrCorrupt, k.m.Short(), k.node, k.level)
		}
		cur.add(d.add)
		cur.sub(d.sub)
		d.result = cur
		var err error
		if cur.Count == 0 {
			err = b.txn.Delete(key)
		} else {
			err = b.txn.Set(key, encodeNodeSum(cur))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// installSync puts a committed batch's index records in the writer's
// cache, dropping arbitrary entries when it is full.
func (w *writer) installSync(b *batch) {
	if len(b.sync) == 0 {
		return
	}
	if w.syncCache == nil {
		w.syncCache = make(map[syncNodeKey]NodeSum)
	}
	for k, d := range b.sync {
		if _, ok := w.syncCache[k]; !ok && len(w.syncCache) >= maxSyncCache {
			for old := range w.syncCache {
				delete(w.syncCache, old)
				break
			}
		}
		w.syncCache[k] = d.result
	}
}

// ensureSyncIndex builds the sync index if the store has none (a store
// written before it existed, or a build interrupted by a crash).
func ensureSyncIndex(db *badger.DB, mailboxes []envelope.MailboxID) error {
	var have bool
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keySyncVersion)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(b []byte) error {
			if len(b) != 4 || binary.BigEndian.Uint32(b) != syncIndexVersion {
				return fmt.Errorf("%w: sync index version record %x", ErrSchema, b)
			}
			have = true
			return nil
		})
	})
	if err != nil || have {
		return err
	}
	if err := db.DropPrefix([]byte{prefixSyncIndex}); err != nil {
		return fmt.Errorf("store: clearing a partial sync index: %w", err)
	}
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	for _, m := range mailboxes {
		nodes := map[[2]uint64]*NodeSum{}
		for _, prefix := range []byte{prefixIndex, prefixTombstone} {
			err := db.View(func(txn *badger.Txn) error {
				it := txn.NewIterator(badger.IteratorOptions{Prefix: mailboxKey(prefix, m)})
				defer it.Close()
				for it.Rewind(); it.Valid(); it.Next() {
					id, err := idFromKey(it.Item().Key(), prefix)
					if err != nil {
						return err
					}
					s := sumOfID(id)
					for level := SyncIndexMinLevel; level <= SyncIndexMaxLevel; level++ {
						k := [2]uint64{uint64(level), nodeOf(id, level)}
						if nodes[k] == nil {
							nodes[k] = &NodeSum{}
						}
						nodes[k].add(s)
					}
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("store: building the sync index of %s: %w", m.Short(), err)
			}
		}
		for k, s := range nodes {
			if err := wb.Set(syncKey(m, int(k[0]), k[1]), encodeNodeSum(*s)); err != nil {
				return err
			}
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("store: writing the sync index: %w", err)
	}
	return db.Update(func(txn *badger.Txn) error {
		return txn.Set(keySyncVersion, binary.BigEndian.AppendUint32(nil, syncIndexVersion))
	})
}
