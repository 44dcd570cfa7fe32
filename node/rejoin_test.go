package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/meshnode/meshnode/groupstate"
	tu "github.com/meshnode/meshnode/internal/testutil"
)

// sendAll has p send texts, each stored by a host.
func sendAll(t *testing.T, p *person, gid string, texts ...string) {
	t.Helper()
	for _, txt := range texts {
		res, err := p.n.Send(context.Background(), gid, txt)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.StoredBy) == 0 {
			t.Fatalf("%q stored by no host: %+v", txt, res)
		}
	}
}

func waitShows(t *testing.T, p *person, gid string, want ...string) {
	t.Helper()
	tu.Eventually(t, 20*time.Second, func() bool {
		got := texts(t, p.n, gid)
		for _, w := range want {
			if !contains(got, w) {
				return false
			}
		}
		return true
	}, "%s shows %d texts", p.nick, len(want))
}

// Issue 13, item 5: in a from-join group bob sends two messages, leaves,
// is added again with a new key package and sends five. Everybody shows
// all seven: his second membership numbers its messages from 1 again in a
// sequence space of its own, and nothing is taken for a replay.
func TestRejoinAfterLeaving(t *testing.T) {
	leakCheck(t)
	tp := newTopology(t, "private", groupstate.Policy{History: groupstate.HistoryFromJoin}, "alice", nil)
	alice, carol, gid := tp.mgr, tp.join("carol", groupstate.RoleWrite), tp.gid
	bob := tp.join("bob", groupstate.RoleWrite)
	ctx := context.Background()
	first := []string{"bob 1", "bob 2"}
	sendAll(t, bob, gid, first...)
	waitShows(t, carol, gid, first...)
	if _, err := bob.n.LeaveGroup(ctx, gid); err != nil {
		t.Fatal(err)
	}
	waitRoles(t, carol, gid, map[string]string{"bob": ""})
	waitRoles(t, alice, gid, map[string]string{"bob": ""})
	tp.add(bob, groupstate.RoleWrite)
	var second []string
	for i := range 5 {
		second = append(second, fmt.Sprintf("bob again %d", i+1))
	}
	sendAll(t, bob, gid, second...)
	for _, p := range []*person{alice, carol} {
		waitShows(t, p, gid, append(first, second...)...)
		rs, err := p.n.GroupRejections(gid, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Author == bob.id.Fingerprint() {
				t.Fatalf("%s refused a rejoiner's message: %+v", p.nick, r)
			}
		}
	}
}

// A member removed by the manager keeps the group (read-only, marked
// removed); added again, its node merges the welcome, can write again and
// numbers its messages from 1 in its new membership.
func TestRejoinAfterRemoval(t *testing.T) {
	leakCheck(t)
	tp := newTopology(t, "club", groupstate.DefaultPolicy(), "alice", nil)
	alice, bob, carol, gid := tp.mgr, tp.join("bob", groupstate.RoleWrite), tp.join("carol", groupstate.RoleWrite), tp.gid
	ctx := context.Background()
	sendAll(t, bob, gid, "before", "the removal")
	waitShows(t, carol, gid, "before", "the removal")
	if _, err := alice.n.RemoveMember(ctx, gid, bob.id.Fingerprint()); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 20*time.Second, func() bool {
		gi, err := bob.n.GroupInfo(gid)
		return err == nil && gi.Removed
	}, "bob learns he was removed")
	tp.add(bob, groupstate.RoleWrite)
	tu.Eventually(t, 20*time.Second, func() bool {
		gi, err := bob.n.GroupInfo(gid)
		return err == nil && !gi.Removed && gi.CanWrite && gi.Role == "write"
	}, "bob is a writer again")
	sendAll(t, bob, gid, "back 1", "back 2", "back 3")
	for _, p := range []*person{alice, carol} {
		waitShows(t, p, gid, "before", "the removal", "back 1", "back 2", "back 3")
	}
	bob.n.member.mu.Lock()
	next := entry(t, bob, gid).local.NextSeq
	bob.n.member.mu.Unlock()
	if next > 6 { // profile, three texts, maybe nothing else
		t.Fatalf("bob's second membership is at sequence %d", next)
	}
}
