package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	tu "github.com/meshnode/meshnode/internal/testutil"
)

// Issue 13 (every rejection is visible, and nothing lets one member make
// the evidence against another disappear): carol, an insider holding the
// keys, forges bob's removal and equivocates, over the network. Then she
// tries to flush the evidence out of alice's rejection log: more than the
// log's whole former cap of replayed copies of her message (noise), a
// pile of payloads from throwaway identities the chain never knew, and
// more equivocations of her own than one bucket holds. Alice's log still
// lists the forged removal and carol's first equivocation's envelope is
// kept in 'V' and her notice; the noise is capped; the throwaway
// identities share one quota; and every class stays within its bound.
func TestRejectionLogKeepsEvidenceUnderFlood(t *testing.T) {
	leakCheck(t)
	_, _, gid, alice, bob, carol := threeMembers(t, groupstate.DefaultPolicy())
	ctx := context.Background()

	// The attack to hide: a forged removal of bob, and an equivocation.
	forged := postRaw(t, carol, gid, 0, groupstate.KindStateEvent,
		marshalEvent(t, signedEvent(t, carol, gid, carol.id, &groupstate.Event{Kind: groupstate.EventRemove, Target: [32]byte(bob.id.SigningKey())})))
	waitRejection(t, alice, gid, forged.ID(), RejectionRefused, ReasonUnauthorized)
	one := craft(t, carol, gid, 0, groupstate.KindText, "version one", nil)
	two := craft(t, carol, gid, 0, groupstate.KindText, "version two", nil)
	for _, env := range []*envelope.Envelope{one, two} {
		if _, err := alice.n.Deliver(ctx, env, carol.n.ID()); err != nil {
			t.Fatal(err)
		}
	}
	tu.Eventually(t, 30*time.Second, func() bool { return len(noticesOf(t, alice, gid, KindEquivocation)) == 1 },
		"alice shows carol's equivocation")

	alice.n.member.mu.Lock()
	e := entry(t, alice, gid)
	keys, kerr := e.keysFor(0)
	head, _ := e.chain.HeadOf(0)
	alice.n.member.mu.Unlock()
	if kerr != nil {
		t.Fatal(kerr)
	}
	first, err := groupstate.OpenMessage(keys, e.g.ID, 0, one)
	if err != nil {
		t.Fatal(err)
	}
	var flood []*envelope.Envelope
	// Noise: carol's first message sealed again and again (replays).
	for range maxNoiseRejections + 200 {
		env, err := groupstate.SealMessage(keys, first)
		if err != nil {
			t.Fatal(err)
		}
		flood = append(flood, env)
	}
	// Throwaway identities naming the group's head: not members.
	for i := range 2*maxEvidencePerBucket + 10 {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		p := &groupstate.Payload{GroupID: e.g.ID, StateHead: head, Seq: 1, Sent: time.Now().UnixMilli(),
			Kind: groupstate.KindText, Body: []byte(fmt.Sprint("sybil ", i))}
		if err := groupstate.SignPayload(p, priv); err != nil {
			t.Fatal(err)
		}
		env, err := groupstate.SealMessage(keys, p)
		if err != nil {
			t.Fatal(err)
		}
		flood = append(flood, env)
	}
	// Carol's own equivocations, one bucket's worth and more.
	var next uint64
	carol.n.member.mu.Lock()
	next = entry(t, carol, gid).local.NextSeq + 10
	carol.n.member.mu.Unlock()
	for i := range maxEvidencePerBucket + 20 {
		seq := next + uint64(i)
		for _, txt := range []string{"a", "b"} {
			flood = append(flood, craft(t, carol, gid, 0, groupstate.KindText, fmt.Sprint(txt, seq), func(p *groupstate.Payload) { p.Seq = seq }))
		}
	}
	for _, env := range flood {
		// Straight into alice's node (a host's admission would only
		// slow a real flood down; the log's bounds are the point here).
		if _, err := alice.n.Deliver(ctx, env, alice.n.ID()); err != nil {
			t.Fatal(err)
		}
	}
	last := flood[len(flood)-1]
	waitRejection(t, alice, gid, last.ID(), RejectionEquivocation, ReasonEquivocation)

	rs, err := alice.n.GroupRejections(gid, 0)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	var forgedKept bool
	for _, r := range rs {
		if r.Kind == RejectionHeld {
			continue
		}
		count[r.Reason]++
		forgedKept = forgedKept || r.Envelope == forged.ID()
	}
	t.Logf("alice's log after the flood: %v", count)
	if !forgedKept {
		t.Fatal("the forged removal was flushed out of alice's log")
	}
	if count[ReasonReplay] != maxNoiseRejections {
		t.Fatalf("%d replays logged, want the noise cap %d", count[ReasonReplay], maxNoiseRejections)
	}
	if count[ReasonNotMember] != maxEvidencePerBucket {
		t.Fatalf("%d entries of throwaway identities, want one bucket's %d", count[ReasonNotMember], maxEvidencePerBucket)
	}
	if count[ReasonEquivocation] != maxEvidencePerBucket {
		t.Fatalf("%d equivocations of carol logged, want one bucket's %d", count[ReasonEquivocation], maxEvidencePerBucket)
	}
	if got := noticesOf(t, alice, gid, KindEquivocation); len(got) != 1 || got[0].Author != carol.id.Fingerprint() {
		t.Fatalf("equivocation notices %+v", got)
	}
	// The latest entries first when asked for a few.
	few, err := alice.n.GroupRejections(gid, 3)
	if err != nil {
		t.Fatal(err)
	}
	var logged []GroupRejection
	for _, r := range rs {
		if r.Kind != RejectionHeld {
			logged = append(logged, r)
		}
	}
	if len(few) < 3 || fmt.Sprint(few[:3]) != fmt.Sprint(logged[len(logged)-3:]) {
		t.Fatalf("the latest 3: %+v", few)
	}
	// The counts survive a restart (they are read back from the log).
	alice.n.member.mu.Lock()
	l := *entry(t, alice, gid).rejlog
	// A record of the first layout ('J' gid at envelope kind), moved to
	// its class at the next load.
	old := groupRejection{At: time.Now().UTC(), Kind: rejRefused, Reason: ReasonAfterRemoval, Detail: "from before classes",
		Author: [32]byte(bob.id.SigningKey()), HasAuthor: true, Seq: 3}
	rand.Read(old.Envelope[:])
	oldKey := gkey(pfxRejection, e.g.ID, u64(uint64(old.At.UnixMilli())), old.Envelope[:], []byte{byte(old.Kind)})
	if err := alice.n.member.db.db.Update(func(txn *badger.Txn) error { return txn.Set(oldKey, old.marshal()) }); err != nil {
		t.Fatal(err)
	}
	alice.n.member.mu.Unlock()
	alice.stop()
	alice.start()
	alice.n.member.mu.Lock()
	l2 := *entry(t, alice, gid).rejlog
	alice.n.member.mu.Unlock()
	if l.noise != l2.noise || l.evidence+1 != l2.evidence || len(l.buckets)+1 != len(l2.buckets) {
		t.Fatalf("log counts %d/%d/%d before the restart, %d/%d/%d after", l.noise, l.evidence, len(l.buckets), l2.noise, l2.evidence, len(l2.buckets))
	}
	rs, err = alice.n.GroupRejections(gid, 0)
	if err != nil {
		t.Fatal(err)
	}
	var moved bool
	for _, r := range rs {
		moved = moved || r.Envelope == old.Envelope && r.Reason == ReasonAfterRemoval && r.Author == bob.id.Fingerprint()
	}
	if !moved {
		t.Fatal("the record of the first layout is not listed after the restart")
	}
}
