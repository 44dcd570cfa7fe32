package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/keymgmt"
	"golang.org/x/crypto/chacha20poly1305"
)

// noMemberSync leaves a node's mailboxes unsynced but by Trigger: no
// member partners, no periodic sync. Evidence then travels only the way
// the node passes it on (evidence.go), which is what these tests check.
func noMemberSync(p *Params) {
	p.MemberSyncPeers = 0
	p.Sync.Interval = time.Hour
}

// fourMembers is threeMembers with dave, a fourth writer, all without
// member sync (noMemberSync).
func fourMembers(t *testing.T) (host *Node, gid string, alice, bob, carol, dave *person) {
	t.Helper()
	host = startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen, tweak: noMemberSync})
	tp := newTopologyOn(t, host, "club", groupstate.DefaultPolicy(), "alice", noMemberSync)
	join := func(nick string) *person {
		p := tp.person(nick, noMemberSync)
		tp.add(p, groupstate.RoleWrite)
		return p
	}
	bob, carol, dave = join("bob"), join("carol"), join("dave")
	for _, p := range []*person{bob, carol, dave} {
		tu.Eventually(t, 20*time.Second, func() bool { return len(roles(t, p.n, tp.gid)) == 4 }, "%s knows four members", p.nick)
	}
	return host, tp.gid, tp.mgr, bob, carol, dave
}

// notices returns p's messages of a kind.
func noticesOf(t *testing.T, p *person, gid, kind string) []Message {
	t.Helper()
	var out []Message
	for _, m := range messagesOf(t, p.n, gid) {
		if m.Kind == kind {
			out = append(out, m)
		}
	}
	return out
}

// Issue 13, item 2: carol signs two different messages with one number
// and hands one straight to bob's node, the other to dave's. Once bob
// holds both (here: dave's copy reaches him too) he shows one notice
// naming carol and passes both envelopes on through the group's host, so
// that dave and alice, who never got the other copy from carol, learn it
// too and show the same single notice; each member keeps showing the one
// version it saw first.
func TestEquivocationIsEvidence(t *testing.T) {
	leakCheck(t)
	host, gid, alice, bob, carol, dave := fourMembers(t)
	ctx := context.Background()
	carol.n.member.mu.Lock()
	seq := entry(t, carol, gid).local.NextSeq
	carol.n.member.mu.Unlock()
	toBob := craft(t, carol, gid, 0, groupstate.KindText, "carol to bob", nil)
	toDave := craft(t, carol, gid, 0, groupstate.KindText, "carol to dave", nil)
	if _, err := bob.n.Deliver(ctx, toBob, carol.n.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := dave.n.Deliver(ctx, toDave, carol.n.ID()); err != nil {
		t.Fatal(err)
	}
	waitText(t, bob, gid, "carol to bob")
	waitText(t, dave, gid, "carol to dave")
	if _, err := bob.n.Deliver(ctx, toDave, dave.n.ID()); err != nil {
		t.Fatal(err)
	}
	want := map[*person]string{bob: "carol to bob", dave: "carol to dave"}
	for _, p := range []*person{bob, dave, alice} {
		if p == alice {
			if _, err := alice.n.CatchUp(ctx, gid); err != nil {
				t.Fatal(err)
			}
		}
		tu.Eventually(t, 20*time.Second, func() bool { return len(noticesOf(t, p, gid, KindEquivocation)) == 1 },
			"%s shows the equivocation notice", p.nick)
		n := noticesOf(t, p, gid, KindEquivocation)[0]
		if n.Author != carol.id.Fingerprint() || !strings.Contains(n.Text, fmt.Sprint(seq)) {
			t.Fatalf("%s's notice: %+v", p.nick, n)
		}
		shown := 0
		for _, txt := range texts(t, p.n, gid) {
			if txt == "carol to bob" || txt == "carol to dave" {
				shown++
				if w, ok := want[p]; ok && txt != w {
					t.Fatalf("%s switched to the other version %q", p.nick, txt)
				}
			}
		}
		if shown != 1 {
			t.Fatalf("%s shows %d versions", p.nick, shown)
		}
		tu.Eventually(t, 20*time.Second, func() bool {
			rs, _ := p.n.GroupRejections(gid, 0)
			for _, r := range rs {
				if r.Kind == RejectionEquivocation && r.Author == carol.id.Fingerprint() && r.Seq == seq {
					return true
				}
			}
			return false
		}, "%s logs the equivocation", p.nick)
	}
	// The host received both only because bob passed them on.
	for _, env := range []*envelope.Envelope{toBob, toDave} {
		if ok, err := host.Store().Has(env.Mailbox(), env.ID()); err != nil || !ok {
			t.Fatalf("the host lacks %s: %v", env.ID().Short(), err)
		}
	}
	if got := counterValue(t, bob.n.metrics.equivocations); got != 1 {
		t.Fatalf("bob counted %v equivocations", got)
	}
	// Nothing accuses an honest member.
	for _, p := range []*person{alice, bob, carol, dave} {
		for _, m := range noticesOf(t, p, gid, KindEquivocation) {
			if m.Author != carol.id.Fingerprint() {
				t.Fatalf("%s accuses %s", p.nick, m.Author)
			}
		}
	}
}

// Forged evidence accuses no one and hides nothing: carol re-seals bob's
// message in another envelope (another nonce: the same message) and
// delivers it first, sends it again padded to another bucket, and sends a
// payload naming bob as its author with a signature she cannot make,
// numbered as bob's next message. Dave shows bob's message once, refuses
// the padded copy as malformed and the forgery as a bad signature, and
// shows bob's real next message; nobody is accused.
func TestForgedEquivocationAccusesNoOne(t *testing.T) {
	leakCheck(t)
	host, gid, alice, bob, carol, dave := fourMembers(t)
	ctx := context.Background()
	// Bob's message, sealed by his node but not delivered yet.
	orig := sealText(t, bob, gid, "bob's words")
	// Carol, who holds the group's keys, opens it and seals the same
	// payload again.
	carol.n.member.mu.Lock()
	keys, err := entry(t, carol, gid).keysFor(0)
	carol.n.member.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	p, err := groupstate.OpenMessage(keys, groupstate.GroupID(mustGroupID(t, gid)), 0, orig)
	if err != nil {
		t.Fatal(err)
	}
	resealed, err := groupstate.SealMessage(keys, p)
	if err != nil || resealed.ID() == orig.ID() {
		t.Fatalf("re-seal: %v", err)
	}
	// And a forgery of bob's next number.
	forged := *p
	forged.Seq++
	forged.Body = []byte("words bob never wrote")
	rand.Read(forged.Signature[:])
	pb, err := groupstate.MarshalPayload(&forged)
	if err != nil {
		t.Fatal(err)
	}
	forgedEnv := sealForged(t, keys, pb, 512)
	// And bob's own payload again, padded to a larger bucket than it needs:
	// a copy that differs only in its padding.
	ob, err := groupstate.MarshalPayload(p)
	if err != nil {
		t.Fatal(err)
	}
	padded := sealForged(t, keys, ob, 2048)
	for _, env := range []*envelope.Envelope{resealed, forgedEnv, padded} {
		if _, err := dave.n.Deliver(ctx, env, carol.n.ID()); err != nil {
			t.Fatal(err)
		}
	}
	waitText(t, dave, gid, "bob's words")
	relayTo(t, bob, host, orig)
	if _, err := bob.n.Send(ctx, gid, "bob's next words"); err != nil {
		t.Fatal(err)
	}
	waitText(t, dave, gid, "bob's next words")
	waitRejection(t, dave, gid, orig.ID(), RejectionRefused, ReasonReplay)
	r := waitRejection(t, dave, gid, forgedEnv.ID(), RejectionRefused, ReasonSignature)
	if r.Author != "" {
		t.Fatalf("a forged signature names an author: %+v", r)
	}
	if r := waitRejection(t, dave, gid, padded.ID(), RejectionRefused, ReasonMalformed); r.Author != "" {
		t.Fatalf("a copy in another padding names an author: %+v", r)
	}
	if n := len(slices.DeleteFunc(texts(t, dave.n, gid), func(s string) bool { return s != "bob's words" })); n != 1 {
		t.Fatalf("dave shows bob's message %d times", n)
	}
	for _, q := range []*person{alice, bob, carol, dave} {
		if len(noticesOf(t, q, gid, KindEquivocation)) != 0 {
			t.Fatalf("%s shows an equivocation notice", q.nick)
		}
	}
	if contains(texts(t, dave.n, gid), "words bob never wrote") {
		t.Fatal("dave shows the forgery")
	}
}

// Issue 13, item 3: carol dates one message 2099 and another 2001. Both
// are shown with a mark and logged; neither becomes the latest message nor
// moves before the group existed: the order follows their parents, carol's
// previous message and their arrival.
func TestSentTimeBounded(t *testing.T) {
	leakCheck(t)
	tp := newTopology(t, "club", groupstate.DefaultPolicy(), "alice", nil)
	alice, bob, carol, gid, host := tp.mgr, tp.join("bob", groupstate.RoleWrite), tp.join("carol", groupstate.RoleWrite), tp.gid, tp.host
	ctx := context.Background()
	carol.n.member.mu.Lock()
	next := entry(t, carol, gid).local.NextSeq
	carol.n.member.mu.Unlock()
	future := craft(t, carol, gid, 0, groupstate.KindText, "from 2099", func(p *groupstate.Payload) {
		p.Seq = next
		p.Sent = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	})
	relayTo(t, carol, host, future)
	waitText(t, bob, gid, "from 2099")
	past := craft(t, carol, gid, 0, groupstate.KindText, "from 2001", func(p *groupstate.Payload) {
		p.Seq = next + 1
		p.Sent = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	})
	relayTo(t, carol, host, past)
	waitText(t, bob, gid, "from 2001")
	if _, err := alice.n.Send(ctx, gid, "later"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*person{alice, bob} {
		waitText(t, p, gid, "later")
		waitText(t, p, gid, "from 2001")
		msgs := messagesOf(t, p.n, gid)
		idx := map[string]int{}
		for i, m := range msgs {
			idx[m.Text] = i
			switch m.Text {
			case "from 2099":
				if !slices.Contains(m.Flags, groupstate.TimeFuture.String()) || m.Sent.Year() != 2099 {
					t.Fatalf("%s shows %+v", p.nick, m)
				}
			case "from 2001":
				if !slices.Contains(m.Flags, groupstate.TimeBeforeJoin.String()) {
					t.Fatalf("%s shows %+v", p.nick, m)
				}
			}
		}
		if later := msgs[idx["later"]]; len(later.Flags) != 0 {
			t.Fatalf("%s flags an honest message: %+v", p.nick, later)
		}
		if idx["from 2099"] > idx["later"] {
			t.Fatalf("%s shows the 2099 message after a later one", p.nick)
		}
		if idx["from 2001"] < idx["from 2099"] || idx["from 2001"] == 0 {
			t.Fatalf("%s moves the 2001 message before carol's earlier one or the group's start", p.nick)
		}
		waitRejection(t, p, gid, future.ID(), RejectionFlagged, groupstate.TimeFuture.String())
		r := waitRejection(t, p, gid, past.ID(), RejectionFlagged, groupstate.TimeBeforeJoin.String())
		if r.Author != carol.id.Fingerprint() {
			t.Fatalf("%s logs %+v", p.nick, r)
		}
	}
}

// Issue 13, item 4, with evidence: alice shows bob and carol two
// different events on one head, each straight to one node. Each then
// names its head in a message; the other holds it (the head is unknown),
// passes on the envelope of its own head, and so both come to hold the
// two events alice signed: a split, reported with alice as the signer,
// and both messages are shown.
func TestManagerSplitShownWithEvidence(t *testing.T) {
	leakCheck(t)
	_, gid, alice, bob, carol, _ := fourMembers(t)
	ctx := context.Background()
	evA := signedEvent(t, alice, gid, alice.id, &groupstate.Event{Kind: groupstate.EventSetPolicy, Policy: groupstate.Policy{History: groupstate.HistoryFromJoin}})
	evB := signedEvent(t, alice, gid, alice.id, &groupstate.Event{Kind: groupstate.EventSetPolicy, Policy: groupstate.Policy{History: groupstate.HistoryShared, RotateAfter: 7}})
	envA := sealRaw(t, alice, gid, 0, groupstate.KindStateEvent, marshalEvent(t, evA))
	envB := sealRaw(t, alice, gid, 0, groupstate.KindStateEvent, marshalEvent(t, evB))
	if _, err := bob.n.Deliver(ctx, envA, alice.n.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.n.Deliver(ctx, envB, alice.n.ID()); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 20*time.Second, func() bool { return headOf(t, bob, gid) == evA.ID() }, "bob is on A")
	tu.Eventually(t, 20*time.Second, func() bool { return headOf(t, carol, gid) == evB.ID() }, "carol is on B")
	if _, err := bob.n.Send(ctx, gid, "bob on A"); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.n.Send(ctx, gid, "carol on B"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*person{bob, carol} {
		tu.Eventually(t, 30*time.Second, func() bool {
			s, err := p.n.Splits(gid)
			return err == nil && len(s) > 0
		}, "%s detects the split", p.nick)
		s, _ := p.n.Splits(gid)
		if s[0].Evidence == "" || !slices.Equal(s[0].Signers, []string{alice.id.Fingerprint()}) {
			t.Fatalf("%s's split: %+v", p.nick, s[0])
		}
		if _, err := groupstate.ParseForkEvidence(mustHex(t, s[0].Evidence)); err != nil {
			t.Fatalf("%s's evidence does not verify: %v", p.nick, err)
		}
		waitText(t, p, gid, "bob on A")
		waitText(t, p, gid, "carol on B")
		n := noticesOf(t, p, gid, KindSplit)
		if len(n) != 1 || !strings.Contains(n[0].Text, alice.id.Fingerprint()) {
			t.Fatalf("%s's split notices: %+v", p.nick, n)
		}
	}
	// The split names alice, whose signature is the evidence, never bob
	// or carol.
	for _, p := range []*person{alice, bob, carol} {
		ss, _ := p.n.Splits(gid)
		for _, s := range ss {
			for _, fp := range s.Signers {
				if fp != alice.id.Fingerprint() {
					t.Fatalf("%s blames %s", p.nick, fp)
				}
			}
		}
	}
}

// Nothing lets one member make an honest member's message disappear:
// carol fills her share of the payloads held for unknown heads, and bob's
// message naming an event dave has not received yet still waits and is
// shown once the event arrives.
func TestHeldPlacesPerAuthor(t *testing.T) {
	leakCheck(t)
	host, gid, alice, bob, carol, dave := fourMembers(t)
	ctx := context.Background()
	var floods []*envelope.Envelope
	for i := range maxDeferredPerAuthor + 3 {
		env := craft(t, carol, gid, 0, groupstate.KindText, fmt.Sprintf("flood %d", i), func(p *groupstate.Payload) {
			p.StateHead = groupstate.EventID{0xf1, byte(i), byte(i >> 8)}
			p.Seq += uint64(i)
		})
		floods = append(floods, env)
		if _, err := dave.n.Deliver(ctx, env, carol.n.ID()); err != nil {
			t.Fatal(err)
		}
	}
	waitRejection(t, dave, gid, floods[len(floods)-1].ID(), RejectionRefused, ReasonHeldFull)
	// An event of alice's that dave has not received yet, and bob's
	// message under it (bob's node would have received the event first;
	// it is built by hand here so that nothing carries the event to dave
	// before the test does).
	ev := signedEvent(t, alice, gid, alice.id, &groupstate.Event{Kind: groupstate.EventSetHosts, Hosts: []string{hostAddr(host)}})
	evEnv := sealRaw(t, alice, gid, 0, groupstate.KindStateEvent, marshalEvent(t, ev))
	honest := craft(t, bob, gid, 0, groupstate.KindText, "bob under the new head", func(p *groupstate.Payload) { p.StateHead = ev.ID() })
	if _, err := dave.n.Deliver(ctx, honest, bob.n.ID()); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 20*time.Second, func() bool {
		_, ok := rejection(t, dave, gid, honest.ID(), RejectionHeld)
		return ok
	}, "dave holds bob's message")
	if _, err := dave.n.Deliver(ctx, evEnv, alice.n.ID()); err != nil {
		t.Fatal(err)
	}
	waitText(t, dave, gid, "bob under the new head")
	if _, ok := rejection(t, dave, gid, honest.ID(), RejectionRefused); ok {
		t.Fatal("dave refused bob's message")
	}
}

// sealForged pads and encrypts a payload encoding the way SealMessage does,
// without its checks (SealMessage refuses a bad author signature): what a
// member holding the epoch's keys can build.
func sealForged(t *testing.T, keys *keymgmt.EpochKeys, payload []byte, bucket int) *envelope.Envelope {
	t.Helper()
	padded := binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
	padded = append(padded, payload...)
	padded = append(padded, make([]byte, bucket-len(padded))...)
	aead, err := chacha20poly1305.NewX(keys.ReadKey[:])
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	rand.Read(nonce)
	ct := aead.Seal(nil, nonce, padded, envelope.HeaderAAD(keys.WritePub, nonce, len(padded)+aead.Overhead()))
	env, err := envelope.Seal(keys.WritePriv, nonce, ct, 0)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// An open group has no chain, but its members hold the keys all the
// same: an equivocation there is evidence too, keyed by the author.
func TestEquivocationInOpenGroup(t *testing.T) {
	leakCheck(t)
	host := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen, tweak: noMemberSync})
	alice, bob, carol := newPerson(t, "alice"), newPerson(t, "bob"), newPerson(t, "carol")
	for _, p := range []*person{alice, bob, carol} {
		p.tweak = noMemberSync
		p.start()
	}
	ctx := context.Background()
	info, invite, err := alice.n.CreateGroup(ctx, "open", []string{hostAddr(host)})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*person{bob, carol} {
		if _, err := p.n.JoinGroup(ctx, invite, p.nick); err != nil {
			t.Fatal(err)
		}
	}
	gid := info.ID
	sendAll(t, carol, gid, "carol joins in")
	waitText(t, alice, gid, "carol joins in")
	waitText(t, bob, gid, "carol joins in")
	one := craft(t, carol, gid, 0, groupstate.KindText, "version one", nil)
	two := craft(t, carol, gid, 0, groupstate.KindText, "version two", nil)
	if _, err := alice.n.Deliver(ctx, one, carol.n.ID()); err != nil {
		t.Fatal(err)
	}
	waitText(t, alice, gid, "version one")
	if _, err := alice.n.Deliver(ctx, two, carol.n.ID()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*person{alice, bob} {
		tu.Eventually(t, 20*time.Second, func() bool { return len(noticesOf(t, p, gid, KindEquivocation)) == 1 },
			"%s shows the equivocation notice", p.nick)
		if n := noticesOf(t, p, gid, KindEquivocation)[0]; n.Author != carol.id.Fingerprint() {
			t.Fatalf("%s accuses %s", p.nick, n.Author)
		}
	}
}
