package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/contacts"
	"github.com/meshnode/meshnode/groupstate"
)

// Queued adds over connection groups. AddContactToGroup needs a key
// package the contact's node offered (contact_welcome.go); a contact whose
// node has not been online since the connection has offered none. Instead
// of failing, the add is queued in the member database ('d' 'w' ID →
// contacts.PendingAddRec) and completed by this node's contacts loop as soon as an
// offer arrives in the connection group: the loop's pass over that
// connection group (contactsTick) tries every queued add for the contact,
// oldest first, with the same code as an immediate add. An add that can
// never complete (the group was left, this member was removed from it,
// the contact is gone, the welcome is too large) is kept as failed, with
// its reason, until cancelled; other failures are retried at the next
// pass. Queued adds are listed (PendingContactAdds) and cancelled
// (CancelContactAdd) by the user only; strangers cannot create any.

const (
	// queuedAddTimeout bounds one attempt at completing a queued add.
	queuedAddTimeout = time.Minute
)

// ContactAddResult is what AddContactToGroup did: the manager operation
// when the contact was added at once, or Queued when the add waits for
// the contact's key package (then only Group is set of the operation).
type ContactAddResult struct {
	ManageResult
	Queued *contacts.PendingContactAdd `json:"queued,omitempty"`
}

// AddContactToGroup adds a connected contact (group ID, fingerprint, nick
// or the name they were reached by) to a managed group this member
// manages, with a role. It uses the newest key package the contact's node
// offered over the connection group and sends the welcome both through the
// group's hosts (as AddMember) and inside the connection group, so the
// contact joins even without knowing the group's hosts. Failures to post
// into the connection group are in the result's Failed, under
// "connection group: HOST".
//
// When the contact has offered no unused key package yet (their node has
// not been online since), the add is queued and Queued is set: this node
// completes it when an offer arrives. Adding a contact already queued for
// the group updates the queued role. Errors: contacts.ErrUnknownContact (also: not
// connected yet), ErrAlreadyMember, contacts.ErrWelcomeTooLarge,
// contacts.ErrContactAddQueueFull and those of AddMember.
func (n *Node) AddContactToGroup(ctx context.Context, group, contact string, role groupstate.Role) (*ContactAddResult, error) {
	if _, err := n.mem(); err != nil {
		return nil, err
	}
	c := n.conn
	// Held throughout, so that two adds never use one key package.
	c.mu.Lock()
	defer c.mu.Unlock()
	ct, err := n.contact(contact)
	if err != nil {
		return nil, err
	}
	if ct.State != "connected" {
		return nil, fmt.Errorf("%w: %s has not accepted yet (state %s)", contacts.ErrUnknownContact, contact, ct.State)
	}
	gid, err := n.manageableGroup(group, ct)
	if err != nil {
		return nil, err
	}
	res, err := n.addContact(ctx, gid, ct, role)
	if errors.Is(err, contacts.ErrNoContactKeyPackage) {
		p, err := n.queueContactAdd(gid, ct, role)
		if err != nil {
			return nil, err
		}
		return &ContactAddResult{ManageResult: ManageResult{Group: gid.String(), Events: []string{}}, Queued: p}, nil
	}
	if res == nil {
		return nil, err
	}
	return &ContactAddResult{ManageResult: *res}, err
}

// manageableGroup resolves group and checks, before anything is queued,
// that this member manages it and that the contact is not in it yet.
func (n *Node) manageableGroup(group string, ct *contacts.Contact) (groupstate.GroupID, error) {
	m, e, err := n.lockGroup(group)
	if err != nil {
		return groupstate.GroupID{}, err
	}
	gid := e.g.ID
	err = checkManager(m, e)
	m.mu.Unlock()
	if err != nil {
		return gid, err
	}
	members, err := n.Members(gid.String())
	if err != nil {
		return gid, err
	}
	for _, mi := range members {
		if mi.Fingerprint == ct.Fingerprint {
			return gid, fmt.Errorf("%w: %s is in %s already", ErrAlreadyMember, displayName(ct.Nick, ct.Fingerprint), gid)
		}
	}
	return gid, nil
}

// addContact is the immediate add: the contact's newest unused offer, the
// add, the welcome over the connection group. Call with conn.mu held.
func (n *Node) addContact(ctx context.Context, gid groupstate.GroupID, ct *contacts.Contact, role groupstate.Role) (*ManageResult, error) {
	kp, err := n.contactKeyPackage(ct)
	if err != nil {
		return nil, err
	}
	var texts []string
	res, err := n.manage(ctx, gid.String(), func(op *managerOp) error {
		if err := op.addMember(kp, role, false); err != nil {
			return err
		}
		// Cut before committing: a welcome too large for the connection
		// group leaves nothing behind.
		texts, err = contacts.WelcomeTexts(op.welcomes)
		return err
	})
	if err != nil {
		return res, err
	}
	hash := sha256.Sum256(kp.Marshal())
	if err := n.member.db.db.Update(func(txn *badger.Txn) error {
		return txn.Set(contacts.Key(contacts.KeyUsedKP, hash[:]), u64(uint64(time.Now().UnixMilli())))
	}); err != nil {
		return res, fmt.Errorf("node: record the contact's key package as used: %w", err)
	}
	for _, text := range texts {
		sr, err := n.Send(ctx, ct.Group, text)
		if err != nil {
			return res, fmt.Errorf("node: the member was added, but sending the welcome over the connection group failed (it still travels through the group's hosts): %w", err)
		}
		if res.Failed == nil {
			res.Failed = map[string]string{}
		}
		for h, why := range sr.Failed {
			res.Failed["connection group: "+h] = why
		}
	}
	return res, nil
}

// queueContactAdd records a queued add (or updates the role of the one
// queued for the same group and contact). Call with conn.mu held.
func (n *Node) queueContactAdd(gid groupstate.GroupID, ct *contacts.Contact, role groupstate.Role) (*contacts.PendingContactAdd, error) {
	recs, err := n.cstore.QueuedAdds()
	if err != nil {
		return nil, err
	}
	var rec *contacts.PendingAddRec
	for _, r := range recs {
		if r.Group == gid.String() && r.Contact == ct.Group {
			rec = r
		}
	}
	if rec == nil {
		if len(recs) >= contacts.MaxQueuedAdds {
			return nil, contacts.ErrContactAddQueueFull
		}
		var id [contacts.PendingAddIDSize]byte
		rand.Read(id[:])
		rec = &contacts.PendingAddRec{ID: hex.EncodeToString(id[:]), Group: gid.String(), Contact: ct.Group, Queued: time.Now().UTC()}
	}
	rec.Role, rec.Failed, rec.LastError = role.String(), false, ""
	if err := n.cstore.PutQueuedAdd(rec); err != nil {
		return nil, err
	}
	n.log.Info("queued a contact add until the contact's node offers a key package", "group", gid.Short(), "add", rec.ID)
	return n.pendingAddView(rec, ct), nil
}

func (n *Node) pendingAddView(rec *contacts.PendingAddRec, ct *contacts.Contact) *contacts.PendingContactAdd {
	p := &contacts.PendingContactAdd{ID: rec.ID, Group: rec.Group, Contact: rec.Contact, Role: rec.Role,
		State: contacts.AddWaiting, Queued: rec.Queued, LastError: rec.LastError}
	if rec.Failed {
		p.State = contacts.AddFailed
	}
	if ct != nil {
		p.Fingerprint, p.Nick = ct.Fingerprint, ct.Nick
	}
	if info, err := n.GroupInfo(rec.Group); err == nil {
		p.GroupName = info.Name
	}
	return p
}

// PendingContactAdds lists the queued adds, oldest first.
func (n *Node) PendingContactAdds() ([]contacts.PendingContactAdd, error) {
	if _, err := n.mem(); err != nil {
		return nil, err
	}
	c := n.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	recs, err := n.cstore.QueuedAdds()
	if err != nil {
		return nil, err
	}
	cts, err := n.Contacts()
	if err != nil {
		return nil, err
	}
	byGroup := map[string]*contacts.Contact{}
	for i := range cts {
		byGroup[cts[i].Group] = &cts[i]
	}
	out := []contacts.PendingContactAdd{}
	for _, r := range recs {
		out = append(out, *n.pendingAddView(r, byGroup[r.Contact]))
	}
	return out, nil
}

// CancelContactAdd cancels a queued add. Errors: contacts.ErrUnknownContactAdd.
func (n *Node) CancelContactAdd(id string) error {
	if _, err := n.mem(); err != nil {
		return err
	}
	c := n.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	id = strings.TrimSpace(id)
	b, err := n.member.db.get(contacts.Key(contacts.KeyQueuedAdd, []byte(id)))
	if err != nil {
		return err
	}
	if b == nil {
		return fmt.Errorf("%w: %q", contacts.ErrUnknownContactAdd, id)
	}
	return n.cstore.DeleteQueuedAdd(id)
}

// permanentAddError reports whether a queued add failing with err can
// never complete. Anything else (the network, a catch-up in progress —
// checkManager's epoch wait is ErrNotManager too, so that one is retried)
// is tried again at the next pass.
func permanentAddError(err error) bool {
	for _, e := range []error{ErrUnknownGroup, ErrNotManaged, ErrRemoved, ErrAlreadyMember, contacts.ErrUnknownContact, contacts.ErrWelcomeTooLarge} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// completeQueuedAdds tries the queued adds of one connected contact,
// oldest first, until the contact's offers run out. Call with conn.mu
// held.
func (n *Node) completeQueuedAdds(ct *contacts.Contact) error {
	recs, err := n.cstore.QueuedAdds()
	if err != nil {
		return err
	}
	for _, rec := range recs {
		if rec.Contact != ct.Group || rec.Failed {
			continue
		}
		if n.ctx.Err() != nil {
			return nil
		}
		gid, _ := groupstate.ParseGroupID(rec.Group) // checked by contacts.DecodePendingAdd
		role, _ := groupstate.ParseRole(rec.Role)
		err := n.completeQueuedAdd(gid, ct, role)
		switch {
		case errors.Is(err, contacts.ErrNoContactKeyPackage):
			return nil // wait for the next offer
		case err == nil:
			n.log.Info("completed a queued contact add", "group", gid.Short(), "add", rec.ID)
			if err := n.cstore.DeleteQueuedAdd(rec.ID); err != nil {
				return err
			}
		default:
			// Kept with its reason, so the user sees why (and, when it
			// can never complete, cancels it).
			rec.LastError, rec.Failed = err.Error(), permanentAddError(err)
			n.log.Info("a queued contact add failed", "group", gid.Short(), "add", rec.ID, "permanent", rec.Failed, "err", err)
			if err := n.cstore.PutQueuedAdd(rec); err != nil {
				return err
			}
		}
	}
	return nil
}

// completeQueuedAdd is one attempt at a queued add. An add whose welcome
// could not also be sent over the connection group still counts as done
// (the welcome travels through the group's hosts).
func (n *Node) completeQueuedAdd(gid groupstate.GroupID, ct *contacts.Contact, role groupstate.Role) error {
	ctx, cancel := context.WithTimeout(n.ctx, queuedAddTimeout)
	defer cancel()
	if _, err := n.manageableGroup(gid.String(), ct); err != nil {
		return err
	}
	res, err := n.addContact(ctx, gid, ct, role)
	if res != nil && err != nil {
		n.log.Warn("a queued contact add was done, but its welcome did not go over the connection group", "group", gid.Short(), "err", err)
		return nil
	}
	return err
}
