package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"testing"
	"time"

	"github.com/meshnode/meshnode/groupstate"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/keymgmt"
)

// treeCtx is the AAD context of a wrap under a tree's root in a rotation
// (groupstate's package doc, "Key tree": group ID ‖ new epoch ‖ rotate
// event ID ‖ tree ‖ node), as an attacker rebuilds it.
func treeCtx(g groupstate.GroupID, epoch uint64, rot groupstate.EventID, tree keymgmt.TreeID, node uint32) []byte {
	b := append([]byte(nil), g[:]...)
	b = binary.BigEndian.AppendUint64(b, epoch)
	b = append(b, rot[:]...)
	b = append(b, byte(tree))
	return binary.BigEndian.AppendUint32(b, node)
}

// A writer holds its key tree path, so it can wrap epoch secrets of its
// choice under the writers' root every writer can open. Over real libp2p,
// with hand-built key_update payloads: a rotation it signs itself (it is
// no manager), a copy of the manager's genuine rotation with other read
// secrets wrapped in (posted while a writer is offline, so both reach it
// from the host), and malformed parts (a depth of 255, a wrap count of
// 2^32-1). Every member refuses them with a recorded reason, nobody
// leaves the manager's epochs, and the offline writer ends with the
// manager's secrets.
func TestKeyTreeForgedKeyUpdates(t *testing.T) {
	leakCheck(t)
	tp := newTopology(t, "forge", groupstate.DefaultPolicy(), "alice", nil)
	alice, gid := tp.mgr, tp.gid
	bob, carol := tp.join("bob", groupstate.RoleWrite), tp.join("carol", groupstate.RoleWrite)
	mallory, dave := tp.join("mallory", groupstate.RoleWrite), tp.join("dave", groupstate.RoleRead)
	ctx := context.Background()
	everyone := []*person{alice, bob, carol, dave}

	// 1. Mallory's own rotation, secrets she drew wrapped under the
	// writers' root she holds.
	g, c := record(t, mallory, gid)
	if g.Tree == nil || g.Tree.Tree != keymgmt.TreeWriters {
		t.Fatalf("mallory's path: %+v", g.Tree)
	}
	st := c.State()
	fake, err := keymgmt.NewEpochSecrets()
	if err != nil {
		t.Fatal(err)
	}
	ev := &groupstate.Event{GroupID: st.GroupID, Parent: st.Head, Seq: st.Height + 1, Time: time.Now().UnixMilli(),
		Kind: groupstate.EventRotate, Epoch: st.Epoch + 1, WPub: [32]byte(fake.WPub)}
	if err := groupstate.SignEvent(ev, mallory.id); err != nil {
		t.Fatal(err)
	}
	depths := c.TreeDepths()
	root := keymgmt.TreeRoot(depths[keymgmt.TreeWriters])
	w, err := keymgmt.WrapTreeSecrets(&g.Tree.Keys[len(g.Tree.Keys)-1], fake, false,
		treeCtx(st.GroupID, ev.Epoch, ev.ID(), keymgmt.TreeWriters, root))
	if err != nil {
		t.Fatal(err)
	}
	forged := &groupstate.KeyUpdate{Rotate: ev, Part: 0, Parts: 1, Tree: &groupstate.TreeUpdate{
		Mode: groupstate.ModePath, Depths: depths, Scope: groupstate.TreeScope{All: true}, Writers: w}}
	body, err := groupstate.MarshalKeyUpdate(forged)
	if err != nil {
		t.Fatal(err)
	}
	postRaw(t, mallory, gid, st.Epoch, groupstate.KindKeyUpdate, body)
	for _, p := range []*person{bob, carol} {
		tu.Eventually(t, 20*time.Second, func() bool { return rejectedWith(t, p, "manage") || rejectedWith(t, p, "unauthori") },
			"%s refuses mallory's own rotation", p.nick)
	}

	// 2. Carol goes offline; alice rotates; mallory re-wraps the genuine
	// rotation with read secrets of her choice and posts it.
	if _, err := carol.n.CatchUp(ctx, gid); err != nil {
		t.Fatal(err)
	}
	carol.stop()
	res, err := alice.n.Rotate(ctx, gid)
	if err != nil {
		t.Fatal(err)
	}
	waitEpoch(t, mallory, gid, res.Epoch)
	// The old mailbox holds mallory's rotation to the same epoch too.
	var genuine *groupstate.KeyUpdate
	all, _ := keyUpdates(t, alice, tp.host, gid, res.Epoch)
	for _, ku := range all {
		if ku.Rotate.AuthorKey().Equal(alice.id.SigningKey()) {
			genuine = ku
		}
	}
	if genuine == nil || genuine.Mode() != groupstate.ModePath {
		t.Fatalf("alice's rotation is not on the host as a path update: %+v", genuine)
	}
	gm, _ := record(t, mallory, gid)
	real := gm.Secrets[res.Epoch]
	if real == nil || real.Write == nil {
		t.Fatal("mallory did not get the writers' secrets")
	}
	swapped := &keymgmt.EpochSecrets{Write: real.Write, WPub: real.WPub}
	rand.Read(swapped.Read[:])
	if genuine.Tree.Writers, err = keymgmt.WrapTreeSecrets(&gm.Tree.Keys[len(gm.Tree.Keys)-1], swapped, false,
		treeCtx(st.GroupID, res.Epoch, genuine.Rotate.ID(), keymgmt.TreeWriters, keymgmt.TreeRoot(genuine.Tree.Depths[keymgmt.TreeWriters]))); err != nil {
		t.Fatal(err)
	}
	body, err = groupstate.MarshalKeyUpdate(genuine)
	if err != nil {
		t.Fatal(err)
	}
	postRaw(t, mallory, gid, res.Epoch-1, groupstate.KindKeyUpdate, body)

	// 3. Malformed parts: a depth of 255, and a wrap count of 2^32-1.
	good, err := groupstate.MarshalKeyUpdate(genuine)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{malformDepth(t, good), malformWrapCount(t, good)} {
		postRaw(t, mallory, gid, res.Epoch-1, groupstate.KindKeyUpdate, bad)
	}
	tu.Eventually(t, 20*time.Second, func() bool { return rejectedWith(t, bob, "malformed") }, "bob refuses the malformed parts")

	carol.startManaged(nil)
	waitEpoch(t, carol, gid, res.Epoch)
	if _, err := carol.n.CatchUp(ctx, gid); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 20*time.Second, func() bool { return rejectedWith(t, carol, "posted by "+mallory.id.Fingerprint()) },
		"carol refuses mallory's copy of the rotation")
	ga, _ := record(t, alice, gid)
	want := ga.Secrets[res.Epoch]
	for _, p := range everyone {
		gp, _ := record(t, p, gid)
		got := gp.Secrets[res.Epoch]
		if gp.Epoch != res.Epoch || got == nil || got.Read != want.Read || !bytes.Equal(got.WPub, want.WPub) {
			t.Fatalf("%s is at epoch %d with other secrets than the manager's", p.nick, gp.Epoch)
		}
	}
	if _, err := alice.n.Send(ctx, gid, "after the forgeries"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*person{bob, carol, dave} {
		waitText(t, p, gid, "after the forgeries")
	}
}

// treeHeaderAt returns the offset of a version-2 part's mode byte (after
// version, index, count and the rotate event).
func treeHeaderAt(t *testing.T, b []byte) int {
	t.Helper()
	if len(b) < 7 || b[0] != groupstate.KeyUpdateTreeVersion {
		t.Fatalf("not a tree key update: % x", b[:min(len(b), 8)])
	}
	return 7 + int(binary.BigEndian.Uint16(b[5:7]))
}

// malformDepth claims a writers' tree of depth 254.
func malformDepth(t *testing.T, good []byte) []byte {
	b := bytes.Clone(good)
	b[treeHeaderAt(t, b)+1] = 0xff
	return b
}

// malformWrapCount claims 2^32-1 wraps.
func malformWrapCount(t *testing.T, good []byte) []byte {
	b := bytes.Clone(good)
	at := treeHeaderAt(t, b) + 3 + 5
	seeds := int(binary.BigEndian.Uint16(b[at:]))
	if seeds != 0 {
		t.Fatalf("a path update with %d seed seals", seeds)
	}
	at += 2
	if binary.BigEndian.Uint32(b[at:]) != 0 {
		t.Fatal("a path update with leaf seals")
	}
	at += 4
	binary.BigEndian.PutUint32(b[at:], 0xffffffff)
	return b
}
