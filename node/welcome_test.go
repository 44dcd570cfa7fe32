package node

import (
	"context"
	"testing"

	"github.com/meshnode/meshnode/groupstate"
)

// A person who hands out two key packages at once (say, to two groups'
// managers in the same second) joins both groups: each key package has its
// own welcome mailbox. Before key packages carried a nonce, the two were
// byte-identical, both welcomes landed in one mailbox and only one group
// was ever joined.
func TestJoinTwoManagedGroupsAtOnce(t *testing.T) {
	leakCheck(t)
	host := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen})
	hosts := []string{hostAddr(host)}
	alice, carol, bob := newPerson(t, "alice"), newPerson(t, "carol"), newPerson(t, "bob")
	alice.startManaged(nil)
	carol.startManaged(nil)
	bob.startManaged(nil)
	ctx := context.Background()
	g1 := managedGroup(t, alice, "one", hosts, groupstate.DefaultPolicy())
	g2 := managedGroup(t, carol, "two", hosts, groupstate.DefaultPolicy())
	kp1, err := bob.n.NewKeyPackage(ctx, 0, hosts)
	if err != nil {
		t.Fatal(err)
	}
	kp2, err := bob.n.NewKeyPackage(ctx, 0, hosts)
	if err != nil {
		t.Fatal(err)
	}
	if kp1.KeyPackage == kp2.KeyPackage {
		t.Fatal("two key packages made back to back are identical")
	}
	if kps, err := bob.n.KeyPackages(); err != nil || len(kps) != 2 {
		t.Fatalf("pending key packages: %d, %v; want 2", len(kps), err)
	}
	errs := make(chan error, 2)
	go func() { _, err := alice.n.AddMember(ctx, g1, kp1.KeyPackage, groupstate.RoleWrite); errs <- err }()
	go func() { _, err := carol.n.AddMember(ctx, g2, kp2.KeyPackage, groupstate.RoleWrite); errs <- err }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	waitJoined(t, bob, g1)
	waitJoined(t, bob, g2)
	if _, err := bob.n.Send(ctx, g1, "hello one"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.n.Send(ctx, g2, "hello two"); err != nil {
		t.Fatal(err)
	}
	waitText(t, alice, g1, "hello one")
	waitText(t, carol, g2, "hello two")
	if kps, err := bob.n.KeyPackages(); err != nil || len(kps) != 0 {
		t.Fatalf("key packages still pending after both welcomes: %d, %v", len(kps), err)
	}
}
