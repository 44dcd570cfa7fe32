package node

import (
	"context"
	"errors"
	"testing"

	"github.com/meshnode/meshnode/groupstate"
)

// In a managed group a direct is sealed to the key the state chain holds
// for the recipient: it reaches a read-only member, who never announces a
// profile, and cannot be sent to someone removed.
func TestManagedDirectUsesChainKeys(t *testing.T) {
	leakCheck(t)
	tp := newTopology(t, "club", groupstate.DefaultPolicy(), "alice", nil)
	alice, bob, carol, gid := tp.mgr, tp.join("bob", groupstate.RoleWrite), tp.join("carol", groupstate.RoleRead), tp.gid
	ctx := context.Background()

	if _, err := alice.n.SendDirect(ctx, gid, carol.id.Fingerprint(), "for carol only"); err != nil {
		t.Fatalf("direct to a read-only member: %v", err)
	}
	if _, err := alice.n.Send(ctx, gid, "to everyone"); err != nil {
		t.Fatal(err)
	}
	waitText(t, carol, gid, "for carol only")
	waitText(t, bob, gid, "to everyone")
	if contains(texts(t, bob.n, gid), "for carol only") {
		t.Fatal("bob reads a direct to carol")
	}

	if _, err := alice.n.RemoveMember(ctx, gid, carol.id.Fingerprint()); err != nil {
		t.Fatal(err)
	}
	waitEpoch(t, bob, gid, 1)
	if _, err := bob.n.SendDirect(ctx, gid, carol.id.Fingerprint(), "to a removed member"); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("direct to a removed member: %v, want ErrUnknownMember", err)
	}
}
