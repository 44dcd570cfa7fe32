package node

import (
	"context"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
)

// Sending replies, reactions, edits and deletes (refs.go). Each is
// checked here as every member will check it (groupstate.CheckRef), so
// the sender hears a clear refusal instead of posting what the group
// would refuse.

// ReactOp says what React does with this member's reaction.
type ReactOp int

const (
	// ReactToggle adds the reaction, or removes it if this member has it.
	ReactToggle ReactOp = iota
	// ReactAdd adds it (nothing happens if it is there).
	ReactAdd
	// ReactRemove removes it.
	ReactRemove
)

// Reply sends a reply to the message with ID (or unique ID prefix)
// target in group.
func (n *Node) Reply(ctx context.Context, group, target, text string) (*SendResult, error) {
	if err := groupstate.CheckTextLen(text); err != nil {
		return nil, err
	}
	m, gid, err := n.lookup(group)
	if err != nil {
		return nil, err
	}
	_, tid, t, err := m.findMessage(target, &gid)
	if err != nil {
		return nil, err
	}
	r := &groupstate.Ref{Kind: groupstate.KindReply, Target: tid, Text: text}
	if err := m.checkOwnRef(gid, r, t, false); err != nil {
		return nil, err
	}
	return n.sendRef(ctx, gid, r, func(msg *Message) { msg.Text, msg.ReplyTo = text, tid.String() })
}

// React adds or removes (op) this member's reaction emoji to the message
// with ID (or unique ID prefix) target, in whichever group holds it. It
// returns the ID of the message reacted to with the send's result;
// nothing is sent (SendResult nil) when the reaction already is as asked.
func (n *Node) React(ctx context.Context, target, emoji string, op ReactOp) (string, *SendResult, error) {
	if err := groupstate.CheckEmoji(emoji); err != nil {
		return "", nil, err
	}
	m, err := n.mem()
	if err != nil {
		return "", nil, err
	}
	gid, tid, t, err := m.findMessage(target, nil)
	if err != nil {
		return "", nil, err
	}
	mine := false
	err = m.db.db.View(func(txn *badger.Txn) error {
		acts, _, err := refActions(txn, gid, tid)
		if err != nil {
			return err
		}
		self := [32]byte(m.id.SigningKey())
		for _, r := range groupstate.FoldRefs(t.target(), acts).Reactions {
			for _, a := range r.Actors {
				mine = mine || (r.Emoji == emoji && a == self)
			}
		}
		return nil
	})
	if err != nil {
		return "", nil, err
	}
	add := !mine
	switch op {
	case ReactAdd:
		add = true
	case ReactRemove:
		add = false
	}
	r := &groupstate.Ref{Kind: groupstate.KindReaction, Target: tid, Emoji: emoji, Add: add}
	if err := m.checkOwnRef(gid, r, t, false); err != nil {
		return "", nil, err
	}
	if add == mine {
		return tid.String(), nil, nil
	}
	res, err := n.sendRef(ctx, gid, r, nil)
	return tid.String(), res, err
}

// Edit replaces the text of this member's message with ID (or unique ID
// prefix) target.
func (n *Node) Edit(ctx context.Context, target, text string) (string, *SendResult, error) {
	if err := groupstate.CheckTextLen(text); err != nil {
		return "", nil, err
	}
	m, err := n.mem()
	if err != nil {
		return "", nil, err
	}
	gid, tid, t, err := m.findMessage(target, nil)
	if err != nil {
		return "", nil, err
	}
	r := &groupstate.Ref{Kind: groupstate.KindEdit, Target: tid, Text: text}
	if err := m.checkOwnRef(gid, r, t, false); err != nil {
		return "", nil, err
	}
	res, err := n.sendRef(ctx, gid, r, nil)
	return tid.String(), res, err
}

// Delete deletes the message with ID (or unique ID prefix) target: an own
// message, or any message of a managed group this member manages.
func (n *Node) Delete(ctx context.Context, target string) (string, *SendResult, error) {
	m, err := n.mem()
	if err != nil {
		return "", nil, err
	}
	gid, tid, t, err := m.findMessage(target, nil)
	if err != nil {
		return "", nil, err
	}
	r := &groupstate.Ref{Kind: groupstate.KindDelete, Target: tid}
	if err := m.checkOwnRef(gid, r, t, true); err != nil {
		return "", nil, err
	}
	res, err := n.sendRef(ctx, gid, r, nil)
	return tid.String(), res, err
}

// checkOwnRef applies the group's rule to an own reference, and refuses
// references to a deleted message.
func (m *member) checkOwnRef(gid groupstate.GroupID, r *groupstate.Ref, t refTargetRec, mayManage bool) error {
	manager := false
	if mayManage {
		m.mu.Lock()
		if e, ok := m.groups[gid]; ok {
			manager = m.managesNow(e)
		}
		m.mu.Unlock()
	}
	if err := groupstate.CheckRef(r, [32]byte(m.id.SigningKey()), manager, t.target()); err != nil {
		return err
	}
	return m.db.db.View(func(txn *badger.Txn) error {
		deleted, err := isDeletedTxn(txn, gid, r.Target, t)
		if err == nil && deleted {
			err = fmt.Errorf("%w: message %s was deleted", ErrUnknownMessage, r.Target.Short())
		}
		return err
	})
}

// sendRef builds, records and delivers an own reference payload; show,
// if set, fills the message a reply shows.
func (n *Node) sendRef(ctx context.Context, gid groupstate.GroupID, r *groupstate.Ref, show func(*Message)) (*SendResult, error) {
	body, err := groupstate.MarshalRef(r)
	if err != nil {
		return nil, err
	}
	if err := n.st.CheckSpace(); err != nil {
		return nil, err
	}
	if err := n.awaitRecovered(ctx); err != nil {
		return nil, err
	}
	m, e, err := n.lockGroup(gid.String())
	if err != nil {
		return nil, err
	}
	now := time.Now()
	p, err := m.buildPayload(e, r.Kind, body, now)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	var msg *Message
	if show != nil {
		msg = m.newMessage(e, p, envelope.ID{}, now)
		show(msg)
	}
	env, err := m.sealOwn(e, p, msg)
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return n.deliverOwn(ctx, gid, env)
}

// Message returns one message by ID (or unique ID prefix) among the
// member's groups, with its view and every version of its text.
func (n *Node) Message(id string) (*Message, error) {
	m, err := n.mem()
	if err != nil {
		return nil, err
	}
	gid, tid, t, err := m.findMessage(id, nil)
	if err != nil {
		return nil, err
	}
	var msg *Message
	err = m.db.db.View(func(txn *badger.Txn) error {
		if msg, err = getMessageTxn(txn, gid, tid, t); err != nil || msg == nil {
			return err
		}
		return m.decorateTxn(txn, gid, []*Message{msg}, true)
	})
	if err == nil && msg == nil {
		err = fmt.Errorf("%w: %s", ErrUnknownMessage, id)
	}
	if err != nil {
		return nil, err
	}
	msgs := []Message{*msg}
	if err := m.annotateDelivery(gid, msgs); err != nil {
		return nil, err
	}
	return &msgs[0], nil
}
