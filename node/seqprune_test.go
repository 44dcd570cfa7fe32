package node

import (
	"context"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	tu "github.com/meshnode/meshnode/internal/testutil"
)

// seqRecords counts p's sequence records of a space.
func seqRecords(t *testing.T, p *person, gid string, key [32]byte) int {
	t.Helper()
	n := 0
	err := p.n.member.db.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: gkey(pfxSeq, mustGroupID(t, gid), key[:])})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// resealed is what an insider holding the keys makes of a message p shows:
// the same signed payload in a new envelope.
func resealed(t *testing.T, p *person, gid, text string) *envelope.Envelope {
	t.Helper()
	m := p.n.member
	msgs := messagesOf(t, p.n, gid)
	m.mu.Lock()
	e := entry(t, p, gid)
	var env *envelope.Envelope
	for _, msg := range msgs {
		if msg.Text != text {
			continue
		}
		id, err := envelope.ParseID(msg.ID)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := e.keysFor(msg.Epoch)
		if err != nil {
			t.Fatal(err)
		}
		orig, err := p.n.st.Get(keys.Mailbox, id)
		if err != nil {
			t.Fatal(err)
		}
		pl, err := groupstate.OpenMessage(keys, e.g.ID, msg.Epoch, orig)
		if err != nil {
			t.Fatal(err)
		}
		if env, err = groupstate.SealMessage(keys, pl); err != nil {
			t.Fatal(err)
		}
	}
	m.mu.Unlock()
	if env == nil {
		t.Fatalf("%s does not show %q", p.nick, text)
	}
	return env
}

// Issue 13: sequence records are bounded without reopening replays. A
// live membership keeps the records of its latest numbers only (the
// window, 8 here): bob's older messages sealed again by carol, an
// insider, are still refused as replays, and so is bob's second version
// of an old number, accusing no one (its first copy's record is gone: no
// evidence). Once bob is removed and every message the removal
// admits has arrived, his membership's space is closed (one range) and
// all its records go, at every member, across a restart; his messages
// sealed again are still replays, and what he posts after the removal is
// refused as before.
func TestSeqRecordsBounded(t *testing.T) {
	leakCheck(t)
	_, _, gid, alice, bob, carol := threeMembers(t, groupstate.DefaultPolicy())
	ctx := context.Background()
	const window = 8
	for _, p := range []*person{alice, carol} {
		p.n.member.mu.Lock()
		p.n.member.seqWindow = window
		p.n.member.mu.Unlock()
	}
	var said []string
	for i := range 2*window + 4 {
		said = append(said, "bob "+string(rune('a'+i)))
	}
	sendAll(t, bob, gid, said...)
	for _, p := range []*person{alice, carol} {
		waitShows(t, p, gid, said...)
	}
	bob.n.member.mu.Lock()
	_, key, _ := entry(t, bob, gid).chain.MemberSince([32]byte(bob.id.SigningKey()))
	bob.n.member.mu.Unlock()
	for _, p := range []*person{alice, carol} {
		if n := seqRecords(t, p, gid, key); n != window {
			t.Fatalf("%s keeps %d records of bob's membership, want the window's %d", p.nick, n, window)
		}
	}

	// Below the window: a re-sealed copy is a replay; another version of
	// an old number proves nothing (its first copy's record is gone).
	old := resealed(t, carol, gid, said[1])
	relayTo(t, carol, alice.n, old)
	waitRejection(t, alice, gid, old.ID(), RejectionRefused, ReasonReplay)
	other := craft(t, bob, gid, 0, groupstate.KindText, "bob rewrites his third", func(p *groupstate.Payload) { p.Seq = 3 })
	relayTo(t, bob, alice.n, other)
	// Without the first copy's record a copy and another version cannot
	// be told apart: refused as a number seen before, accusing no one.
	waitRejection(t, alice, gid, other.ID(), RejectionRefused, ReasonReplay)
	if got := noticesOf(t, alice, gid, KindEquivocation); len(got) != 0 {
		t.Fatalf("alice accuses: %+v", got)
	}

	// The removal settles bob's membership everywhere.
	preRemoval := headOf(t, bob, gid)
	res, err := alice.n.RemoveMember(ctx, gid, bob.id.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	waitEpoch(t, carol, gid, res.Epoch)
	for _, p := range []*person{alice, carol} {
		tu.Eventually(t, 20*time.Second, func() bool {
			p.n.member.mu.Lock()
			closed := entry(t, p, gid).tracker.Closed(key)
			p.n.member.mu.Unlock()
			return closed && seqRecords(t, p, gid, key) == 0
		}, "%s closes bob's membership and forgets its records", p.nick)
	}
	carol.stop()
	carol.start()
	carol.n.member.mu.Lock()
	closed := entry(t, carol, gid).tracker.Closed(key)
	carol.n.member.mu.Unlock()
	if !closed || seqRecords(t, carol, gid, key) != 0 {
		t.Fatal("bob's membership is open again after carol's restart")
	}
	again := resealed(t, alice, gid, said[len(said)-1])
	late := craft(t, bob, gid, 0, groupstate.KindText, "bob after his removal", func(p *groupstate.Payload) { p.StateHead = preRemoval })
	for _, env := range []*envelope.Envelope{again, late} {
		relayTo(t, alice, carol.n, env)
	}
	waitRejection(t, carol, gid, again.ID(), RejectionRefused, ReasonReplay)
	waitRejection(t, carol, gid, late.ID(), RejectionRefused, ReasonAfterRemoval)
	for _, p := range []*person{alice, carol} {
		if got := texts(t, p.n, gid); countOf2(got, said[1]) != 1 || countOf2(got, said[len(said)-1]) != 1 || contains(got, "bob after his removal") {
			t.Fatalf("%s shows %q", p.nick, got)
		}
	}
}
