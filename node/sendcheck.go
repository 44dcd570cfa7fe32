package node

import (
	"fmt"

	"github.com/meshnode/meshnode/groupstate"
)

// The sender is told (issue 13, item 6). A node that knows it was removed
// from a managed group — or that its role there is read — refuses to
// build a message, direct or profile for it: every member would refuse
// it. The group stays listed, read-only and marked removed (GroupInfo).
// A node that does not know yet finds out when the removal reaches it;
// its messages the manager had not seen are then marked not delivered and
// logged (admission.go, flagUnseen).

// checkCanPost says why this member may not post a payload of kind in a
// managed group, or nil. Call with m.mu held.
func (m *member) checkCanPost(e *groupEntry, kind groupstate.Kind) error {
	if e.chain == nil || !kind.NeedsWrite() {
		return nil
	}
	me, ok := e.chain.Member(m.id.SigningKey())
	switch {
	case !ok || e.local.Removed:
		return fmt.Errorf("%w: %q is read-only for you now, and the members would refuse anything you sent there", ErrRemoved, e.g.Name)
	case !me.Role.CanWrite():
		return fmt.Errorf("%w: your role in %q is %s", ErrReadOnly, e.g.Name, me.Role)
	}
	return nil
}

// canWrite reports whether this member may write in a group now. Call
// with m.mu held.
func (m *member) canWrite(e *groupEntry) bool {
	return e.g.CanWrite() && m.checkCanPost(e, groupstate.KindText) == nil
}
