package node

import (
	"context"
	"strings"
	"testing"
	"time"

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

// A welcome lost to a crash between storing the add and storing the
// welcome is sent again by adding the same key package again, which
// changes nothing else; a different key package of a member is refused.
func TestAddAgainResendsLostWelcome(t *testing.T) {
	leakCheck(t)
	tp := newTopology(t, "club", groupstate.DefaultPolicy(), "alice", nil)
	bob := tp.person("bob", nil)
	ctx := context.Background()
	kp, err := bob.n.NewKeyPackage(ctx, 0, tp.hosts)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := parseKeyPackage(kp.KeyPackage, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// The add as a crash leaves it: the event recorded, no welcome.
	m, e, err := tp.mgr.n.lockManaged(tp.gid)
	if err != nil {
		t.Fatal(err)
	}
	op := &managerOp{n: tp.mgr.n, m: m, e: e, now: time.Now()}
	if _, err := op.appendEvent(&groupstate.Event{Kind: groupstate.EventAdd, KeyPackage: parsed.Marshal(), Role: groupstate.RoleWrite}); err != nil {
		m.mu.Unlock()
		t.Fatal(err)
	}
	added, err := tp.mgr.n.commit(ctx, op)
	if err != nil {
		t.Fatal(err)
	}
	if got := roles(t, tp.mgr.n, tp.gid); got["bob"] != "write" {
		t.Fatalf("alice lists %v", got)
	}

	res, err := tp.mgr.n.AddMember(ctx, tp.gid, kp.KeyPackage, groupstate.RoleWrite)
	if err != nil {
		t.Fatal(err)
	}
	if res.Head != added.Head || res.Epoch != added.Epoch || res.Rotated || len(res.Events) != 1 || !strings.Contains(res.Events[0], "again") {
		t.Fatalf("adding again changed the group: %+v (after the add: %+v)", res, added)
	}
	waitJoined(t, bob, tp.gid)
	if _, err := bob.n.Send(ctx, tp.gid, "joined at last"); err != nil {
		t.Fatal(err)
	}
	waitText(t, tp.mgr, tp.gid, "joined at last")

	other, err := bob.n.NewKeyPackage(ctx, 0, tp.hosts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tp.mgr.n.AddMember(ctx, tp.gid, other.KeyPackage, groupstate.RoleWrite); err == nil || !strings.Contains(err.Error(), "already a member") {
		t.Fatalf("a member added with another key package: %v", err)
	}
}
