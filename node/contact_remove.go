package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/contacts"
	"github.com/meshnode/meshnode/groupstate"
)

// RemoveContact ends a contact, requested or connected: the node leaves
// the connection group (forgets its keys and messages and stops hosting
// and fetching it), forgets the contact, its key package offer and any
// queued add of it to a managed group. With block, later requests from the
// contact's identity are dropped unread, as after RejectContact (a contact
// requested by alias whose identity is not known yet cannot be blocked).
// The other side is not told: what it sends to the connection group is no
// longer read.
func (n *Node) RemoveContact(ctx context.Context, contact string, block bool) (*contacts.Contact, error) {
	if _, err := n.mem(); err != nil {
		return nil, err
	}
	c := n.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	ct, err := n.contact(contact)
	if err != nil {
		return nil, err
	}
	gid, err := groupstate.ParseGroupID(ct.Group)
	if err != nil {
		return nil, fmt.Errorf("%w: contact record names group %q", contacts.ErrCorrupt, ct.Group)
	}
	if block && ct.Fingerprint == "" {
		return nil, fmt.Errorf("%w: %s has not answered yet, so there is no identity to block; remove without blocking", contacts.ErrUnknownContact, contact)
	}
	if _, err := n.LeaveGroup(ctx, ct.Group); err != nil && !errors.Is(err, ErrUnknownGroup) {
		return nil, fmt.Errorf("node: leave the connection group: %w", err)
	}
	var adds [][]byte
	if err := n.member.db.scan(contacts.Key(contacts.KeyQueuedAdd), func(k, v []byte) error {
		rec, err := contacts.DecodePendingAdd(v)
		if err == nil && rec.Contact == ct.Group {
			adds = append(adds, k)
		}
		return nil // a record that does not decode is someone else's concern
	}); err != nil {
		return nil, err
	}
	err = n.member.db.db.Update(func(txn *badger.Txn) error {
		for _, k := range append(adds, contacts.Key(contacts.KeyContact, gid[:]), contacts.Key(contacts.KeyOffer, gid[:])) {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		if block {
			return txn.Set(contacts.Key(contacts.KeyRejected, []byte(ct.Fingerprint)), u64(uint64(time.Now().UnixMilli())))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("node: forget the contact: %w", err)
	}
	return ct, nil
}
