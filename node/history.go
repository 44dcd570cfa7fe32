package node

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
)

// Paged history, for readers that scroll (the web app).
//
// A message's position in its group's listing is its member-database key
// after the group prefix: sent(8) ‖ seq(8) ‖ id(32), 48 bytes (see
// memberdb.go). Callers get it as an opaque hex cursor and pass it back
// to read the messages older (before) or newer (after) than it. Keys sort
// in display order, so a page is one short range scan however long the
// history is; a message that arrives late with an older sent time lands
// where it belongs and is found by the next read of that range.

// messageCursorSize is the length of a message position.
const messageCursorSize = 8 + 8 + 32

// MaxPageMessages bounds one page of MessagesPage.
const MaxPageMessages = 500

// ListedMessage is a message with its position in the group's listing.
type ListedMessage struct {
	Message
	// Cursor is the message's position (hex): pass it as PageQuery.Before
	// or After, or to MarkRead.
	Cursor string
}

// PageQuery selects a page of a group's messages: the latest Limit
// (neither cursor set), the Limit just older than Before, or the Limit
// just newer than After.
type PageQuery struct {
	Before, After string
	Limit         int
	// Hide leaves messages out of the page (they are not counted).
	Hide func(*Message) bool
}

// MessagePage is a page of messages, oldest first.
type MessagePage struct {
	Messages []ListedMessage
	// More reports that messages exist beyond the page in the direction
	// read: older for the latest page and Before, newer for After.
	More bool
}

// parseCursor checks a hex message position.
func parseCursor(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != messageCursorSize {
		return nil, fmt.Errorf("%w: %q is not a message position (%d hex characters)", ErrBadCursor, s, 2*messageCursorSize)
	}
	return b, nil
}

// MessagesPage returns one page of a group's messages, oldest first.
func (n *Node) MessagesPage(group string, q PageQuery) (*MessagePage, error) {
	if q.Limit <= 0 || q.Limit > MaxPageMessages {
		return nil, fmt.Errorf("%w: page limit %d (want 1 to %d)", ErrBadCursor, q.Limit, MaxPageMessages)
	}
	if q.Before != "" && q.After != "" {
		return nil, fmt.Errorf("%w: before and after are exclusive", ErrBadCursor)
	}
	m, gid, err := n.lookup(group)
	if err != nil {
		return nil, err
	}
	prefix := gkey(pfxMessage, gid)
	var from []byte
	reverse := q.After == ""
	switch {
	case q.Before != "":
		c, err := parseCursor(q.Before)
		if err != nil {
			return nil, err
		}
		from = append(slices.Clip(prefix), c...)
	case q.After != "":
		c, err := parseCursor(q.After)
		if err != nil {
			return nil, err
		}
		from = append(slices.Clip(prefix), c...)
	default:
		// Past every key of the group (keys are prefix + 48 bytes).
		from = append(slices.Clip(prefix), bytes.Repeat([]byte{0xff}, messageCursorSize+1)...)
	}
	page := &MessagePage{}
	err = m.db.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, Reverse: reverse, PrefetchValues: true, PrefetchSize: min(q.Limit+1, 100)})
		defer it.Close()
		for it.Seek(from); it.Valid(); it.Next() {
			k := it.Item().Key()
			if bytes.Equal(k, from) {
				continue // the cursor's own message
			}
			if len(page.Messages) == q.Limit {
				// One more shown message would have to exist: look for it
				// without decoding what Hide leaves out more than needed.
				more, err := anyShown(it, q.Hide)
				page.More = more
				return err
			}
			lm, err := listed(it.Item(), len(prefix))
			if err != nil {
				return err
			}
			if q.Hide != nil && q.Hide(&lm.Message) {
				continue
			}
			page.Messages = append(page.Messages, *lm)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if reverse {
		slices.Reverse(page.Messages)
	}
	// Own messages carry their delivery state from the outbox.
	if err := m.annotatePage(gid, page.Messages); err != nil {
		return nil, err
	}
	if err := m.decorateListed(gid, page.Messages); err != nil {
		return nil, err
	}
	return page, nil
}

// annotatePage sets the delivery state of the own messages of a page, as
// annotateDelivery does for a listing, by looking up each one's outbox
// record: a page costs its own messages, not the whole outbox of the
// group (which keeps a record of every own message).
func (m *member) annotatePage(gid groupstate.GroupID, msgs []ListedMessage) error {
	return m.db.db.View(func(txn *badger.Txn) error {
		for i := range msgs {
			msg := &msgs[i].Message
			if !msg.Own {
				continue
			}
			id, err := envelope.ParseID(msg.ID)
			if err != nil {
				continue // a notice, not an envelope
			}
			item, err := txn.Get(outboxKey(gid, id))
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			rec, err := decodeOutboxRec(v)
			if err != nil {
				continue // as annotateDelivery: shown without a state
			}
			msg.Delivery = rec.stateName()
			msg.StoredByCount = len(rec.storedBy)
			if rec.state != outboxStateOK {
				msg.DeliveryError = rec.reason
			}
		}
		return nil
	})
}

// anyShown reports whether the iterator, from its current item on, has a
// message that hide does not leave out.
func anyShown(it *badger.Iterator, hide func(*Message) bool) (bool, error) {
	for ; it.Valid(); it.Next() {
		if hide == nil {
			return true, nil
		}
		lm, err := listed(it.Item(), len(it.Item().Key())-messageCursorSize)
		if err != nil {
			return false, err
		}
		if !hide(&lm.Message) {
			return true, nil
		}
	}
	return false, nil
}

// listed decodes a message record with its position.
func listed(item *badger.Item, prefixLen int) (*ListedMessage, error) {
	k := item.Key()
	if len(k) != prefixLen+messageCursorSize {
		return nil, fmt.Errorf("%w: message key of %d bytes", ErrCorrupt, len(k))
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, err
	}
	msg, err := decodeMessage(v)
	if err != nil {
		return nil, err
	}
	return &ListedMessage{Message: *msg, Cursor: hex.EncodeToString(k[prefixLen:])}, nil
}

// Locate returns the position of a message handed out by Follow ("" if
// the group no longer holds it). Every message's key starts with its
// sent time in milliseconds, so one short scan finds it.
func (n *Node) Locate(msg *Message) (string, error) {
	gid, err := groupstate.ParseGroupID(msg.Group)
	if err != nil {
		return "", fmt.Errorf("%w: %q", ErrUnknownGroup, msg.Group)
	}
	m, err := n.mem()
	if err != nil {
		return "", err
	}
	group := gkey(pfxMessage, gid)
	prefix := gkey(pfxMessage, gid, u64(uint64(msg.Sent.UnixMilli())))
	cursor := ""
	err = m.db.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != len(group)+messageCursorSize {
				continue
			}
			if hex.EncodeToString(k[len(k)-32:]) != msg.ID {
				// Notices (gaps, splits) are keyed by a digest of their ID.
				lm, err := listed(it.Item(), len(group))
				if err != nil || lm.ID != msg.ID {
					continue
				}
			}
			cursor = hex.EncodeToString(k[len(group):])
			return nil
		}
		return nil
	})
	return cursor, err
}

// GroupIDs lists the IDs of the member's groups, sorted: a cheap way to
// notice that a group was added or left.
func (n *Node) GroupIDs() []string {
	m, err := n.mem()
	if err != nil {
		return nil
	}
	m.mu.Lock()
	out := make([]string, 0, len(m.groups))
	for id := range m.groups {
		out = append(out, id.String())
	}
	m.mu.Unlock()
	slices.Sort(out)
	return out
}

// ResolveGroup returns the ID of a group given by ID or unique name.
func (n *Node) ResolveGroup(group string) (string, error) {
	_, gid, err := n.lookup(group)
	if err != nil {
		return "", err
	}
	return gid.String(), nil
}

// count counts the keys with prefix without reading their values.
func (m *memberDB) count(prefix []byte) (int, error) {
	n := 0
	err := m.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	return n, err
}
