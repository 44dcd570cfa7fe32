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
	tp := newTopology(t, "news", groupstate.DefaultPolicy(), "alice", nil)
	alice, bob, rita, gid, host := tp.mgr, tp.join("bob", groupstate.RoleWrite), tp.join("rita", groupstate.RoleRead), tp.gid, tp.host
	ctx := context.Background()

	bob.n.member.mu.Lock()
	leaked, err := entry(t, bob, gid).keysFor(0)
	bob.n.member.mu.Unlock()
	if err != nil || !leaked.CanWrite() {
		t.Fatalf("bob's keys: %v", err)
	}
	rita.n.member.mu.Lock()
	p, err := rita.n.member.buildPayloadRaw(entry(t, rita, gid), 0, groupstate.KindText, []byte("a reader writes"), time.Now())
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

// A writer made a reader keeps the old epoch's write key; what it posts
// there afterwards, even under the head from before its demotion, is
// refused by the demotion's sequence limit, and what it wrote before is
// still shown.
func TestDemotedWriterRefusedAfterDemotion(t *testing.T) {
	_, _, gid, alice, bob, carol := threeMembers(t, groupstate.DefaultPolicy())
	ctx := context.Background()
	if _, err := bob.n.Send(ctx, gid, "bob while a writer"); err != nil {
		t.Fatal(err)
	}
	waitText(t, alice, gid, "bob while a writer")
	preDemotion := headOf(t, bob, gid)
	res, err := alice.n.SetRole(ctx, gid, bob.id.Fingerprint(), groupstate.RoleRead)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Rotated {
		t.Fatalf("demotion did not rotate: %+v", res)
	}
	waitEpoch(t, bob, gid, 1)
	waitEpoch(t, carol, gid, 1)
	postRawAt(t, bob, gid, 0, preDemotion, groupstate.KindText, []byte("bob after demotion"))
	for _, q := range []*person{alice, carol} {
		tu.Eventually(t, 20*time.Second, func() bool { return rejectedWith(t, q, "made a reader") }, "%s refuses the demoted writer's post", q.nick)
		txts := texts(t, q.n, gid)
		if contains(txts, "bob after demotion") || !contains(txts, "bob while a writer") {
			t.Fatalf("%s shows %q", q.nick, txts)
		}
	}
}
