package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/groupstate"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/keymgmt"
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
	// "After the removal" is after alice learnt of it: a message she sends
	// before her node has the removal's rotation goes, rightly, to the
	// epoch carol still reads.
	cg, _ := carol.n.GroupInfo(gid)
	waitEpoch(t, alice, gid, cg.Epoch+1)
	if _, err := alice.n.Send(ctx, gid, "after the removal"); err != nil {
		t.Fatal(err)
	}
	waitText(t, bob, gid, "after the removal")
	cg, _ = carol.n.GroupInfo(gid)
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

// Exactly one member of a group manages it automatically, whatever mix of
// bots and people holds the manage role: two bots (or a bot node the
// chain does not mark as one, next to a person) would each serve the same
// request and rotate on the same head, forking the chain.
func TestOneAutomaticManager(t *testing.T) {
	newID := func() *keymgmt.Identity {
		id, err := keymgmt.NewIdentity(keymgmt.SuiteX25519)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	type who struct {
		bot     bool // marked as a bot in the chain
		botNode bool // the node runs as a bot (RoleBot)
		role    groupstate.Role
	}
	for _, tc := range []struct {
		name string
		ms   []who // the first creates the group
		want int   // index of the automatic manager
	}{
		{"two bots", []who{{true, true, groupstate.RoleManage}, {true, true, groupstate.RoleManage}}, -1},
		{"bot and person", []who{{false, false, groupstate.RoleManage}, {true, true, groupstate.RoleManage}}, 1},
		{"two people", []who{{false, false, groupstate.RoleManage}, {false, false, groupstate.RoleManage}, {false, false, groupstate.RoleWrite}}, -1},
		{"unmarked bot node and person", []who{{false, true, groupstate.RoleManage}, {false, false, groupstate.RoleManage}}, -1},
		{"bot that only writes", []who{{false, false, groupstate.RoleManage}, {true, true, groupstate.RoleWrite}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids := make([]*keymgmt.Identity, len(tc.ms))
			for i := range ids {
				ids[i] = newID()
			}
			now := time.Now()
			g, c, err := groupstate.NewManagedGroup("g", nil, ids[0], "m0", tc.ms[0].bot, groupstate.DefaultPolicy(), now)
			if err != nil {
				t.Fatal(err)
			}
			for i, w := range tc.ms[1:] {
				kp, err := ids[i+1].NewKeyPackage(fmt.Sprintf("m%d", i+1), time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := c.Append(&groupstate.Event{Kind: groupstate.EventAdd, KeyPackage: kp.Marshal(), Role: w.role, Bot: w.bot}, ids[0], now); err != nil {
					t.Fatal(err)
				}
			}
			var autos []int
			for i, w := range tc.ms {
				m := &member{id: ids[i], mg: managedMember{bot: w.botNode}}
				if m.autoManages(&groupEntry{g: g, chain: c, local: &groupLocal{}}) {
					autos = append(autos, i)
				}
			}
			if len(autos) != 1 {
				t.Fatalf("automatic managers: %v, want exactly one", autos)
			}
			if tc.want >= 0 && autos[0] != tc.want {
				t.Fatalf("automatic manager %d, want %d", autos[0], tc.want)
			}
			if tc.want < 0 { // a tie among equals: the smallest key
				for i, w := range tc.ms {
					if w.role.CanManage() && w.bot == tc.ms[autos[0]].bot && bytes.Compare(ids[i].SigningKey(), ids[autos[0]].SigningKey()) < 0 {
						t.Fatalf("member %d has a smaller key than the automatic manager %d", i, autos[0])
					}
				}
			}
		})
	}
}

// Requests refused when served are kept among the recent rejections, and
// those stay bounded however many there are.
func TestRefusedRequestsBounded(t *testing.T) {
	leakCheck(t)
	tp := newTopology(t, "community", groupstate.DefaultPolicy(), "helper", func(p *Params) { asBot(p); p.ManageInterval = time.Hour })
	bot, gid := tp.mgr, mustGroupID(t, tp.gid)
	// Queued as if accepted earlier: rotations asked by someone who is
	// not a member (any more).
	stranger, err := keymgmt.NewIdentity(keymgmt.SuiteX25519)
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxRejections + 10 {
		r := &groupstate.Request{GroupID: gid, Time: time.Now().Add(time.Duration(i) * time.Millisecond).UnixMilli(), Op: groupstate.RequestRotate}
		if err := groupstate.SignRequest(r, stranger); err != nil {
			t.Fatal(err)
		}
		b, err := groupstate.MarshalRequest(r)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(b)
		if err := bot.n.member.db.db.Update(func(txn *badger.Txn) error { return txn.Set(gkey(pfxRequest, gid, h[:]), b) }); err != nil {
			t.Fatal(err)
		}
	}
	bot.n.serveRequests(context.Background(), gid)
	if q := queuedRequests(t, bot, tp.gid); q != 0 {
		t.Fatalf("%d refused requests still queued", q)
	}
	rej, err := bot.n.Rejections()
	if err != nil {
		t.Fatal(err)
	}
	if len(rej) != maxRejections || !strings.Contains(rej[len(rej)-1].Reason, "not a member") {
		t.Fatalf("%d rejections kept (want %d), the last %+v", len(rej), maxRejections, rej[len(rej)-1])
	}
	if gi, _ := bot.n.GroupInfo(tp.gid); gi.Epoch != 0 {
		t.Fatalf("a stranger's request rotated the group to epoch %d", gi.Epoch)
	}
}
