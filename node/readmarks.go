package node

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/groupstate"
)

// Read markers: how far the person has read each group, so a listing can
// say how many messages are unread. A marker is local (never sent to
// anyone) and lives in the member database, encrypted at rest with it:
//
//	'r' gid → readMark JSON: the position (history.go) of the latest
//	          message read, and when it was marked
//
// A marker only moves forward. Issue 18 (read receipts and the like) may
// build on it; this is the minimal local form.

// MaxUnread bounds an unread count: past it a listing says "MaxUnread or
// more" rather than read the whole history.
const MaxUnread = 1000

type readMark struct {
	Cursor []byte    `json:"cursor"`
	At     time.Time `json:"at"`
}

// ReadState is how far a group was read and what is newer.
type ReadState struct {
	// Cursor is the position of the latest message read ("": none).
	Cursor string
	// Unread counts the messages after Cursor that others wrote (text,
	// direct and split notices), at most MaxUnread.
	Unread int
	// Last is the group's latest message (nil in an empty group).
	Last *ListedMessage
}

// countsAsUnread: what a person must see, written by others. Notices of
// state changes (event) and gaps are shown but not counted.
func countsAsUnread(m *Message) bool {
	return !m.Own && (isWritten(m.Kind) || m.Kind == KindSplit || m.Kind == KindEquivocation)
}

// ReadState reports a group's read marker, unread count and latest
// message; hide leaves messages out as in PageQuery.
func (n *Node) ReadState(group string, hide func(*Message) bool) (*ReadState, error) {
	m, gid, err := n.lookup(group)
	if err != nil {
		return nil, err
	}
	var rs *ReadState
	err = m.db.db.View(func(txn *badger.Txn) error {
		rs, err = readStateTxn(txn, gid, hide)
		if err == nil && rs.Last != nil {
			err = m.decorateTxn(txn, gid, []*Message{&rs.Last.Message}, false)
		}
		return err
	})
	return rs, err
}

func readStateTxn(txn *badger.Txn, gid groupstate.GroupID, hide func(*Message) bool) (*ReadState, error) {
	mark, err := getReadMark(txn, gid)
	if err != nil {
		return nil, err
	}
	rs := &ReadState{}
	if mark != nil {
		rs.Cursor = hex.EncodeToString(mark.Cursor)
	}
	prefix := gkey(pfxMessage, gid)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, Reverse: true, PrefetchValues: true, PrefetchSize: 32})
	defer it.Close()
	// Newest first, down to the marker.
	for it.Seek(append(prefix, bytes.Repeat([]byte{0xff}, messageCursorSize+1)...)); it.Valid(); it.Next() {
		k := it.Item().Key()
		if mark != nil && bytes.Compare(k[len(prefix):], mark.Cursor) <= 0 && rs.Last != nil {
			break
		}
		lm, err := listed(it.Item(), len(prefix))
		if err != nil {
			return nil, err
		}
		if hide != nil && hide(&lm.Message) {
			continue
		}
		if rs.Last == nil {
			rs.Last = lm
		}
		if mark != nil && bytes.Compare(k[len(prefix):], mark.Cursor) <= 0 {
			break
		}
		if countsAsUnread(&lm.Message) {
			if rs.Unread++; rs.Unread >= MaxUnread {
				break
			}
		}
	}
	return rs, nil
}

func getReadMark(txn *badger.Txn, gid groupstate.GroupID) (*readMark, error) {
	item, err := txn.Get(gkey(pfxReadMark, gid))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, err
	}
	mark := &readMark{}
	if err := json.Unmarshal(v, mark); err != nil || len(mark.Cursor) != messageCursorSize {
		return nil, fmt.Errorf("%w: read marker of %s", ErrCorrupt, gid.Short())
	}
	return mark, nil
}

// MarkRead moves a group's read marker to cursor (a message position
// from MessagesPage or ReadState), unless it is already further, and
// returns the new state.
func (n *Node) MarkRead(group, cursor string, hide func(*Message) bool) (*ReadState, error) {
	c, err := parseCursor(cursor)
	if err != nil {
		return nil, err
	}
	m, gid, err := n.lookup(group)
	if err != nil {
		return nil, err
	}
	var rs *ReadState
	// Badger detects a concurrent marker update (ErrConflict): retry on
	// the new value, which may already be further.
	for range 5 {
		err = m.db.db.Update(func(txn *badger.Txn) error {
			mark, err := getReadMark(txn, gid)
			if err != nil {
				return err
			}
			if mark == nil || bytes.Compare(c, mark.Cursor) > 0 {
				b, err := json.Marshal(&readMark{Cursor: c, At: time.Now().UTC()})
				if err != nil {
					return err
				}
				if err := txn.Set(gkey(pfxReadMark, gid), b); err != nil {
					return err
				}
			}
			rs, err = readStateTxn(txn, gid, hide)
			if err == nil && rs.Last != nil {
				err = m.decorateTxn(txn, gid, []*Message{&rs.Last.Message}, false)
			}
			return err
		})
		if !errors.Is(err, badger.ErrConflict) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return rs, nil
}
