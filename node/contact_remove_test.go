package node

import (
	"context"
	"errors"
	"testing"

	"github.com/meshnode/meshnode/contacts"
)

// Removing a contact leaves the connection group and forgets the contact;
// with block, the contact's next request is dropped unread; without, it
// is quarantined again.
func TestRemoveContact(t *testing.T) {
	leakCheck(t)
	dir := directoryHost(t, "", nil)
	alice, bob := newPerson(t, "alice"), newPerson(t, "bob")
	alice.startWithDirectory(hostAddr(dir))
	bob.startWithDirectory(hostAddr(dir))
	ctx := context.Background()
	connectedPair(t, dir, alice, bob, "bob-remove")
	cs, err := bob.n.Contacts()
	if err != nil || len(cs) != 1 {
		t.Fatalf("bob's contacts: %+v %v", cs, err)
	}
	group := cs[0].Group

	if _, err := bob.n.RemoveContact(ctx, "nobody", false); !errors.Is(err, contacts.ErrUnknownContact) {
		t.Fatalf("remove an unknown contact: %v", err)
	}
	ct, err := bob.n.RemoveContact(ctx, alice.id.Fingerprint(), false)
	if err != nil {
		t.Fatal(err)
	}
	if ct.Group != group {
		t.Fatalf("removed %+v", ct)
	}
	if cs, _ := bob.n.Contacts(); len(cs) != 0 {
		t.Fatalf("contacts after the removal: %+v", cs)
	}
	if _, err := bob.n.GroupInfo(group); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("the connection group is still there: %v", err)
	}

	// Not blocked: alice can ask again.
	if _, err := alice.n.RemoveContact(ctx, "bob-remove", false); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.n.RequestContact(ctx, "bob-remove"); err != nil {
		t.Fatal(err)
	}
	reqs := pollUntil(t, bob.n, 1)
	if _, err := bob.n.AcceptContact(ctx, reqs[0].ID); err != nil {
		t.Fatal(err)
	}
	// Blocked: her next request is dropped.
	if _, err := bob.n.RemoveContact(ctx, alice.id.Fingerprint(), true); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.n.RemoveContact(ctx, "bob-remove", false); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.n.RequestContact(ctx, "bob-remove"); err != nil {
		t.Fatal(err)
	}
	if got, err := bob.n.PollRequests(ctx); err != nil || got != 0 {
		t.Fatalf("a blocked contact's request was quarantined: %d %v", got, err)
	}
	if reqs, _ := bob.n.ContactRequests(); len(reqs) != 0 {
		t.Fatalf("requests shown: %+v", reqs)
	}
}
