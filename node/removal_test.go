package node

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	tu "github.com/meshnode/meshnode/internal/testutil"
)

// craft builds, signs and seals a payload as p's node holds the group
// (its identity, its epoch keys, its chain's head of the epoch), changed
// by edit, without recording it: a hand-built payload of a member who
// holds the keys. The envelope is not sent.
func craft(t *testing.T, p *person, gid string, epoch uint64, kind groupstate.Kind, body string, edit func(*groupstate.Payload)) *envelope.Envelope {
	t.Helper()
	m := p.n.member
	m.mu.Lock()
	defer m.mu.Unlock()
	e := entry(t, p, gid)
	pl := &groupstate.Payload{GroupID: e.g.ID, Epoch: epoch, Seq: e.local.NextSeq, Sent: time.Now().UnixMilli(),
		Kind: kind, Nick: e.local.Nick, Body: []byte(body), Parents: slices.Clone(e.local.Heads)}
	if e.chain != nil {
		pl.StateHead, _ = e.chain.HeadOf(epoch)
	} else if len(e.local.Membership) == 32 {
		pl.StateHead = [32]byte(e.local.Membership)
	}
	if edit != nil {
		edit(pl)
	}
	if err := groupstate.SignPayloadAs(pl, m.id); err != nil {
		t.Fatal(err)
	}
	keys, err := e.keysFor(epoch)
	if err != nil {
		t.Fatal(err)
	}
	env, err := groupstate.SealMessage(keys, pl)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// sealText has p's node seal and record a text message as Send does,
// without delivering it anywhere (a message in flight).
func sealText(t *testing.T, p *person, gid, text string) *envelope.Envelope {
	t.Helper()
	m := p.n.member
	m.mu.Lock()
	defer m.mu.Unlock()
	e := entry(t, p, gid)
	now := time.Now()
	pl, err := m.buildPayload(e, groupstate.KindText, []byte(text), now)
	if err != nil {
		t.Fatal(err)
	}
	msg := m.newMessage(e, pl, envelope.ID{}, now)
	msg.Text = text
	env, err := m.sealOwn(e, pl, msg)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// relayTo sends an envelope to a node by the relay protocol, as any peer
// of the mailbox can.
func relayTo(t *testing.T, from *person, to *Node, env *envelope.Envelope) {
	t.Helper()
	connect(t, from.n, to)
	if err := from.n.Remote(to.ID()).RelayMessageToGroup(context.Background(), env.Mailbox(), env); err != nil {
		t.Fatal(err)
	}
}

// rejection finds a group's log entry of an envelope of a kind.
func rejection(t *testing.T, p *person, gid string, id envelope.ID, kind RejectionKind) (GroupRejection, bool) {
	t.Helper()
	rs, err := p.n.GroupRejections(gid, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Envelope == id && r.Kind == kind {
			return r, true
		}
	}
	return GroupRejection{}, false
}

func waitRejection(t *testing.T, p *person, gid string, id envelope.ID, kind RejectionKind, reason string) GroupRejection {
	t.Helper()
	var got GroupRejection
	tu.Eventually(t, 20*time.Second, func() bool {
		r, ok := rejection(t, p, gid, id, kind)
		got = r
		return ok && r.Reason == reason
	}, "%s logs envelope %s as %s (%s)", p.nick, id.Short(), kind, reason)
	return got
}

func shownIDs(t *testing.T, p *person, gid string) map[string]Message {
	t.Helper()
	out := map[string]Message{}
	for _, m := range messagesOf(t, p.n, gid) {
		out[m.ID] = m
	}
	return out
}

// Issue 13, item 1: a removed member back-fills. Before its removal carol
// posts sequence 40, skipping numbers; after the removal and rotation she
// posts 7 and 8 (8 back-dated an hour) to the old epoch's mailbox, naming
// the head from before her removal, straight to every node. The removal
// names what the manager had seen (1, 2 and 40), so both are refused —
// by the others and by a newcomer who reads the old epoch — and logged
// with carol as their author; what the manager saw stays shown.
func TestRemovedMemberCannotBackfill(t *testing.T) {
	leakCheck(t)
	tp := newTopology(t, "club", groupstate.DefaultPolicy(), "alice", nil)
	alice, bob, carol, gid, host := tp.mgr, tp.join("bob", groupstate.RoleWrite), tp.join("carol", groupstate.RoleWrite), tp.gid, tp.host
	ctx := context.Background()
	if _, err := carol.n.Send(ctx, gid, "carol's second"); err != nil {
		t.Fatal(err)
	}
	skip := craft(t, carol, gid, 0, groupstate.KindText, "carol's fortieth", func(p *groupstate.Payload) { p.Seq = 40 })
	relayTo(t, carol, host, skip)
	for _, p := range []*person{alice, bob} {
		waitText(t, p, gid, "carol's fortieth")
	}
	preRemoval := headOf(t, carol, gid)
	res, err := alice.n.RemoveMember(ctx, gid, carol.id.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	waitEpoch(t, bob, gid, res.Epoch)
	removal := chainCopy(t, alice, gid).Events()
	var seen *groupstate.SeenSet
	for _, ev := range removal {
		if ev.Kind == groupstate.EventRemove {
			seen = ev.Seen
		}
	}
	if seen == nil || !seen.Contains(40) || seen.Contains(7) || seen.Contains(41) {
		t.Fatalf("the removal's seen set is %v", seen)
	}

	at := func(p *groupstate.Payload) { p.StateHead = preRemoval }
	seven := craft(t, carol, gid, 0, groupstate.KindText, "carol back-fills 7", func(p *groupstate.Payload) { at(p); p.Seq = 7 })
	eight := craft(t, carol, gid, 0, groupstate.KindText, "carol back-fills 8", func(p *groupstate.Payload) {
		at(p)
		p.Seq, p.Sent = 8, time.Now().Add(-time.Hour).UnixMilli()
	})
	for _, env := range []*envelope.Envelope{seven, eight} {
		for _, to := range []*Node{host, alice.n, bob.n} {
			relayTo(t, carol, to, env)
		}
	}
	dave := tp.join("dave", groupstate.RoleWrite)
	waitText(t, dave, gid, "carol's fortieth")
	for _, p := range []*person{alice, bob, dave} {
		for _, env := range []*envelope.Envelope{seven, eight} {
			r := waitRejection(t, p, gid, env.ID(), RejectionRefused, ReasonAfterRemoval)
			if r.Author != carol.id.Fingerprint() || r.Epoch != 0 {
				t.Fatalf("%s logs %+v", p.nick, r)
			}
		}
		for _, txt := range texts(t, p.n, gid) {
			if txt == "carol back-fills 7" || txt == "carol back-fills 8" {
				t.Fatalf("%s shows %q", p.nick, txt)
			}
		}
		if !contains(texts(t, p.n, gid), "carol's second") {
			t.Fatalf("%s lost what carol said while a member", p.nick)
		}
	}
	if got := counterValue(t, bob.n.metrics.rejectedMsgs.WithLabelValues(ReasonAfterRemoval)); got < 2 {
		t.Fatalf("bob's metric counts %v refusals after removal", got)
	}
}

// The honest counterpart: bob's message is in flight when alice removes
// him. Carol, who showed it before she learnt of the removal, keeps it
// with a mark; alice, who learns of it afterwards, refuses it and logs
// it; bob's own node marks it not delivered and logs it for him. Nothing
// is silent.
func TestInFlightAtRemoval(t *testing.T) {
	leakCheck(t)
	tp := newTopology(t, "club", groupstate.DefaultPolicy(), "alice", nil)
	alice, bob, carol, gid, host := tp.mgr, tp.join("bob", groupstate.RoleWrite), tp.join("carol", groupstate.RoleWrite), tp.gid, tp.host
	ctx := context.Background()
	// Bob's node seals and records the message; it reaches carol only.
	env := sealText(t, bob, gid, "bob, in flight")
	if _, err := carol.n.Deliver(ctx, env, bob.n.ID()); err != nil {
		t.Fatal(err)
	}
	waitText(t, carol, gid, "bob, in flight")
	if _, err := alice.n.RemoveMember(ctx, gid, bob.id.Fingerprint()); err != nil {
		t.Fatal(err)
	}
	// Then it reaches the host, and from there alice.
	relayTo(t, bob, host, env)
	waitRejection(t, alice, gid, env.ID(), RejectionRefused, ReasonAfterRemoval)
	if contains(texts(t, alice.n, gid), "bob, in flight") {
		t.Fatal("alice shows a message her removal of bob had not seen")
	}
	waitRejection(t, carol, gid, env.ID(), RejectionFlagged, flagUnseenByRemover)
	if m := shownIDs(t, carol, gid)[env.ID().String()]; !slices.Contains(m.Flags, flagUnseenByRemover) {
		t.Fatalf("carol's copy is not marked: %+v", m)
	}
	r := waitRejection(t, bob, gid, env.ID(), RejectionFlagged, flagNotDelivered)
	if r.Author != bob.id.Fingerprint() {
		t.Fatalf("bob's log: %+v", r)
	}
	if m := shownIDs(t, bob, gid)[env.ID().String()]; !slices.Contains(m.Flags, flagNotDelivered) {
		t.Fatalf("bob's own copy is not marked: %+v", m)
	}
}

// Issue 13, item 6: a node that knows it was removed refuses to send in
// the group with a clear error, and lists the group as removed and
// read-only; what it crafts anyway is refused by the others and logged.
func TestRemovedSenderIsTold(t *testing.T) {
	leakCheck(t)
	_, _, gid, alice, bob, carol := threeMembers(t, groupstate.DefaultPolicy())
	ctx := context.Background()
	if _, err := alice.n.RemoveMember(ctx, gid, carol.id.Fingerprint()); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 20*time.Second, func() bool {
		gi, err := carol.n.GroupInfo(gid)
		return err == nil && gi.Removed
	}, "carol learns she was removed")
	gi, err := carol.n.GroupInfo(gid)
	if err != nil || gi.CanWrite {
		t.Fatalf("carol's group info after her removal: %+v %v", gi, err)
	}
	if _, err := carol.n.Send(ctx, gid, "am I still here?"); !errors.Is(err, ErrRemoved) {
		t.Fatalf("a removed member sends: %v, want ErrRemoved", err)
	}
	if _, err := carol.n.SendDirect(ctx, gid, bob.id.Fingerprint(), "psst"); !errors.Is(err, ErrRemoved) {
		t.Fatalf("a removed member sends a direct: %v, want ErrRemoved", err)
	}
	// The same, hand-built under the head her node holds: refused.
	env := craft(t, carol, gid, 0, groupstate.KindText, "am I still here?", nil)
	relayTo(t, carol, bob.n, env)
	r := waitRejection(t, bob, gid, env.ID(), RejectionRefused, ReasonNotMember)
	if r.Author != carol.id.Fingerprint() {
		t.Fatalf("bob's log: %+v", r)
	}
}

// A demotion from write is exact too: bob, made a reader, still holds the
// old epoch's write key; what he posts under the head from before his
// demotion with a number alice had not seen is refused, and his node
// refuses to send.
func TestDemotedMemberCannotBackfill(t *testing.T) {
	leakCheck(t)
	host, _, gid, alice, bob, carol := threeMembers(t, groupstate.DefaultPolicy())
	ctx := context.Background()
	sendAll(t, bob, gid, "bob writes")
	waitText(t, alice, gid, "bob writes")
	pre := headOf(t, bob, gid)
	res, err := alice.n.SetRole(ctx, gid, bob.id.Fingerprint(), groupstate.RoleRead)
	if err != nil || !res.Rotated {
		t.Fatalf("demotion: %+v %v", res, err)
	}
	waitRoles(t, bob, gid, map[string]string{"bob": "read"})
	if _, err := bob.n.Send(ctx, gid, "still writing?"); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("a demoted member sends: %v, want ErrReadOnly", err)
	}
	env := craft(t, bob, gid, 0, groupstate.KindText, "bob after his demotion", func(p *groupstate.Payload) {
		p.StateHead = pre
		p.Seq += 5
	})
	relayTo(t, bob, host, env)
	for _, p := range []*person{alice, carol} {
		r := waitRejection(t, p, gid, env.ID(), RejectionRefused, ReasonAfterRemoval)
		if r.Author != bob.id.Fingerprint() || !strings.Contains(r.Detail, "made a reader") {
			t.Fatalf("%s logs %+v", p.nick, r)
		}
		if contains(texts(t, p.n, gid), "bob after his demotion") {
			t.Fatalf("%s shows it", p.nick)
		}
	}
}
