package node

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	tu "github.com/meshnode/meshnode/internal/testutil"
)

// craftRef has p build a reference payload by hand, as a member that
// skips its own node's checks would, and takes its sequence number.
func craftRef(t *testing.T, p *person, gid string, r *groupstate.Ref) *envelope.Envelope {
	t.Helper()
	body, err := groupstate.MarshalRef(r)
	if err != nil {
		t.Fatal(err)
	}
	env := craft(t, p, gid, 0, r.Kind, string(body), nil)
	p.n.member.mu.Lock()
	entry(t, p, gid).local.NextSeq++
	p.n.member.mu.Unlock()
	return env
}

// craftText has p build a text payload by hand (not recorded or sent by
// its node) and takes its sequence number.
func craftText(t *testing.T, p *person, gid, text string) *envelope.Envelope {
	t.Helper()
	env := craft(t, p, gid, 0, groupstate.KindText, text, nil)
	p.n.member.mu.Lock()
	entry(t, p, gid).local.NextSeq++
	p.n.member.mu.Unlock()
	return env
}

// messageByID returns p's listed message id (nil if not listed).
func messageByID(t *testing.T, p *person, gid, id string) *Message {
	t.Helper()
	for _, m := range messagesOf(t, p.n, gid) {
		if m.ID == id {
			return &m
		}
	}
	return nil
}

func mustID(t *testing.T, s string) envelope.ID {
	t.Helper()
	id, err := envelope.ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func reactionsOf(m *Message) map[string]int {
	out := map[string]int{}
	if m != nil && m.View != nil {
		for _, r := range m.View.Reactions {
			out[r.Emoji] = r.Count
		}
	}
	return out
}

func refusedWith(t *testing.T, p *person, gid, reason string, env *envelope.Envelope) bool {
	t.Helper()
	rs, err := p.n.GroupRejections(gid, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Envelope == env.ID() && r.Reason == reason {
			return true
		}
	}
	return false
}

// Issue 18, item 1, in an open group over real libp2p: a reply quotes
// what it answers, reactions toggle and count per emoji, an edit by the
// author shows with its history, a delete leaves a tombstone; carol,
// offline through all of it, catches up to the same view. Bob's
// hand-built edit and delete of alice's message are refused and logged by
// every member, whether they arrive after the message or before it.
func TestRefsOpenGroup(t *testing.T) {
	leakCheck(t)
	host := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen})
	alice, bob, carol := newPerson(t, "alice"), newPerson(t, "bob"), newPerson(t, "carol")
	alice.start()
	bob.start()
	ctx := context.Background()
	info, invite, err := alice.n.CreateGroup(ctx, "refs", []string{hostAddr(host)})
	if err != nil {
		t.Fatal(err)
	}
	gid := info.ID
	if _, err := bob.n.JoinGroup(ctx, invite, ""); err != nil {
		t.Fatal(err)
	}
	res, err := alice.n.Send(ctx, gid, "the meeting is on Tuesday")
	if err != nil {
		t.Fatal(err)
	}
	orig := res.ID
	tu.Eventually(t, 20*time.Second, func() bool { return messageByID(t, bob, gid, orig) != nil }, "bob has alice's message")

	// Bob replies, with an ID prefix; reacts 👍 twice (toggle: gone),
	// then 👍 and 🎉.
	reply, err := bob.n.Reply(ctx, gid, orig[:10], "Tuesday works")
	if err != nil {
		t.Fatal(err)
	}
	for _, emoji := range []string{"👍", "👍", "👍", "🎉"} {
		if _, _, err := bob.n.React(ctx, orig, emoji, ReactToggle); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := alice.n.React(ctx, orig, "👍", ReactAdd); err != nil {
		t.Fatal(err)
	}
	// Bob's node refuses to edit or delete alice's message.
	if _, _, err := bob.n.Edit(ctx, orig, "the meeting is cancelled"); !errors.Is(err, groupstate.ErrNotAuthor) {
		t.Fatalf("bob's edit: %v", err)
	}
	if _, _, err := bob.n.Delete(ctx, orig); !errors.Is(err, groupstate.ErrNotAuthor) {
		t.Fatalf("bob's delete: %v", err)
	}
	// A reaction to an unknown ID, a reply to a message of another
	// group: clear errors.
	if _, _, err := bob.n.React(ctx, "0123456789abcdef", "👍", ReactToggle); !errors.Is(err, ErrUnknownMessage) {
		t.Fatalf("reaction to an unknown message: %v", err)
	}
	other, _, err := bob.n.CreateGroup(ctx, "other", []string{hostAddr(host)})
	if err != nil {
		t.Fatal(err)
	}
	elsewhere, err := bob.n.Send(ctx, other.ID, "in another group")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.n.Reply(ctx, gid, elsewhere.ID, "cross-group"); !errors.Is(err, ErrUnknownMessage) {
		t.Fatalf("reply to another group's message: %v", err)
	}
	// By hand, bob's node's checks skipped: an edit and a delete of
	// alice's message, and a reply to his other group's message.
	forgedEdit := craftRef(t, bob, gid, &groupstate.Ref{Kind: groupstate.KindEdit, Target: mustID(t, orig), Text: "the meeting is cancelled"})
	forgedDel := craftRef(t, bob, gid, &groupstate.Ref{Kind: groupstate.KindDelete, Target: mustID(t, orig)})
	crossReply := craftRef(t, bob, gid, &groupstate.Ref{Kind: groupstate.KindReply, Target: mustID(t, elsewhere.ID), Text: "see above"})
	for _, env := range []*envelope.Envelope{forgedEdit, forgedDel, crossReply} {
		if _, err := host.Deliver(ctx, env, bob.n.ID()); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.n.Deliver(ctx, env, bob.n.ID()); err != nil {
			t.Fatal(err)
		}
	}
	// Alice edits twice.
	if _, _, err := alice.n.Edit(ctx, orig[:12], "the meeting is on Wednesday"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := alice.n.Edit(ctx, orig, "the meeting is on Thursday"); err != nil {
		t.Fatal(err)
	}

	check := func(p *person) {
		t.Helper()
		tu.Eventually(t, 20*time.Second, func() bool {
			m := messageByID(t, p, gid, orig)
			r := reactionsOf(m)
			return m != nil && m.Text == "the meeting is on Thursday" && m.View != nil && m.View.Edited && r["👍"] == 2 && r["🎉"] == 1 && len(r) == 2
		}, "%s sees the edited message with its reactions", p.nick)
		tu.Eventually(t, 20*time.Second, func() bool {
			return refusedWith(t, p, gid, ReasonNotAuthor, forgedEdit) && refusedWith(t, p, gid, ReasonNotAuthor, forgedDel)
		}, "%s refuses bob's edit and delete of alice's message", p.nick)
		r := messageByID(t, p, gid, reply.ID)
		if r == nil || r.Kind != "reply" || r.ReplyTo != orig || r.View == nil || r.View.Quote == nil ||
			r.View.Quote.Text != "the meeting is on Thursday" || r.View.Quote.Nick != "alice" {
			t.Fatalf("%s's reply: %+v", p.nick, r)
		}
		x := messageByID(t, p, gid, crossReply.ID().String())
		if x == nil || x.View == nil || x.View.Quote == nil || !x.View.Quote.Missing || x.View.Quote.Text != "" {
			t.Fatalf("%s's cross-group reply shows %+v", p.nick, x)
		}
		for _, m := range messagesOf(t, p.n, gid) {
			if m.Text == "the meeting is cancelled" || m.Text == "in another group" || m.Kind == "edit" || m.Kind == "delete" || m.Kind == "reaction" {
				t.Fatalf("%s shows %+v", p.nick, m)
			}
		}
		full, err := p.n.Message(orig[:8])
		if err != nil {
			t.Fatal(err)
		}
		var versions []string
		for _, e := range full.View.Edits {
			versions = append(versions, e.Text)
		}
		if !slices.Equal(versions, []string{"the meeting is on Tuesday", "the meeting is on Wednesday", "the meeting is on Thursday"}) {
			t.Fatalf("%s's edit history: %q", p.nick, versions)
		}
	}
	check(alice)
	check(bob)

	// Carol joins later and catches up from the host: the same view,
	// the same refusals.
	carol.start()
	if _, err := carol.n.JoinGroup(ctx, invite, ""); err != nil {
		t.Fatal(err)
	}
	check(carol)

	// Alice deletes her message: a tombstone everywhere, the text gone
	// from every member's database, the reply's quote says so.
	if _, _, err := alice.n.Delete(ctx, orig); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*person{alice, bob, carol} {
		tu.Eventually(t, 20*time.Second, func() bool {
			m := messageByID(t, p, gid, orig)
			return m != nil && m.Text == "" && m.View != nil && m.View.Deleted && m.View.DeletedBy == alice.id.Fingerprint()
		}, "%s shows alice's message deleted", p.nick)
		r := messageByID(t, p, gid, reply.ID)
		if r.View == nil || r.View.Quote == nil || !r.View.Quote.Deleted || r.View.Quote.Text != "" {
			t.Fatalf("%s's quote of a deleted message: %+v", p.nick, r.View.Quote)
		}
		full, err := p.n.Message(orig)
		if err != nil || full.Text != "" || len(full.View.Edits) != 0 {
			t.Fatalf("%s keeps the deleted message's text: %+v %v", p.nick, full, err)
		}
		if _, _, err := p.n.React(ctx, orig, "👍", ReactAdd); !errors.Is(err, ErrUnknownMessage) && p != alice {
			t.Fatalf("%s reacts to a deleted message: %v", p.nick, err)
		}
	}
}

// A forged edit and delete that reach a member before the message they
// name are kept aside, then refused and logged when it arrives; an
// author's own delete that arrives first applies when it does.
func TestRefsBeforeTarget(t *testing.T) {
	leakCheck(t)
	alice, bob, carol := newPerson(t, "alice"), newPerson(t, "bob"), newPerson(t, "carol")
	alice.start()
	bob.start()
	carol.start()
	ctx := context.Background()
	info, invite, err := alice.n.CreateGroup(ctx, "early", nil)
	if err != nil {
		t.Fatal(err)
	}
	gid := info.ID
	for _, p := range []*person{bob, carol} {
		if _, err := p.n.JoinGroup(ctx, invite, ""); err != nil {
			t.Fatal(err)
		}
	}
	// Alice's messages, sealed but not delivered: bob learns their IDs
	// (as a member who saw them elsewhere would).
	first := craftText(t, alice, gid, "keep me")
	second := craftText(t, alice, gid, "delete me")
	forgedEdit := craftRef(t, bob, gid, &groupstate.Ref{Kind: groupstate.KindEdit, Target: first.ID(), Text: "forged"})
	forgedDel := craftRef(t, bob, gid, &groupstate.Ref{Kind: groupstate.KindDelete, Target: first.ID()})
	ownDel := craftRef(t, alice, gid, &groupstate.Ref{Kind: groupstate.KindDelete, Target: second.ID()})
	for _, env := range []*envelope.Envelope{forgedEdit, forgedDel, ownDel, first, second} {
		if _, err := carol.n.Deliver(ctx, env, alice.n.ID()); err != nil {
			t.Fatal(err)
		}
		// One at a time, so the references are processed first.
		id := env.ID()
		tu.Eventually(t, 20*time.Second, func() bool {
			carol.n.member.mu.Lock()
			defer carol.n.member.mu.Unlock()
			e := entry(t, carol, gid)
			seen, err := carol.n.member.db.get(gkey(pfxSeen, e.g.ID, id[:]))
			return err == nil && seen != nil
		}, "carol processed %s", id.Short())
	}
	m := messageByID(t, carol, gid, first.ID().String())
	if m == nil || m.Text != "keep me" || (m.View != nil && (m.View.Deleted || m.View.Edited)) {
		t.Fatalf("carol shows %+v", m)
	}
	if !refusedWith(t, carol, gid, ReasonNotAuthor, forgedEdit) || !refusedWith(t, carol, gid, ReasonNotAuthor, forgedDel) {
		t.Fatal("carol did not log the refusal of bob's early edit and delete")
	}
	d := messageByID(t, carol, gid, second.ID().String())
	if d == nil || d.Text != "" || d.View == nil || !d.View.Deleted {
		t.Fatalf("alice's early delete: %+v", d)
	}
}

// In a managed group a manager deletes a member's message; a member
// cannot delete another's, even by hand.
func TestRefsManagedDelete(t *testing.T) {
	leakCheck(t)
	tp := newTopology(t, "modded", groupstate.DefaultPolicy(), "alice", nil)
	bob := tp.join("bob", groupstate.RoleWrite)
	carol := tp.join("carol", groupstate.RoleWrite)
	gid := tp.gid
	ctx := context.Background()
	spam, err := bob.n.Send(ctx, gid, "buy cheap watches")
	if err != nil {
		t.Fatal(err)
	}
	hello, err := carol.n.Send(ctx, gid, "hello all")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*person{tp.mgr, bob, carol} {
		waitText(t, p, gid, "buy cheap watches")
		waitText(t, p, gid, "hello all")
	}
	if _, _, err := bob.n.Delete(ctx, hello.ID); !errors.Is(err, groupstate.ErrNotAuthor) {
		t.Fatalf("bob deletes carol's message: %v", err)
	}
	forged := craftRef(t, bob, gid, &groupstate.Ref{Kind: groupstate.KindDelete, Target: mustID(t, hello.ID)})
	for _, p := range []*person{tp.mgr, carol} {
		if _, err := p.n.Deliver(ctx, forged, bob.n.ID()); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := tp.mgr.n.Delete(ctx, spam.ID); err != nil {
		t.Fatalf("the manager's delete: %v", err)
	}
	for _, p := range []*person{tp.mgr, bob, carol} {
		tu.Eventually(t, 20*time.Second, func() bool {
			m := messageByID(t, p, gid, spam.ID)
			return m != nil && m.View != nil && m.View.Deleted && m.View.DeletedBy == tp.mgr.id.Fingerprint() && m.Text == ""
		}, "%s shows bob's spam deleted by the manager", p.nick)
	}
	for _, p := range []*person{tp.mgr, carol} {
		tu.Eventually(t, 20*time.Second, func() bool { return refusedWith(t, p, gid, ReasonNotAuthor, forged) }, "%s refuses bob's forged delete", p.nick)
		if m := messageByID(t, p, gid, hello.ID); m == nil || m.Text != "hello all" || m.View != nil {
			t.Fatalf("%s shows carol's message as %+v", p.nick, m)
		}
	}
}

func FuzzDecodeRefRecords(f *testing.F) {
	f.Add(refTargetRec{author: [32]byte{1}, kind: groupstate.KindText, order: 5, seq: 2}.marshal())
	for _, r := range []groupstate.Ref{
		{Kind: groupstate.KindEdit, Target: envelope.ID{1}, Text: "x"},
		{Kind: groupstate.KindReaction, Target: envelope.ID{1}, Emoji: "👍", Add: true},
		{Kind: groupstate.KindDelete, Target: envelope.ID{1}},
	} {
		b, err := encodeRefAction(&groupstate.RefAction{Ref: r, Actor: [32]byte{2}, Manager: true, Order: 7, Seq: 3}, 4)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeRefTarget(b); err == nil {
			if got, err := decodeRefTarget(r.marshal()); err != nil || got != r {
				t.Fatalf("target record round trip: %+v %v", got, err)
			}
		}
		a, epoch, err := decodeRefAction(envelope.ID{9}, b)
		if err != nil {
			return
		}
		out, err := encodeRefAction(a, epoch)
		if err != nil || string(out) != string(b) {
			t.Fatalf("reference record does not round-trip: %v", err)
		}
	})
}
