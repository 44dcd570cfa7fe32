package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/keymgmt"
)

// threeMembers starts a host and a managed group of alice (manager), bob
// and carol (writers).
func threeMembers(t *testing.T, policy groupstate.Policy) (host *Node, hosts []string, gid string, alice, bob, carol *person) {
	t.Helper()
	tp := newTopology(t, "club", policy, "alice", nil)
	gid, bob, carol = tp.gid, tp.join("bob", groupstate.RoleWrite), tp.join("carol", groupstate.RoleWrite)
	for _, p := range []*person{bob, carol} {
		tu.Eventually(t, 20*time.Second, func() bool { return len(roles(t, p.n, gid)) == 3 }, "%s knows three members", p.nick)
	}
	return tp.host, tp.hosts, gid, tp.mgr, bob, carol
}

// A manager that sends two members different keys (two rotations on one
// head) is detected by both, with evidence.
func TestEquivocatingManagerDetected(t *testing.T) {
	host, _, gid, alice, bob, carol := threeMembers(t, groupstate.DefaultPolicy())
	ctx := context.Background()
	cA, cB := chainCopy(t, alice, gid), chainCopy(t, alice, gid)
	now := time.Now()
	rotA, err := cA.Rotate(alice.id, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	rotB, err := cB.Rotate(alice.id, now.Add(time.Millisecond), 0)
	if err != nil {
		t.Fatal(err)
	}
	post := func(rot *groupstate.Rotation) *envelope.Envelope {
		body, err := groupstate.MarshalKeyUpdate(rot.Parts[0])
		if err != nil {
			t.Fatal(err)
		}
		return sealRaw(t, alice, gid, 0, groupstate.KindKeyUpdate, body)
	}
	envA, envB := post(rotA), post(rotB)
	// Bob is shown rotation A, carol rotation B.
	if _, err := bob.n.Deliver(ctx, envA, host.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.n.Deliver(ctx, envB, host.ID()); err != nil {
		t.Fatal(err)
	}
	waitEpoch(t, bob, gid, 1)
	waitEpoch(t, carol, gid, 1)
	// Both key updates are in the old epoch's mailbox at the host: each
	// member sees the other's.
	mb := envA.Mailbox()
	for _, env := range []*envelope.Envelope{envA, envB} {
		if err := host.RelayMessageToGroup(ctx, mb, env); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []*person{bob, carol} {
		tu.Eventually(t, 20*time.Second, func() bool {
			s, err := p.n.Splits(gid)
			return err == nil && len(s) > 0
		}, "%s detects the split", p.nick)
		s, _ := p.n.Splits(gid)
		if s[0].Evidence == "" || !strings.Contains(s[0].Reason, "fork") {
			t.Fatalf("%s's split report lacks evidence: %+v", p.nick, s[0])
		}
		gi, err := p.n.GroupInfo(gid)
		if err != nil || gi.Splits == 0 {
			t.Fatalf("%s's group info shows no split: %+v %v", p.nick, gi, err)
		}
		msgs, err := p.n.Messages(gid, 0)
		if err != nil {
			t.Fatal(err)
		}
		var warned bool
		for _, m := range msgs {
			warned = warned || (m.Kind == KindSplit && strings.HasPrefix(m.Text, "WARNING"))
		}
		if !warned {
			t.Fatalf("%s's messages carry no split warning", p.nick)
		}
	}
}

// signedEvent builds an event extending p's head, signed by s.
func signedEvent(t *testing.T, p *person, gid string, s groupstate.Signer, tmpl *groupstate.Event) *groupstate.Event {
	t.Helper()
	c := chainCopy(t, p, gid)
	ev := tmpl.Clone()
	st := c.State()
	ev.GroupID, ev.Parent, ev.Seq, ev.Time = st.GroupID, st.Head, st.Height+1, time.Now().UnixMilli()
	if err := groupstate.SignEvent(ev, s); err != nil {
		t.Fatal(err)
	}
	return ev
}

func marshalEvent(t *testing.T, ev *groupstate.Event) []byte {
	t.Helper()
	b, err := groupstate.MarshalEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Events a member without the manage role authors, events with bad
// signatures or unknown parents, replayed key updates and bad key
// packages are refused by everyone with a reason, and change nothing.
func TestBadManagedInputRejected(t *testing.T) {
	leakCheck(t)
	_, _, gid, alice, bob, carol := threeMembers(t, groupstate.DefaultPolicy())
	ctx := context.Background()
	head := headOf(t, alice, gid)
	before := roles(t, alice.n, gid)

	// Bob (write) removes carol.
	ev := signedEvent(t, bob, gid, bob.id, &groupstate.Event{Kind: groupstate.EventRemove, Target: [32]byte(carol.id.SigningKey())})
	postRaw(t, bob, gid, 0, groupstate.KindStateEvent, marshalEvent(t, ev))
	// Bob's event claiming to be alice's: a bad signature.
	forged := ev.Clone()
	forged.Author = [32]byte(alice.id.SigningKey())
	forged.Signature[0] ^= 1
	postRaw(t, bob, gid, 0, groupstate.KindStateEvent, marshalEvent(t, forged))
	// An event of alice's extending a head nobody knows.
	orphan := &groupstate.Event{Kind: groupstate.EventSetPolicy, Policy: groupstate.Policy{History: groupstate.HistoryFromJoin}}
	orphan = signedEvent(t, alice, gid, alice.id, orphan)
	rand.Read(orphan.Parent[:])
	if err := groupstate.SignEvent(orphan, alice.id); err != nil {
		t.Fatal(err)
	}
	postRaw(t, alice, gid, 0, groupstate.KindStateEvent, marshalEvent(t, orphan))

	for _, p := range []*person{alice, bob, carol} {
		if p != bob {
			tu.Eventually(t, 20*time.Second, func() bool { return rejectedWith(t, p, "not authorized") }, "%s refuses bob's remove", p.nick)
		}
		if p != alice {
			tu.Eventually(t, 20*time.Second, func() bool { return rejectedWith(t, p, "unknown parent") }, "%s keeps the orphan aside", p.nick)
		}
	}
	for _, p := range []*person{alice, carol} {
		tu.Eventually(t, 20*time.Second, func() bool { return rejectedWith(t, p, "bad signature") }, "%s refuses the forged event", p.nick)
	}
	for _, p := range []*person{alice, bob, carol} {
		if h := headOf(t, p, gid); h != head {
			t.Fatalf("%s's state head moved to %s", p.nick, h.Short())
		}
		if got := roles(t, p.n, gid); fmt.Sprint(got) != fmt.Sprint(before) {
			t.Fatalf("%s's members changed: %v", p.nick, got)
		}
	}

	// A replay of an old key update: alice posts her first rotation's
	// key update again in epoch 0's mailbox.
	if _, err := alice.n.Rotate(ctx, gid); err != nil {
		t.Fatal(err)
	}
	waitEpoch(t, bob, gid, 1)
	alice.n.member.mu.Lock()
	k0, err := entry(t, alice, gid).keysFor(0)
	alice.n.member.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	pg, err := alice.n.Store().Page(k0.Mailbox, nil, 1000, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	var kuBody []byte
	for _, env := range pg.Envelopes {
		if p, err := groupstate.OpenMessage(k0, groupstate.GroupID(mustGroupID(t, gid)), 0, env); err == nil && p.Kind == groupstate.KindKeyUpdate {
			kuBody = p.Body
		}
	}
	if kuBody == nil {
		t.Fatal("no key update in epoch 0's mailbox")
	}
	head = headOf(t, bob, gid)
	postRaw(t, alice, gid, 0, groupstate.KindKeyUpdate, kuBody)
	tu.Eventually(t, 20*time.Second, func() bool { return rejectedWith(t, bob, "stale key update") }, "bob refuses the replayed key update")
	if h := headOf(t, bob, gid); h != head {
		t.Fatal("a replayed key update moved bob's state")
	}

	// Key packages that do not parse or have expired.
	head = headOf(t, alice, gid)
	for _, bad := range []string{"", "hello", keymgmt.KeyPackagePrefix + "AAAA", "mnkp1.!!!"} {
		if _, err := alice.n.AddMember(ctx, gid, bad, groupstate.RoleWrite); !errors.Is(err, ErrBadKeyPackage) || !errors.Is(err, keymgmt.ErrMalformed) {
			t.Fatalf("key package %q: %v", bad, err)
		}
	}
	dave, err := keymgmt.NewIdentity(keymgmt.SuiteX25519)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := dave.NewKeyPackage("dave", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	text := kp.String()
	typo := []byte(text)
	if typo[len(typo)/2] == 'A' {
		typo[len(typo)/2] = 'B'
	} else {
		typo[len(typo)/2] = 'A'
	}
	if _, err := alice.n.AddMember(ctx, gid, string(typo), groupstate.RoleWrite); !errors.Is(err, keymgmt.ErrChecksum) {
		t.Fatalf("mistyped key package: %v", err)
	}
	tu.Eventually(t, 5*time.Second, func() bool { return !time.Now().Before(kp.Expires) }, "the key package expires")
	if _, err := alice.n.AddMember(ctx, gid, text, groupstate.RoleWrite); !errors.Is(err, keymgmt.ErrExpired) {
		t.Fatalf("expired key package: %v", err)
	}
	if h := headOf(t, alice, gid); h != head {
		t.Fatal("a refused key package changed the state")
	}
	if _, err := bob.n.RemoveMember(ctx, gid, carol.id.Fingerprint()); !errors.Is(err, ErrNotManager) {
		t.Fatalf("a writer removes a member: %v", err)
	}
}

func mustGroupID(t *testing.T, s string) groupstate.GroupID {
	t.Helper()
	g, err := groupstate.ParseGroupID(s)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// Under from-join history a newcomer reads nothing from before it joined
// (the add rotated first); under shared history it does
// (TestManagedGroupAddAndMembers).
func TestFromJoinHistory(t *testing.T) {
	tp := newTopology(t, "private", groupstate.Policy{History: groupstate.HistoryFromJoin}, "alice", nil)
	alice, dave, gid := tp.mgr, tp.person("dave", nil), tp.gid
	ctx := context.Background()
	if _, err := alice.n.Send(ctx, gid, "before dave"); err != nil {
		t.Fatal(err)
	}
	res := tp.add(dave, groupstate.RoleWrite)
	if !res.Rotated || res.Epoch != 1 {
		t.Fatalf("add under from-join did not rotate: %+v", res)
	}
	if _, err := alice.n.Send(ctx, gid, "after dave"); err != nil {
		t.Fatal(err)
	}
	waitText(t, dave, gid, "after dave")
	if _, err := dave.n.CatchUp(ctx, gid); err != nil {
		t.Fatal(err)
	}
	if contains(texts(t, dave.n, gid), "before dave") {
		t.Fatal("a from-join newcomer reads what was said before it joined")
	}
	dave.n.member.mu.Lock()
	g := entry(t, dave, gid).g
	_, has0 := g.Secrets[0]
	dave.n.member.mu.Unlock()
	if has0 || g.History != groupstate.HistoryFromJoin {
		t.Fatalf("from-join newcomer holds epoch 0: %v, history %s", has0, g.History)
	}
}
