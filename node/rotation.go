package node

import (
	"errors"
	"fmt"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
)

// Key rotation in the node (ARCHITECTURE §7).
//
// Manager: Chain.RotateTree draws epoch n+1's secrets and distributes them
// through the group's key tree (or by direct HPKE seals in a small group:
// keytree.go); each key update part becomes a KindKeyUpdate payload of
// epoch n (state head: the last event of epoch n) posted in epoch n's
// mailbox; the manager stores the new secrets with its tree path and
// seed (in its group record), hosts the new mailbox and writes there from
// then on.
//
// Member: a key update found in epoch n's mailbox is accepted with
// Chain.AcceptRotation (its rotate event goes into the chain first, so a
// second rotation on the same head — a manager showing members different
// keys — is a fork and reported as a split). The member's copy gives epoch
// n+1's secrets: the group record gains them, the new mailbox joins the
// member's mailboxes, is hosted and caught up from the group's hosts, and
// the next processing pass reads it. Nothing is re-fetched: the old
// mailbox's cursor stays where it was. A removed member finds no copy
// (keymgmt.ErrNotRecipient) and stays in epoch n.

// processKeyUpdate handles a KindKeyUpdate payload. Call with m.mu held.
func (m *member) processKeyUpdate(txn *badger.Txn, e *groupEntry, p *groupstate.Payload, id envelope.ID, msg *Message, order int64) (*Message, error) {
	seen := func(shown *Message) (*Message, error) {
		return shown, markSeenTxn(txn, e.g.ID, id, order, shown)
	}
	ku, err := groupstate.ParseKeyUpdate(p.Body)
	if err != nil {
		return nil, err
	}
	if ku.OldEpoch() != p.Epoch {
		return nil, fmt.Errorf("%w: a key update to epoch %d posted in epoch %d's mailbox", groupstate.ErrKeyUpdateInvalid, ku.NewEpoch(), p.Epoch)
	}
	if !ku.Rotate.AuthorKey().Equal(p.AuthorKey()) {
		return nil, fmt.Errorf("%w: a key update whose rotation %s signed, posted by %s", groupstate.ErrKeyUpdateInvalid,
			keymgmt.Fingerprint(ku.Rotate.AuthorKey()), keymgmt.Fingerprint(p.AuthorKey()))
	}
	before := e.chain.Len()
	keys, err := e.chain.AcceptRotation(m.id, e.g, ku)
	if e.chain.Len() != before {
		if gerr := m.indexEvent(txn, e, ku.Rotate.ID(), id, p.Epoch); gerr != nil {
			return nil, gerr
		}
		if gerr := m.chainGrew(txn, e); gerr != nil {
			return nil, gerr
		}
	}
	var fe *groupstate.ForkError
	switch {
	case err == nil:
		if err := m.enterRotation(e, keys); err != nil {
			return nil, err
		}
		if err := saveGroupTxn(txn, e); err != nil {
			return nil, err
		}
		msg.Kind, msg.Text = KindEvent, describeEvent(e.chain, ku.Rotate)
		return seen(msg)
	case errors.Is(err, keymgmt.ErrNotRecipient):
		if st, serr := e.chain.StateAt(ku.Head()); serr == nil {
			if _, ok := st.Member(m.id.SigningKey()); !ok {
				e.local.Removed = true
			}
		}
		// Otherwise this member's copy is in another part.
		return seen(nil)
	case errors.Is(err, groupstate.ErrUnknownParent):
		return nil, m.deferPayload(txn, e, p, id)
	case errors.As(err, &fe):
		if err := m.reportSplit(txn, e, p.Epoch, fe, p.Author); err != nil {
			return nil, err
		}
		return seen(nil)
	}
	return nil, fmt.Errorf("key update to epoch %d: %w", ku.NewEpoch(), err)
}

// enterRotation records a new epoch's secrets (with this member's key tree
// path, and a manager's tree seed) and registers its mailbox, to be hosted
// and caught up after the pass (hostAddedLocked). Call with m.mu held; the
// caller saves the group record.
func (m *member) enterRotation(e *groupEntry, k *groupstate.RotatedKeys) error {
	if err := e.g.EnterRotation(k); err != nil {
		return err
	}
	epoch := k.Epoch
	delete(e.keys, epoch)
	ek, err := e.keysFor(epoch)
	if err != nil {
		return err
	}
	m.mailboxes[ek.Mailbox] = mailboxRef{group: e.g.ID, epoch: epoch}
	m.mg.added = append(m.mg.added, ek.Mailbox)
	e.local.EpochMsgs = 0
	return nil
}

// rotate starts the next epoch as manager: the rotate event and its key
// update parts, posted in the current epoch's mailbox; then the group
// moves to the new epoch.
func (op *managerOp) rotate(reason string) error {
	e, m := op.e, op.m
	old := e.g.Epoch
	if e.chain.Epoch() != old {
		return fmt.Errorf("%w: the chain is at epoch %d but this member holds keys up to %d; catch up first", groupstate.ErrKeyUpdateInvalid, e.chain.Epoch(), old)
	}
	rot, err := e.chain.RotateTree(m.id, e.g.TreeSeed, op.now, op.treeParams())
	if err != nil {
		return err
	}
	if rot.Keys.Mode == groupstate.ModeFull {
		reason = strings.TrimPrefix(reason+"; new key tree", "; ")
	}
	for _, part := range rot.Parts {
		body, err := groupstate.MarshalKeyUpdate(part)
		if err != nil {
			return err
		}
		p, err := m.buildPayloadAt(e, old, groupstate.KindKeyUpdate, body, op.now)
		if err != nil {
			return err
		}
		var shown *Message
		var ev groupstate.EventID
		if part.Part == 0 {
			shown = m.newMessage(e, p, envelope.ID{}, op.now)
			shown.Kind, shown.Text = KindEvent, describeEvent(e.chain, rot.Event)
			if reason != "" {
				shown.Text += " (" + reason + ")"
			}
			ev = rot.Event.ID()
		}
		if err := op.sealEvent(p, shown, ev); err != nil {
			return err
		}
	}
	if err := m.enterRotation(e, rot.Keys); err != nil {
		return err
	}
	op.rotated = true
	return nil
}
