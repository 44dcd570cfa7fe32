package node

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/groupstate"
	tu "github.com/meshnode/meshnode/internal/testutil"
)

// An always-on manager (a bot) creates the group and is listed as a bot;
// a human manager acts through it with signed requests; a member without
// the manage role cannot; the bot applies the rotate-after policy and
// rotates after a removal it was asked for.
func TestBotManagesGroup(t *testing.T) {
	leakCheck(t)
	tp := newTopology(t, "community", groupstate.DefaultPolicy(), "helper", asBot)
	bot, alice, gid, hosts := tp.mgr, tp.join("alice", groupstate.RoleManage), tp.gid, tp.hosts
	bob, carol := tp.person("bob", nil), tp.person("carol", nil)
	ctx := context.Background()

	// Alice adds bob and carol through the bot.
	for _, p := range []*person{bob, carol} {
		kp, err := p.n.NewKeyPackage(ctx, 0, hosts)
		if err != nil {
			t.Fatal(err)
		}
		res, err := alice.n.AddMember(ctx, gid, kp.KeyPackage, groupstate.RoleWrite, ViaBot())
		if err != nil {
			t.Fatal(err)
		}
		if !res.Requested {
			t.Fatalf("add via the bot: %+v", res)
		}
		waitJoined(t, p, gid)
	}
	tu.Eventually(t, 20*time.Second, func() bool {
		r := roles(t, bob.n, gid)
		return r["helper"] == "manage+bot" && r["alice"] == "manage" && r["bob"] == "write" && r["carol"] == "write"
	}, "bob lists the bot as a bot and everyone's role")

	// Carol (write) cannot ask the bot: her node refuses, and a request
	// she crafts is refused by the bot.
	if _, err := carol.n.Rotate(ctx, gid, ViaBot()); !errors.Is(err, ErrNotManager) {
		t.Fatalf("a writer's request: %v", err)
	}
	r := &groupstate.Request{GroupID: mustGroupID(t, gid), Author: [32]byte(carol.id.SigningKey()), Time: time.Now().UnixMilli(), Op: groupstate.RequestRotate}
	if err := groupstate.SignRequest(r, carol.id); err != nil {
		t.Fatal(err)
	}
	body, err := groupstate.MarshalRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	postRaw(t, carol, gid, 0, groupstate.KindRequest, body)
	tu.Eventually(t, 20*time.Second, func() bool { return rejectedWith(t, bot, "not a manager") }, "the bot refuses carol's request")
	if gi, _ := bot.n.GroupInfo(gid); gi.Epoch != 0 {
		t.Fatalf("the bot rotated on a writer's request: epoch %d", gi.Epoch)
	}

	// Alice sets a rotate-after policy through the bot; three messages
	// later the bot rotates.
	three := uint64(3)
	if _, err := alice.n.SetPolicy(ctx, gid, PolicyChange{RotateAfter: &three}, ViaBot()); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 20*time.Second, func() bool {
		gi, err := bob.n.GroupInfo(gid)
		return err == nil && strings.Contains(gi.Policy, "after 3 messages")
	}, "bob sees the new policy")
	for _, txt := range []string{"one", "two", "three"} {
		if _, err := bob.n.Send(ctx, gid, txt); err != nil {
			t.Fatal(err)
		}
	}
	waitEpoch(t, bob, gid, 1)
	waitEpoch(t, carol, gid, 1)

	// Alice removes carol through the bot: the bot rotates.
	res, err := alice.n.RemoveMember(ctx, gid, carol.id.Fingerprint(), ViaBot())
	if err != nil || !res.Requested {
		t.Fatalf("remove via the bot: %+v %v", res, err)
	}
	waitEpoch(t, bob, gid, 2)
	t.Cleanup(func() {
		if t.Failed() {
			gi, err := carol.n.GroupInfo(gid)
			rej, _ := carol.n.Rejections()
			t.Logf("carol: %+v %v; rejections %+v", gi, err, rej)
		}
	})
	// Carol learns of her removal by gossip or, if gossip missed her, by
	// catching up (her node does so periodically; here, while we wait).
	// The rotate-after-3 policy may have rotated once more before the
	// removal, so the removal's epoch is not fixed: what matters is that
	// carol never holds the epoch the removal rotated to.
	tu.Eventually(t, 30*time.Second, func() bool {
		gi, err := carol.n.GroupInfo(gid)
		if err == nil && gi.Removed {
			return true
		}
		carol.n.CatchUp(ctx, gid)
		return false
	}, "carol learns she is removed")
	if _, err := alice.n.Send(ctx, gid, "after the removal"); err != nil {
		t.Fatal(err)
	}
	waitText(t, bob, gid, "after the removal")
	cg, _ := carol.n.GroupInfo(gid)
	bg, _ := bob.n.GroupInfo(gid)
	if cg.Epoch >= bg.Epoch {
		t.Fatalf("removed carol holds epoch %d, the group is at %d", cg.Epoch, bg.Epoch)
	}
	for _, m := range messagesOf(t, carol.n, gid) {
		if m.Text == "after the removal" {
			t.Fatal("removed carol reads a message sent after her removal")
		}
	}
	if _, err := alice.n.Send(ctx, gid, "carol is gone"); err != nil {
		t.Fatal(err)
	}
	waitText(t, bob, gid, "carol is gone")
	if s, _ := bob.n.Splits(gid); len(s) != 0 {
		t.Fatalf("splits in a bot-managed group: %+v", s)
	}
}

func messagesOf(t *testing.T, n *Node, gid string) []Message {
	t.Helper()
	msgs, err := n.Messages(gid, 0)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}
