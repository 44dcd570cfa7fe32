package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/meshnode/meshnode/envelope"
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

// Issue 13, item 5 in an open group: bob sends two messages, leaves (his
// node forgets the group, numbers included), joins again by the invite
// and sends five. Everybody shows all seven: his new membership numbers
// from 1 in a sequence space of its own. What the new spaces must not
// open: carol, an insider holding the keys, re-seals bob's messages of
// both memberships in fresh envelopes, and they are refused as replays;
// and carol's two payloads numbered alike in two memberships of hers are
// two messages that everyone shows (no split to hide), accusing nobody.
func TestRejoinOpenGroupByInvite(t *testing.T) {
	leakCheck(t)
	host := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen})
	alice, bob, carol := newPerson(t, "alice"), newPerson(t, "bob"), newPerson(t, "carol")
	for _, p := range []*person{alice, bob, carol} {
		p.start()
	}
	ctx := context.Background()
	info, invite, err := alice.n.CreateGroup(ctx, "open", []string{hostAddr(host)})
	if err != nil {
		t.Fatal(err)
	}
	gid := info.ID
	for _, p := range []*person{bob, carol} {
		if _, err := p.n.JoinGroup(ctx, invite, p.nick); err != nil {
			t.Fatal(err)
		}
	}
	first := []string{"bob 1", "bob 2"}
	sendAll(t, bob, gid, first...)
	waitShows(t, carol, gid, first...)
	waitShows(t, alice, gid, first...)
	if _, err := bob.n.LeaveGroup(ctx, gid); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.n.JoinGroup(ctx, invite, bob.nick); err != nil {
		t.Fatal(err)
	}
	var second []string
	for i := range 5 {
		second = append(second, fmt.Sprintf("bob again %d", i+1))
	}
	sendAll(t, bob, gid, second...)
	all := append(append([]string(nil), first...), second...)
	for _, p := range []*person{alice, carol, bob} {
		waitShows(t, p, gid, all...)
	}
	noRejectionsOf := func(p *person, who *person) {
		t.Helper()
		rs, err := p.n.GroupRejections(gid, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Author == who.id.Fingerprint() {
				t.Fatalf("%s refused or flagged a message of %s: %+v", p.nick, who.nick, r)
			}
		}
	}
	noRejectionsOf(alice, bob)
	noRejectionsOf(carol, bob)

	// Carol re-seals one message of each of bob's memberships.
	carol.n.member.mu.Lock()
	e := entry(t, carol, gid)
	keys, err := e.keysFor(0)
	carol.n.member.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	var replays []*envelope.Envelope
	for _, txt := range []string{"bob 2", "bob again 3"} {
		var id envelope.ID
		for _, m := range messagesOf(t, carol.n, gid) {
			if m.Text == txt {
				if id, err = envelope.ParseID(m.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
		env, err := carol.n.st.Get(keys.Mailbox, id)
		if err != nil {
			t.Fatalf("%q: %v", txt, err)
		}
		p, err := groupstate.OpenMessage(keys, e.g.ID, 0, env)
		if err != nil {
			t.Fatal(err)
		}
		again, err := groupstate.SealMessage(keys, p)
		if err != nil {
			t.Fatal(err)
		}
		if again.ID() == env.ID() {
			t.Fatal("the copy is the same envelope")
		}
		replays = append(replays, again)
	}
	// And two payloads of hers numbered alike, in two memberships.
	other, err := groupstate.NewOpenMembership()
	if err != nil {
		t.Fatal(err)
	}
	one := craft(t, carol, gid, 0, groupstate.KindText, "carol here", nil)
	two := craft(t, carol, gid, 0, groupstate.KindText, "carol elsewhere", func(p *groupstate.Payload) { p.StateHead = other })
	for _, env := range append(replays, one, two) {
		if _, err := alice.n.Deliver(ctx, env, carol.n.ID()); err != nil {
			t.Fatal(err)
		}
	}
	for _, env := range replays {
		waitRejection(t, alice, gid, env.ID(), RejectionRefused, ReasonReplay)
	}
	waitShows(t, alice, gid, "carol here", "carol elsewhere")
	if got := noticesOf(t, alice, gid, KindEquivocation); len(got) != 0 {
		t.Fatalf("alice shows equivocation notices: %+v", got)
	}
	if got := texts(t, alice.n, gid); countOf2(got, "bob 2") != 1 || countOf2(got, "bob again 3") != 1 {
		t.Fatalf("alice shows %v", got)
	}
}

func countOf2(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// openMembership returns p's membership of an open group (the state head
// of its payloads there).
func openMembership(t *testing.T, p *person, gid string) [32]byte {
	t.Helper()
	p.n.member.mu.Lock()
	defer p.n.member.mu.Unlock()
	ms := entry(t, p, gid).local.Membership
	if len(ms) != 32 {
		t.Fatalf("%s has no membership of %s", p.nick, gid)
	}
	return [32]byte(ms)
}
