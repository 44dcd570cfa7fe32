package node

import (
	"context"
	"testing"
	"time"

	"github.com/meshnode/meshnode/groupstate"
	tu "github.com/meshnode/meshnode/internal/testutil"
)

// A reader who obtains the epoch's write key from a writer (collusion, or
// a leak) can get envelopes past the hosts, but members refuse what it
// signs: its role, proven by the chain, is read.
func TestReaderWithLeakedWriteKeyRefused(t *testing.T) {
	leakCheck(t)
	host := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen})
	hosts := []string{hostAddr(host)}
	alice, bob, rita := newPerson(t, "alice"), newPerson(t, "bob"), newPerson(t, "rita")
	for _, p := range []*person{alice, bob, rita} {
		p.startManaged(nil)
	}
	ctx := context.Background()
	gid := managedGroup(t, alice, "news", hosts, groupstate.DefaultPolicy())
	addPerson(t, alice, bob, gid, hosts, groupstate.RoleWrite)
	addPerson(t, alice, rita, gid, hosts, groupstate.RoleRead)

	bob.n.member.mu.Lock()
	leaked, err := entry(t, bob, gid).keysFor(0)
	bob.n.member.mu.Unlock()
	if err != nil || !leaked.CanWrite() {
		t.Fatalf("bob's keys: %v", err)
	}
	rita.n.member.mu.Lock()
	p, err := rita.n.member.buildPayloadAt(entry(t, rita, gid), 0, groupstate.KindText, []byte("a reader writes"), time.Now())
	rita.n.member.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	env, err := groupstate.SealMessage(leaked, p)
	if err != nil {
		t.Fatal(err)
	}
	if err := host.RelayMessageToGroup(ctx, env.Mailbox(), env); err != nil {
		t.Fatalf("the host refuses an envelope signed with the epoch's write key: %v", err)
	}
	if _, err := bob.n.Send(ctx, gid, "after the leak"); err != nil {
		t.Fatal(err)
	}
	waitText(t, alice, gid, "after the leak")
	for _, q := range []*person{alice, bob} {
		tu.Eventually(t, 20*time.Second, func() bool { return rejectedWith(t, q, "may only read") }, "%s refuses the reader's post", q.nick)
		if contains(texts(t, q.n, gid), "a reader writes") {
			t.Fatalf("%s shows a reader's post", q.nick)
		}
	}
}
