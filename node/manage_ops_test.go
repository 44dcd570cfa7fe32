package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/keymgmt"
)

func waitRoles(t *testing.T, p *person, gid string, want map[string]string) {
	t.Helper()
	tu.Eventually(t, 20*time.Second, func() bool {
		got := roles(t, p.n, gid)
		for nick, r := range want {
			if got[nick] != r {
				return false
			}
		}
		return true
	}, "%s lists roles %v", p.nick, want)
}

func waitHead(t *testing.T, p, like *person, gid string) {
	t.Helper()
	tu.Eventually(t, 20*time.Second, func() bool { return headOf(t, p, gid) == headOf(t, like, gid) },
		"%s reaches %s's state head", p.nick, like.nick)
}

// After a transfer the new manager adds and removes; the old manager's
// node refuses to manage, and an event it signs anyway is refused by
// every member.
func TestTransferManager(t *testing.T) {
	leakCheck(t)
	tp := newTopology(t, "club", groupstate.DefaultPolicy(), "alice", nil)
	alice, bob, carol, gid := tp.mgr, tp.join("bob", groupstate.RoleWrite), tp.join("carol", groupstate.RoleWrite), tp.gid
	dave := tp.person("dave", nil)
	ctx := context.Background()

	res, err := alice.n.TransferManager(ctx, gid, bob.id.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	// The key tree's seed is handed over in a rotation, made before alice
	// steps down (keytree.go); the result names the handover as well.
	if !res.Rotated || len(res.Events) != 3 || !strings.Contains(res.Events[0], "made bob") || !strings.Contains(res.Events[1], "gave alice") || !strings.Contains(res.Events[2], "handed management to bob") {
		t.Fatalf("transfer to a writer: %+v", res)
	}
	for _, p := range []*person{alice, bob, carol} {
		waitRoles(t, p, gid, map[string]string{"alice": "write", "bob": "manage", "carol": "write"})
	}
	if _, err := alice.n.RemoveMember(ctx, gid, carol.id.Fingerprint()); !errors.Is(err, ErrNotManager) {
		t.Fatalf("the former manager removes: %v", err)
	}
	if _, err := alice.n.TransferManager(ctx, gid, carol.id.Fingerprint()); !errors.Is(err, ErrNotManager) {
		t.Fatalf("the former manager transfers again: %v", err)
	}

	// The new manager adds and removes.
	addPerson(t, bob, dave, gid, tp.hosts, groupstate.RoleWrite)
	res, err = bob.n.RemoveMember(ctx, gid, carol.id.Fingerprint())
	if err != nil || !res.Rotated {
		t.Fatalf("the new manager removes: %+v %v", res, err)
	}
	waitEpoch(t, alice, gid, res.Epoch)
	waitEpoch(t, dave, gid, res.Epoch)
	waitRoles(t, dave, gid, map[string]string{"alice": "write", "bob": "manage", "carol": "", "dave": "write"})

	// Alice signs a removal of dave anyway: everyone refuses it.
	waitHead(t, alice, bob, gid)
	waitHead(t, dave, bob, gid)
	ev := signedEvent(t, alice, gid, alice.id, &groupstate.Event{Kind: groupstate.EventRemove, Target: [32]byte(dave.id.SigningKey())})
	postRaw(t, alice, gid, res.Epoch, groupstate.KindStateEvent, marshalEvent(t, ev))
	for _, p := range []*person{bob, dave} {
		tu.Eventually(t, 20*time.Second, func() bool { return rejectedWith(t, p, "only managers") }, "%s refuses the former manager's event", p.nick)
		if got := roles(t, p.n, gid); got["dave"] != "write" {
			t.Fatalf("%s applied the former manager's removal: %v", p.nick, got)
		}
	}
	if _, err := bob.n.Send(ctx, gid, "still here"); err != nil {
		t.Fatal(err)
	}
	waitText(t, dave, gid, "still here")
	for _, p := range []*person{alice, bob, dave} {
		if s, _ := p.n.Splits(gid); len(s) != 0 {
			t.Fatalf("%s reports splits: %+v", p.nick, s)
		}
	}
}

// A reader made a manager gets the write key (the keys rotate) and can
// remove; a transfer to a reader rotates before the author steps down.
// Then the group's automatic manager leaves by removing itself, the other
// manager rotates, and the last manager cannot leave.
func TestAddManagerAndManagerLeaves(t *testing.T) {
	leakCheck(t)
	tp := newTopology(t, "club", groupstate.DefaultPolicy(), "alice", nil)
	alice, gid := tp.mgr, tp.gid
	bob, carol, dave := tp.join("bob", groupstate.RoleRead), tp.join("carol", groupstate.RoleWrite), tp.join("dave", groupstate.RoleRead)
	ctx := context.Background()

	res, err := alice.n.AddManager(ctx, gid, bob.id.Fingerprint())
	if err != nil || !res.Rotated || res.Epoch != 1 {
		t.Fatalf("a reader made a manager: %+v %v", res, err)
	}
	if _, err := alice.n.AddManager(ctx, gid, bob.id.Fingerprint()); !errors.Is(err, groupstate.ErrInvalidEvent) {
		t.Fatalf("a manager made a manager again: %v", err)
	}
	waitEpoch(t, bob, gid, 1)
	waitRoles(t, bob, gid, map[string]string{"alice": "manage", "bob": "manage"})
	if _, err := bob.n.Send(ctx, gid, "bob writes now"); err != nil {
		t.Fatal(err)
	}
	waitText(t, carol, gid, "bob writes now")
	res, err = bob.n.RemoveMember(ctx, gid, carol.id.Fingerprint())
	if err != nil || !res.Rotated {
		t.Fatalf("the added manager removes: %+v %v", res, err)
	}
	waitEpoch(t, alice, gid, res.Epoch)
	waitHead(t, alice, bob, gid)

	// Alice hands her management to dave, a reader.
	res, err = alice.n.TransferManager(ctx, gid, dave.id.Fingerprint())
	if err != nil || !res.Rotated || len(res.Events) != 3 || !strings.Contains(res.Events[0], "made dave") || !strings.Contains(res.Events[2], "handed management to dave") {
		t.Fatalf("transfer to a reader: %+v %v", res, err)
	}
	waitEpoch(t, dave, gid, res.Epoch)
	for _, p := range []*person{bob, dave} {
		waitRoles(t, p, gid, map[string]string{"alice": "write", "bob": "manage", "dave": "manage"})
	}
	if _, err := dave.n.Send(ctx, gid, "dave writes now"); err != nil {
		t.Fatal(err)
	}
	waitText(t, alice, gid, "dave writes now")

	// Of bob and dave, the one with the smaller key auto-manages: it
	// leaves by removing itself; the other finds the rotation due.
	leaver, stays := bob, dave
	if slices.Compare(dave.id.SigningKey(), bob.id.SigningKey()) < 0 {
		leaver, stays = dave, bob
	}
	waitHead(t, leaver, alice, gid)
	waitHead(t, stays, alice, gid)
	before := res.Epoch
	res, err = leaver.n.LeaveGroup(ctx, gid)
	if err != nil || res.Requested || res.Rotated || !slices.Contains(res.Events, "left the group") {
		t.Fatalf("the automatic manager leaves: %+v %v", res, err)
	}
	if _, err := leaver.n.GroupInfo(gid); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("the leaver still has the group: %v", err)
	}
	waitEpoch(t, stays, gid, before+1)
	waitEpoch(t, alice, gid, before+1)
	waitRoles(t, alice, gid, map[string]string{leaver.nick: "", stays.nick: "manage"})

	// The last manager cannot leave while alice is there.
	waitHead(t, stays, alice, gid)
	if _, err := stays.n.LeaveGroup(ctx, gid); !errors.Is(err, groupstate.ErrLastManager) {
		t.Fatalf("the last manager leaves: %v", err)
	}
	if gi, err := stays.n.GroupInfo(gid); err != nil || gi.Role != "manage" {
		t.Fatalf("the refused leave changed the group: %+v %v", gi, err)
	}
}

// Setting the hosts moves the members' traffic: a message sent after it
// is stored on the new host, and a newcomer added after the old host is
// gone joins and reads through the new one.
func TestSetHostsMovesTraffic(t *testing.T) {
	leakCheck(t)
	tp := newTopology(t, "club", groupstate.DefaultPolicy(), "alice", nil)
	oldHost, newHost := tp.host, startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen})
	alice, carol, gid := tp.mgr, tp.person("carol", nil), tp.gid
	// Bob's manager loop has no period to speak of: he follows the new
	// hosts because the set-hosts event wakes it.
	bob := tp.person("bob", func(p *Params) { p.ManageInterval = time.Hour })
	tp.add(bob, groupstate.RoleWrite)
	ctx := context.Background()
	after := []string{hostAddr(newHost)}

	if _, err := bob.n.SetHosts(ctx, gid, after); !errors.Is(err, ErrNotManager) {
		t.Fatalf("a writer sets the hosts: %v", err)
	}
	if _, err := alice.n.SetHosts(ctx, gid, []string{"/ip4/127.0.0.1/tcp/1"}); !errors.Is(err, ErrConfig) {
		t.Fatalf("a host without /p2p/: %v", err)
	}
	res, err := alice.n.SetHosts(ctx, gid, after)
	if err != nil || len(res.Failed) != 0 || res.Delivered != 1 || res.Rotated {
		t.Fatalf("set hosts: %+v %v", res, err)
	}
	if got, _ := alice.n.GroupHosts(gid); !slices.Equal(got, after) {
		t.Fatalf("alice's hosts: %v", got)
	}
	tu.Eventually(t, 20*time.Second, func() bool {
		got, err := bob.n.GroupHosts(gid)
		return err == nil && slices.Equal(got, after)
	}, "bob follows the new hosts")
	if gi, err := bob.n.GroupInfo(gid); err != nil || !slices.Equal(gi.Hosts, after) {
		t.Fatalf("bob's group info: %+v %v", gi, err)
	}

	sr, err := bob.n.Send(ctx, gid, "after the move")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sr.StoredBy, []string{newHost.ID().String()}) || len(sr.Failed) != 0 {
		t.Fatalf("bob's message went to %v (failed %v), want the new host only", sr.StoredBy, sr.Failed)
	}
	bob.n.member.mu.Lock()
	e := entry(t, bob, gid)
	keys, err := e.keysFor(e.g.Epoch)
	bob.n.member.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if count(t, newHost, keys.Mailbox) == 0 {
		t.Fatal("the new host does not hold the group's mailbox")
	}

	// The old host goes away; carol, added now, joins and reads through
	// the new host.
	if err := oldHost.Close(); err != nil {
		t.Fatal(err)
	}
	addPerson(t, alice, carol, gid, after, groupstate.RoleWrite)
	waitText(t, carol, gid, "after the move")
	if _, err := carol.n.Send(ctx, gid, "carol arrives"); err != nil {
		t.Fatal(err)
	}
	waitText(t, bob, gid, "carol arrives")
}

// A member that leaves is removed by the manager, which rotates; the
// leaver's node forgets the group, and what it kept from before cannot
// read anything sent after.
func TestLeaveGroup(t *testing.T) {
	leakCheck(t)
	tp := newTopology(t, "club", groupstate.DefaultPolicy(), "alice", nil)
	alice, bob, carol, gid, host := tp.mgr, tp.join("bob", groupstate.RoleWrite), tp.join("carol", groupstate.RoleWrite), tp.gid, tp.host
	ctx := context.Background()
	if _, err := bob.n.Send(ctx, gid, "bob was here"); err != nil {
		t.Fatal(err)
	}
	waitText(t, carol, gid, "bob was here")

	// What bob's node holds before leaving.
	bob.n.member.mu.Lock()
	e := entry(t, bob, gid)
	kept, groupID := e.g, e.g.ID
	mbs := bob.n.member.mailboxesOf(e)
	bob.n.member.mu.Unlock()
	keys, err := kept.Keys(0)
	if err != nil {
		t.Fatal(err)
	}

	res, err := bob.n.LeaveGroup(ctx, gid)
	if err != nil || !res.Requested || res.Delivered != 1 || len(res.Failed) != 0 {
		t.Fatalf("bob leaves: %+v %v", res, err)
	}
	if _, err := bob.n.GroupInfo(gid); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("bob's node still has the group: %v", err)
	}
	if gs, _ := bob.n.Groups(); len(gs) != 0 {
		t.Fatalf("bob's node lists %+v", gs)
	}
	for _, mb := range mbs {
		if bob.n.Hosts(mb) {
			t.Fatal("bob's node still hosts a mailbox of the group")
		}
	}
	// No record under any prefix names the group (a prefix added to
	// memberdb.go but not to groupPrefixes shows here).
	var left int
	err = bob.n.member.db.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if k := it.Item().Key(); len(k) >= 17 && groupstate.GroupID(k[1:17]) == groupID {
				left++
			}
		}
		return nil
	})
	if err != nil || left != 0 {
		t.Fatalf("bob's database keeps %d records of the group (%v)", left, err)
	}
	if _, err := bob.n.LeaveGroup(ctx, gid); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("leaving twice: %v", err)
	}

	// Alice's node removes him and rotates.
	waitEpoch(t, carol, gid, 1)
	waitRoles(t, carol, gid, map[string]string{"alice": "manage", "bob": "", "carol": "write"})
	if _, err := alice.n.Send(ctx, gid, "after bob left"); err != nil {
		t.Fatal(err)
	}
	waitText(t, carol, gid, "after bob left")

	// With every secret bob's node had and every envelope of the host, he
	// reads nothing sent after, and the rotation is not sealed to him.
	mbAll, err := host.Store().Mailboxes()
	if err != nil {
		t.Fatal(err)
	}
	var updates int
	for _, mb := range mbAll {
		pg, err := host.Store().Page(mb, nil, 10000, 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, env := range pg.Envelopes {
			p, err := groupstate.OpenMessage(keys, groupID, 0, env)
			if err != nil {
				continue
			}
			if strings.Contains(string(p.Body), "after bob left") {
				t.Fatalf("bob's kept keys decrypt %q", p.Body)
			}
			if p.Kind != groupstate.KindKeyUpdate {
				continue
			}
			updates++
			ku, err := groupstate.ParseKeyUpdate(p.Body)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := chainCopy(t, alice, gid).AcceptRotation(bob.id, &groupstate.Group{}, ku); !errors.Is(err, keymgmt.ErrNotRecipient) {
				t.Fatalf("bob opens the rotation after he left: %v", err)
			}
		}
	}
	if updates == 0 {
		t.Fatal("no rotation found on the host")
	}
}

// Through the bot: a manager makes a reader a manager, hands its own
// management over to another reader (one request: promotion, rotation,
// step down) and has the hosts set; a manager leaves.
func TestManagerOpsViaBot(t *testing.T) {
	leakCheck(t)
	tp := newTopology(t, "community", groupstate.DefaultPolicy(), "helper", asBot)
	newHost := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen})
	bot, gid := tp.mgr, tp.gid
	alice, bob, carol := tp.join("alice", groupstate.RoleManage), tp.join("bob", groupstate.RoleRead), tp.join("carol", groupstate.RoleRead)
	ctx := context.Background()

	if _, err := bob.n.AddManager(ctx, gid, carol.id.Fingerprint(), ViaBot()); !errors.Is(err, ErrNotManager) {
		t.Fatalf("a reader asks for a manager: %v", err)
	}
	if _, err := alice.n.AddManager(ctx, gid, bot.id.Fingerprint(), ViaBot()); !errors.Is(err, groupstate.ErrInvalidEvent) {
		t.Fatalf("asking to promote a manager: %v", err)
	}
	res, err := alice.n.AddManager(ctx, gid, carol.id.Fingerprint(), ViaBot())
	if err != nil || !res.Requested {
		t.Fatalf("add-manager via the bot: %+v %v", res, err)
	}
	waitEpoch(t, carol, gid, 1) // carol gained write access
	waitRoles(t, alice, gid, map[string]string{"carol": "manage"})

	res, err = alice.n.TransferManager(ctx, gid, bob.id.Fingerprint(), ViaBot())
	if err != nil || !res.Requested || len(res.Events) != 1 || res.Delivered != 1 {
		t.Fatalf("transfer via the bot: %+v %v", res, err)
	}
	waitEpoch(t, bob, gid, 2) // bob gained write access
	for _, p := range []*person{alice, bob} {
		waitRoles(t, p, gid, map[string]string{"helper": "manage+bot", "alice": "write", "bob": "manage", "carol": "manage"})
	}

	after := []string{hostAddr(newHost)}
	if _, err := bob.n.SetHosts(ctx, gid, after, ViaBot()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*person{bot, alice, bob, carol} {
		tu.Eventually(t, 20*time.Second, func() bool {
			got, err := p.n.GroupHosts(gid)
			return err == nil && slices.Equal(got, after)
		}, "%s follows the hosts the bot set", p.nick)
	}

	// Carol, a manager, leaves: the bot removes her and rotates.
	epoch := func() uint64 { gi, _ := alice.n.GroupInfo(gid); return gi.Epoch }()
	res, err = carol.n.LeaveGroup(ctx, gid)
	if err != nil || !res.Requested {
		t.Fatalf("carol leaves: %+v %v", res, err)
	}
	waitEpoch(t, alice, gid, epoch+1)
	waitRoles(t, bob, gid, map[string]string{"carol": "", "bob": "manage"})
	if _, err := alice.n.Send(ctx, gid, "bye carol"); err != nil {
		t.Fatal(err)
	}
	waitText(t, bob, gid, "bye carol")
	for _, p := range []*person{alice, bob} {
		if s, _ := p.n.Splits(gid); len(s) != 0 {
			t.Fatalf("%s reports splits: %+v", p.nick, s)
		}
	}
}

// A transfer through the bot is one request, performed as a whole or
// refused as a whole: when the target is gone by the time the bot serves
// it, the requester stays a manager (two separate requests would have
// stepped it down without promoting anyone).
func TestTransferViaBotRefusedAsAWhole(t *testing.T) {
	leakCheck(t)
	tp := newTopology(t, "community", groupstate.DefaultPolicy(), "helper", asBot)
	bot, gid := tp.mgr, tp.gid
	alice, carol := tp.join("alice", groupstate.RoleManage), tp.join("carol", groupstate.RoleWrite)
	ctx := context.Background()
	waitRoles(t, alice, gid, map[string]string{"helper": "manage+bot", "alice": "manage", "carol": "write"})

	// The bot is away while alice asks it to hand her management to
	// carol, and then removes carol herself.
	bot.stop()
	res, err := alice.n.TransferManager(ctx, gid, carol.id.Fingerprint(), ViaBot())
	if err != nil || !res.Requested || res.Delivered != 1 || len(res.Failed) != 0 {
		t.Fatalf("transfer via the bot: %+v %v", res, err)
	}
	if res, err = alice.n.RemoveMember(ctx, gid, carol.id.Fingerprint()); err != nil || !res.Rotated {
		t.Fatalf("alice removes carol: %+v %v", res, err)
	}

	// Back, the bot queues the request (it was valid when made), then
	// finds it no longer applies and refuses all of it.
	bot.startManaged(asBot)
	waitEpoch(t, bot, gid, res.Epoch)
	tu.Eventually(t, 20*time.Second, func() bool { return rejectedWith(t, bot, "who is not a member") },
		"the bot refuses the transfer to a removed member")
	tu.Eventually(t, 20*time.Second, func() bool { return queuedRequests(t, bot, gid) == 0 }, "the bot has served its queue")
	waitHead(t, alice, bot, gid)
	for _, p := range []*person{bot, alice} {
		if got := roles(t, p.n, gid); got["alice"] != "manage" || got["carol"] != "" {
			t.Fatalf("%s lists %v after the refused transfer", p.nick, got)
		}
	}
	if _, err := alice.n.Rotate(ctx, gid); err != nil {
		t.Fatalf("alice is no longer a manager: %v", err)
	}
}

// queuedRequests counts the manager requests p's node has queued and not
// served yet ('R').
func queuedRequests(t *testing.T, p *person, gid string) int {
	t.Helper()
	n := 0
	if err := p.n.member.db.scan(gkey(pfxRequest, mustGroupID(t, gid)), func(_, _ []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// A manager whose own removal (its leave) reached no host keeps the group
// and gets ErrLeaveUndelivered; leaving again delivers that removal, so
// the other members learn of it and the remaining manager rotates.
func TestLeaveRetryDeliversPendingRemoval(t *testing.T) {
	leakCheck(t)
	hostDir := t.TempDir()
	hostKey, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	host := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen, dir: hostDir, key: hostKey})
	listen := host.Host().Addrs()[0].String()
	tp := newTopologyOn(t, host, "club", groupstate.DefaultPolicy(), "alice", nil)
	alice, gid := tp.mgr, tp.gid
	bob, carol := tp.join("bob", groupstate.RoleWrite), tp.join("carol", groupstate.RoleWrite)
	ctx := context.Background()
	if _, err := alice.n.AddManager(ctx, gid, bob.id.Fingerprint()); err != nil {
		t.Fatal(err)
	}
	waitRoles(t, carol, gid, map[string]string{"alice": "manage", "bob": "manage"})
	// The manager with the smaller key manages the group automatically:
	// it leaves by appending its own removal.
	leaver, stays := alice, bob
	if slices.Compare(bob.id.SigningKey(), alice.id.SigningKey()) < 0 {
		leaver, stays = bob, alice
	}
	waitHead(t, leaver, alice, gid)
	waitHead(t, stays, alice, gid)
	epoch := func() uint64 { gi, _ := carol.n.GroupInfo(gid); return gi.Epoch }()

	// The host is down, and the leaver reaches no member either.
	if err := host.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*person{stays, carol} {
		leaver.n.Host().Network().ClosePeer(p.n.ID())
	}
	res, err := leaver.n.LeaveGroup(ctx, gid)
	if !errors.Is(err, ErrLeaveUndelivered) || res == nil || len(res.Failed) != 1 {
		t.Fatalf("leaving with the host down: %+v %v", res, err)
	}
	if _, err := leaver.n.GroupInfo(gid); err != nil {
		t.Fatalf("an undelivered leave forgot the group: %v", err)
	}

	// The host is back (same identity, address and store): leaving again
	// delivers the removal.
	host = startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen, dir: hostDir, key: hostKey,
		tweak: func(p *Params) { p.ListenAddrs = []string{listen} }})
	// The failed dial put the host in dial backoff; a user would simply
	// try again a little later.
	if sw, ok := leaver.n.Host().Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(host.ID())
	}
	res, err = leaver.n.LeaveGroup(ctx, gid)
	if err != nil || res.Delivered != 1 || len(res.Failed) != 0 {
		t.Fatalf("leaving again: %+v %v", res, err)
	}
	if _, err := leaver.n.GroupInfo(gid); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("the leaver still has the group: %v", err)
	}
	for _, p := range []*person{stays, carol} {
		waitRoles(t, p, gid, map[string]string{leaver.nick: "", stays.nick: "manage", "carol": "write"})
	}
	waitEpoch(t, carol, gid, epoch+1)
	if s, _ := carol.n.Splits(gid); len(s) != 0 {
		t.Fatalf("carol reports splits: %+v", s)
	}
}

// A crash between storing a manager operation's envelopes in the node's
// own store and recording them leaves them there unprocessed. The next
// manager operation must build on them: otherwise it forks the chain with
// the manager's own event and reuses its sequence numbers, and members
// refuse one of the two.
func TestManagerOpAfterCrashBuildsOnOwnStore(t *testing.T) {
	leakCheck(t)
	// No periodic pass: only the operation itself can process the store.
	slow := func(p *Params) {
		p.ProcessInterval, p.CatchUpInterval, p.ManageInterval = time.Hour, time.Hour, time.Hour
	}
	tp := newTopology(t, "club", groupstate.DefaultPolicy(), "alice", slow)
	alice, gid := tp.mgr, tp.gid
	bob := tp.join("bob", groupstate.RoleWrite)
	ctx := context.Background()

	// What a rotation leaves behind when the node dies after commit's
	// store.Put and before its member-database transaction: the key
	// update in the own store, the member database as before (the
	// restarted node reloads it).
	c := chainCopy(t, alice, gid)
	rot, err := c.Rotate(alice.n.member.id, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	body, err := groupstate.MarshalKeyUpdate(rot.Parts[0])
	if err != nil {
		t.Fatal(err)
	}
	m := alice.n.member
	m.mu.Lock()
	e := entry(t, alice, gid)
	p, err := m.buildPayloadAt(e, 0, groupstate.KindKeyUpdate, body, time.Now())
	var env *envelope.Envelope
	if err == nil {
		var keys *keymgmt.EpochKeys
		if keys, err = e.keysFor(0); err == nil {
			env, err = groupstate.SealMessage(keys, p)
		}
	}
	m.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.n.Store().Put(ctx, env); err != nil {
		t.Fatal(err)
	}

	res, err := alice.n.Rotate(ctx, gid)
	if err != nil {
		t.Fatal(err)
	}
	if res.Epoch != 2 {
		t.Fatalf("the rotation after the crash went to epoch %d: it did not build on the stored rotation to epoch 1", res.Epoch)
	}
	if _, err := alice.n.Send(ctx, gid, "after the crash"); err != nil {
		t.Fatal(err)
	}
	// Bob gets the stored rotation (sync or a later relay) only with the
	// host's copy of it: deliver it as anti-entropy sync would.
	if err := tp.host.RelayMessageToGroup(ctx, env.Mailbox(), env); err != nil {
		t.Fatal(err)
	}
	waitEpoch(t, bob, gid, 2)
	waitText(t, bob, gid, "after the crash")
	for _, q := range []*person{alice, bob} {
		if rej, _ := q.n.Rejections(); len(rej) != 0 {
			t.Fatalf("%s rejected: %+v", q.nick, rej)
		}
		if s, _ := q.n.Splits(gid); len(s) != 0 {
			t.Fatalf("%s reports splits: %+v", q.nick, s)
		}
	}
}

// A reader holds no write key, so it cannot post its removal request: it
// still leaves (its node forgets the group) and is told that the managers
// do not know.
func TestReaderLeaves(t *testing.T) {
	leakCheck(t)
	tp := newTopology(t, "news", groupstate.DefaultPolicy(), "alice", nil)
	alice, rita, gid := tp.mgr, tp.join("rita", groupstate.RoleRead), tp.gid
	res, err := rita.n.LeaveGroup(context.Background(), gid)
	if err != nil || res.Requested || res.Delivered != 0 || len(res.Events) != 1 || !strings.Contains(res.Events[0], "ask a manager to remove you") {
		t.Fatalf("a reader leaves: %+v %v", res, err)
	}
	if _, err := rita.n.GroupInfo(gid); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("the reader's node still has the group: %v", err)
	}
	if got := roles(t, alice.n, gid); got["rita"] != "read" {
		t.Fatalf("alice lists %v", got)
	}
	if _, err := alice.n.RemoveMember(context.Background(), gid, rita.id.Fingerprint()); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkSettleNothingNew is what a manager operation adds to make sure
// it builds on the own store (settleLocked) when there is nothing new: a
// managed group of a few epochs with messages in each.
func BenchmarkSettleNothingNew(b *testing.B) {
	id, err := keymgmt.NewIdentity(keymgmt.SuiteX25519)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	params := DefaultParams(RoleMember)
	params.ManageInterval = time.Hour
	n, err := New(context.Background(), params, WithLogger(quiet), WithDataDir(filepath.Join(dir, "data")),
		WithIdentity(id, "alice"), WithMemberDB(filepath.Join(dir, "member"), bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Close() })
	ctx := context.Background()
	info, _, err := n.CreateGroup(ctx, "bench", nil, Managed(groupstate.DefaultPolicy()))
	if err != nil {
		b.Fatal(err)
	}
	const epochs, perEpoch = 4, 250
	for e := range epochs {
		for i := range perEpoch {
			if _, err := n.Send(ctx, info.ID, fmt.Sprintf("message %d of epoch %d", i, e)); err != nil {
				b.Fatal(err)
			}
		}
		if e < epochs-1 {
			if _, err := n.Rotate(ctx, info.ID); err != nil {
				b.Fatal(err)
			}
		}
	}
	m := n.member
	m.mu.Lock()
	e, err := m.resolve(info.ID)
	m.mu.Unlock()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		m.mu.Lock()
		n.settleLocked(e)
		m.mu.Unlock()
	}
}
