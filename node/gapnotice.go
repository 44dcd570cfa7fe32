package node

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/groupstate"
)

// Gap notices tell the truth. reportGaps (catchup.go) writes a notice for
// each run of an author's missing sequence numbers that is still open
// after a catch-up, and a record of it:
//
//	'W' gid key(32) first(8) → last(8) ‖ missing(8) ‖ the notice's 'M' key
//
// (key is the tracker's key: the author, or its membership in a managed
// group). A missing message often turns up after its notice was written:
// by gossip a moment later, from a host that was down, by sync. So every
// page the member loop processes re-checks the open notices of its group
// in the same transaction (resolveNoticesTxn): a run filled since deletes
// its notice, a run filled in part gets its notice rewritten with what is
// still missing. The tracker, not the notice, is the record of what
// arrived, so a notice can never outlive the gap it reports.

// noticeRecFixed is the size of a notice record without the message key.
const noticeRecFixed = 16

func noticeKey(g groupstate.GroupID, key [32]byte, first uint64) []byte {
	return gkey(pfxNotice, g, key[:], u64(first))
}

func encodeNoticeRec(last, missing uint64, msgKey []byte) []byte {
	b := make([]byte, 0, noticeRecFixed+len(msgKey))
	b = binary.BigEndian.AppendUint64(b, last)
	b = binary.BigEndian.AppendUint64(b, missing)
	return append(b, msgKey...)
}

// decodeNoticeRec checks the record against its key: the message key must
// be a message key of the same group.
func decodeNoticeRec(g groupstate.GroupID, b []byte) (last, missing uint64, msgKey []byte, err error) {
	if len(b) < noticeRecFixed+1+16 {
		return 0, 0, nil, fmt.Errorf("%w: gap notice record of %d bytes", ErrCorrupt, len(b))
	}
	last = binary.BigEndian.Uint64(b)
	missing = binary.BigEndian.Uint64(b[8:])
	msgKey = b[noticeRecFixed:]
	if msgKey[0] != pfxMessage || groupstate.GroupID(msgKey[1:17]) != g {
		return 0, 0, nil, fmt.Errorf("%w: gap notice record names %x, not a message of its group", ErrCorrupt, msgKey[:min(len(msgKey), 17)])
	}
	return last, missing, msgKey, nil
}

// gapsWithin are the runs of key's missing numbers within [first, last].
func gapsWithin(t *groupstate.SeqTracker, key [32]byte, first, last uint64) []groupstate.SeqRange {
	var out []groupstate.SeqRange
	for _, r := range t.AuthorGaps(key) {
		lo, hi := max(r.First, first), min(r.Last, last)
		if lo <= hi {
			out = append(out, groupstate.SeqRange{First: lo, Last: hi})
		}
	}
	return out
}

func countOf(rs []groupstate.SeqRange) uint64 {
	var n uint64
	for _, r := range rs {
		n += r.Last - r.First + 1
	}
	return n
}

// noticeText says which of an author's messages are missing.
func noticeText(rs []groupstate.SeqRange, who string) string {
	parts := make([]string, 0, len(rs))
	for _, r := range rs {
		if r.First == r.Last {
			parts = append(parts, fmt.Sprint(r.First))
		} else {
			parts = append(parts, fmt.Sprintf("%d–%d", r.First, r.Last))
		}
	}
	return fmt.Sprintf("%d message(s) from %s (numbers %s) are missing and no host could supply them",
		countOf(rs), who, strings.Join(parts, ", "))
}

// writeNoticeTxn records a new notice (reportGaps).
func writeNoticeTxn(txn *badger.Txn, g groupstate.GroupID, key [32]byte, r groupstate.SeqRange, msgKey []byte) error {
	return txn.Set(noticeKey(g, key, r.First), encodeNoticeRec(r.Last, r.Last-r.First+1, msgKey))
}

// resolveNoticesTxn deletes the notices of gaps filled since they were
// written and rewrites those filled in part. Call with m.mu held.
func (m *member) resolveNoticesTxn(txn *badger.Txn, e *groupEntry) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: gkey(pfxNotice, e.g.ID), PrefetchValues: false})
	type change struct {
		key, msgKey []byte
		last        uint64
		left        []groupstate.SeqRange
	}
	var changes []change
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().KeyCopy(nil)
		if len(k) != 1+16+32+8 {
			continue
		}
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			it.Close()
			return err
		}
		last, missing, msgKey, err := decodeNoticeRec(e.g.ID, v)
		if err != nil {
			m.log.Warn("dropping a gap notice record that does not decode", "group", e.g.ID.Short(), "err", err)
			changes = append(changes, change{key: k})
			continue
		}
		var tkey [32]byte
		copy(tkey[:], k[17:49])
		first := binary.BigEndian.Uint64(k[49:])
		left := gapsWithin(e.tracker, tkey, first, last)
		if countOf(left) != missing {
			changes = append(changes, change{key: k, msgKey: msgKey, last: last, left: left})
		}
	}
	it.Close()
	for _, c := range changes {
		if c.msgKey == nil {
			if err := txn.Delete(c.key); err != nil {
				return err
			}
			continue
		}
		if len(c.left) == 0 {
			// Filled: the notice goes.
			for _, k := range [][]byte{c.msgKey, c.key} {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			continue
		}
		// Filled in part: say what is still missing.
		item, err := txn.Get(c.msgKey)
		if err != nil {
			if err := txn.Delete(c.key); err != nil {
				return err
			}
			continue
		}
		b, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		msg, err := decodeMessage(b)
		if err != nil {
			return err
		}
		msg.Text = noticeText(c.left, displayName(msg.Nick, msg.Author))
		nb, err := json.Marshal(msg)
		if err != nil {
			return err
		}
		if err := txn.Set(c.msgKey, nb); err != nil {
			return err
		}
		if err := txn.Set(c.key, encodeNoticeRec(c.last, countOf(c.left), c.msgKey)); err != nil {
			return err
		}
	}
	return nil
}
