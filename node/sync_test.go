package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	tu "github.com/meshnode/meshnode/internal/testutil"
)

// h2 is down while alice sends; it comes back, federated with h1 by a
// bootstrap address, and anti-entropy sync gives it everything. Bob then
// talks to h2 only (h1 is gone) and still gets every message.
func TestMemberWithOneHostGetsEverything(t *testing.T) {
	leakCheck(t)
	h1 := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen})
	h2dir := t.TempDir()
	h2key, _, _ := crypto.GenerateEd25519Key(nil)
	h2 := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen, dir: h2dir, key: h2key})
	h2listen := h2.Host().Addrs()[0].String()
	alice, bob := newPerson(t, "alice"), newPerson(t, "bob")
	alice.start()
	ctx := context.Background()
	_, invite, err := alice.n.CreateGroup(ctx, "g", []string{hostAddr(h1), hostAddr(h2)})
	if err != nil {
		t.Fatal(err)
	}
	h2.Close()
	for i := 0; i < 10; i++ {
		if _, err := alice.n.Send(ctx, "g", fmt.Sprintf("m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	mb := alice.n.HostedMailboxes()[0]
	want := count(t, h1, mb)
	alice.stop()

	h2 = startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen, dir: h2dir, key: h2key, tweak: func(p *Params) {
		p.ListenAddrs = []string{h2listen}
		p.Bootstrap = []string{hostAddr(h1)}
	}})
	tu.Eventually(t, 30*time.Second, func() bool { return count(t, h2, mb) == want }, "h2 syncs %d envelopes from h1", want)
	h1.Close()

	bob.start()
	if _, err := bob.n.JoinGroup(ctx, invite, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.n.CatchUp(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	waitTexts(t, bob.n, "g", 10)
}

// The group's only host is gone. What alice sent while bob was offline
// reaches bob by member-to-member sync: bob reconciles the group's
// mailbox with alice, a topic peer, besides the host the group names.
func TestMembersSyncWithEachOther(t *testing.T) {
	leakCheck(t)
	h := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen})
	alice, bob := newPerson(t, "alice"), newPerson(t, "bob")
	alice.start()
	bob.start()
	ctx := context.Background()
	_, invite, err := alice.n.CreateGroup(ctx, "g", []string{hostAddr(h)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.n.JoinGroup(ctx, invite, ""); err != nil {
		t.Fatal(err)
	}
	h.Close()
	bob.stop()
	for i := range 3 {
		if _, err := alice.n.Send(ctx, "g", fmt.Sprintf("while bob was away %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	bob.start()
	if err := bob.n.Host().Connect(ctx, peer.AddrInfo{ID: alice.n.ID(), Addrs: alice.n.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 60*time.Second, func() bool { return len(texts(t, bob.n, "g")) >= 3 }, "bob gets alice's messages by sync")
}
