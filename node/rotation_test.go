package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/keymgmt"
)

// entry returns p's group entry; the caller holds p.n.member.mu.
func entry(t *testing.T, p *person, gid string) *groupEntry {
	t.Helper()
	e, err := p.n.member.resolve(gid)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// chainCopy returns a copy of p's state chain of the group.
func chainCopy(t *testing.T, p *person, gid string) *groupstate.Chain {
	t.Helper()
	m := p.n.member
	m.mu.Lock()
	defer m.mu.Unlock()
	b, err := entry(t, p, gid).chain.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	c, err := groupstate.UnmarshalChain(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// postRaw has p's node author, seal and post a payload of a kind in an
// epoch (with that epoch's state head), as a misbehaving member or
// manager would.
func postRaw(t *testing.T, p *person, gid string, epoch uint64, kind groupstate.Kind, body []byte) *envelope.Envelope {
	t.Helper()
	env := sealRaw(t, p, gid, epoch, kind, body)
	m := p.n.member
	m.mu.Lock()
	e := entry(t, p, gid)
	id := e.g.ID
	m.mu.Unlock()
	if _, err := p.n.deliverOwn(context.Background(), id, env); err != nil {
		t.Fatal(err)
	}
	return env
}

func sealRaw(t *testing.T, p *person, gid string, epoch uint64, kind groupstate.Kind, body []byte) *envelope.Envelope {
	t.Helper()
	m := p.n.member
	m.mu.Lock()
	defer m.mu.Unlock()
	e := entry(t, p, gid)
	pl, err := m.buildPayloadRaw(e, epoch, kind, body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	env, err := m.sealOwn(e, pl, nil)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func headOf(t *testing.T, p *person, gid string) groupstate.EventID {
	t.Helper()
	m := p.n.member
	m.mu.Lock()
	defer m.mu.Unlock()
	return entry(t, p, gid).chain.Head()
}

func rejectedWith(t *testing.T, p *person, what string) bool {
	t.Helper()
	rs, err := p.n.Rejections()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if strings.Contains(r.Reason, what) {
			return true
		}
	}
	return false
}

// A removed member cannot decrypt anything posted after its removal, even
// with every secret it kept and every envelope the host holds.
func TestRemovedMemberReadsNothingNew(t *testing.T) {
	leakCheck(t)
	tp := newTopology(t, "club", groupstate.DefaultPolicy(), "alice", nil)
	alice, bob, carol, gid, host := tp.mgr, tp.join("bob", groupstate.RoleWrite), tp.join("carol", groupstate.RoleWrite), tp.gid, tp.host
	ctx := context.Background()
	if _, err := alice.n.Send(ctx, gid, "before the removal"); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.n.Send(ctx, gid, "carol before her removal"); err != nil {
		t.Fatal(err)
	}
	waitText(t, carol, gid, "before the removal")
	waitText(t, alice, gid, "carol before her removal")
	preRemoval := headOf(t, carol, gid)

	res, err := alice.n.RemoveMember(ctx, gid, carol.id.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Rotated || res.Epoch != 1 {
		t.Fatalf("removal did not rotate: %+v", res)
	}
	waitEpoch(t, bob, gid, 1)
	tu.Eventually(t, 20*time.Second, func() bool {
		gi, err := carol.n.GroupInfo(gid)
		return err == nil && gi.Removed
	}, "carol learns she was removed")
	for i := range 3 {
		if _, err := alice.n.Send(ctx, gid, fmt.Sprintf("after the removal %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bob.n.Send(ctx, gid, "after the removal, bob"); err != nil {
		t.Fatal(err)
	}
	waitText(t, bob, gid, "after the removal 2")
	waitText(t, alice, gid, "after the removal, bob")
	if got := roles(t, bob.n, gid); got["carol"] != "" {
		t.Fatalf("bob still lists carol: %v", got)
	}
	// Carol posting in the old epoch with what she kept is refused, also
	// when she names the state head from before her removal (under which
	// she was a member): the removal's sequence limit tells it apart from
	// what she posted before.
	postRaw(t, carol, gid, 0, groupstate.KindText, []byte("carol after removal"))
	postRawAt(t, carol, gid, 0, preRemoval, groupstate.KindText, []byte("carol after removal, old head"))

	// Everything carol kept: her group record's secrets.
	carol.n.member.mu.Lock()
	kept := entry(t, carol, gid).g
	carol.n.member.mu.Unlock()
	if kept.Epoch != 0 || len(kept.Secrets) != 1 {
		t.Fatalf("carol holds epochs %d (current %d)", len(kept.Secrets), kept.Epoch)
	}
	keys, err := kept.Keys(0)
	if err != nil {
		t.Fatal(err)
	}
	// Everything the host holds, in every mailbox.
	mbs, err := host.Store().Mailboxes()
	if err != nil {
		t.Fatal(err)
	}
	var envs, opened int
	for _, mb := range mbs {
		pg, err := host.Store().Page(mb, nil, 10000, 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, env := range pg.Envelopes {
			envs++
			p, err := groupstate.OpenMessage(keys, kept.ID, 0, env)
			if err != nil {
				continue
			}
			opened++
			if strings.Contains(string(p.Body), "after the removal") {
				t.Fatalf("carol decrypts %q", p.Body)
			}
			if p.Kind == groupstate.KindKeyUpdate {
				ku, err := groupstate.ParseKeyUpdate(p.Body)
				if err != nil {
					t.Fatal(err)
				}
				c := chainCopy(t, carol, gid)
				if _, err := c.AcceptRotation(carol.id, kept, ku); !errors.Is(err, keymgmt.ErrNotRecipient) {
					t.Fatalf("carol opens the key update after her removal: %v", err)
				}
			}
		}
	}
	if envs == 0 || opened == 0 || opened == envs {
		t.Fatalf("carol opens %d of the host's %d envelopes", opened, envs)
	}
	for _, txt := range texts(t, carol.n, gid) {
		if strings.Contains(txt, "after the removal") {
			t.Fatalf("carol's node shows %q", txt)
		}
	}
	tu.Eventually(t, 20*time.Second, func() bool { return rejectedWith(t, alice, "not a member") }, "alice refuses carol's post")
	tu.Eventually(t, 20*time.Second, func() bool { return rejectedWith(t, bob, "not among the messages its author had seen") },
		"bob refuses carol's post under the old head")
	// A newcomer under shared history reads what carol said while a
	// member, and not what she posted after.
	dave := tp.join("dave", groupstate.RoleWrite)
	waitText(t, dave, gid, "carol before her removal")
	tu.Eventually(t, 20*time.Second, func() bool { return rejectedWith(t, dave, "not among the messages its author had seen") },
		"dave refuses carol's post under the old head")
	for _, p := range []*person{alice, bob, dave} {
		for _, txt := range texts(t, p.n, gid) {
			if strings.Contains(txt, "carol after removal") {
				t.Fatalf("%s shows a removed member's post %q", p.nick, txt)
			}
		}
	}
}

// postRawAt posts like postRaw, naming the given state head.
func postRawAt(t *testing.T, p *person, gid string, epoch uint64, head groupstate.EventID, kind groupstate.Kind, body []byte) *envelope.Envelope {
	t.Helper()
	m := p.n.member
	m.mu.Lock()
	e := entry(t, p, gid)
	pl, err := m.buildPayloadRaw(e, epoch, kind, body, time.Now())
	if err == nil {
		pl.StateHead = head
		err = groupstate.SignPayloadAs(pl, m.id)
	}
	var env *envelope.Envelope
	if err == nil {
		env, err = m.sealOwn(e, pl, nil)
	}
	id := e.g.ID
	m.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.n.deliverOwn(context.Background(), id, env); err != nil {
		t.Fatal(err)
	}
	return env
}

// A member offline across three rotations catches up from the host alone,
// moving epoch by epoch through the key updates, reads every message and
// receives each envelope once.
func TestOfflineAcrossRotations(t *testing.T) {
	tp := newTopology(t, "ops", groupstate.DefaultPolicy(), "alice", nil)
	alice, bob, gid, host := tp.mgr, tp.join("bob", groupstate.RoleWrite), tp.gid, tp.host
	ctx := context.Background()
	waitEpoch(t, bob, gid, 0)
	bob.n.member.mu.Lock()
	k0, err := entry(t, bob, gid).keysFor(0)
	bob.n.member.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	// The create, alice's profile, the add and bob's profile.
	tu.Eventually(t, 20*time.Second, func() bool { return count(t, host, k0.Mailbox) == 4 }, "bob's profile reaches the host")
	// Bob's cursor on the host is saved before he goes offline.
	if _, err := bob.n.CatchUp(ctx, gid); err != nil {
		t.Fatal(err)
	}
	bob.stop()
	var want []string
	for epoch := range 4 {
		for i := range 3 {
			txt := fmt.Sprintf("epoch %d message %d", epoch, i)
			want = append(want, txt)
			res, err := alice.n.Send(ctx, gid, txt)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.StoredBy) != 1 {
				t.Fatalf("not stored by the host: %+v", res)
			}
		}
		if epoch < 3 {
			res, err := alice.n.Rotate(ctx, gid)
			if err != nil {
				t.Fatal(err)
			}
			if res.Epoch != uint64(epoch+1) || len(res.Failed) != 0 {
				t.Fatalf("rotation %d: %+v", epoch+1, res)
			}
		}
	}
	alice.stop() // bob can only catch up from the host
	bob.startManaged(nil)
	waitEpoch(t, bob, gid, 3)
	tu.Eventually(t, 20*time.Second, func() bool { return len(texts(t, bob.n, gid)) >= len(want) }, "bob reads all")
	if got := texts(t, bob.n, gid); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("bob reads %q\nwant %q", got, want)
	}
	res, err := bob.n.CatchUp(ctx, gid)
	if err != nil {
		t.Fatal(err)
	}
	if res.Fetched != 0 {
		t.Fatalf("a second catch-up fetched %d envelopes again", res.Fetched)
	}
	// Each envelope reached bob's store once: nothing arrived twice.
	if d := counterValue(t, bob.n.metrics.duplicates); d != 0 {
		t.Fatalf("bob received %v envelopes twice", d)
	}
	var hosted int
	for epoch := range uint64(4) {
		bob.n.member.mu.Lock()
		k, err := entry(t, bob, gid).keysFor(epoch)
		bob.n.member.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		hosted += count(t, host, k.Mailbox)
	}
	// Bob stored all of them but the four he had before he went offline.
	if s := counterValue(t, bob.n.metrics.stored); int(s) != hosted-4 {
		t.Fatalf("bob stored %v envelopes after restarting; the host holds %d in the four epochs", s, hosted)
	}
	if rej, _ := bob.n.Rejections(); len(rej) != 0 {
		t.Fatalf("bob rejected: %+v", rej)
	}
}

// A read-only member reads; it cannot write, and hosts refuse an envelope
// it forges for the mailbox (it has no write key). Promoted to write, it
// gets the write secret by a rotation.
func TestReadOnlyMember(t *testing.T) {
	tp := newTopology(t, "news", groupstate.DefaultPolicy(), "alice", nil)
	alice, rita, gid, host := tp.mgr, tp.join("rita", groupstate.RoleRead), tp.gid, tp.host
	ctx := context.Background()
	if _, err := alice.n.Send(ctx, gid, "hello readers"); err != nil {
		t.Fatal(err)
	}
	waitText(t, rita, gid, "hello readers")
	gi, err := rita.n.GroupInfo(gid)
	if err != nil {
		t.Fatal(err)
	}
	if gi.CanWrite || gi.Role != "read" {
		t.Fatalf("reader's group info: %+v", gi)
	}
	if _, err := rita.n.Send(ctx, gid, "let me write"); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("reader sends: %v, want ErrReadOnly", err)
	}
	// A forged envelope: signed with a key of her own, claiming the
	// epoch's write key.
	rita.n.member.mu.Lock()
	keys, err := entry(t, rita, gid).keysFor(0)
	rita.n.member.mu.Unlock()
	if err != nil || keys.CanWrite() {
		t.Fatalf("reader's keys: write %v, %v", keys.CanWrite(), err)
	}
	_, own, _ := ed25519.GenerateKey(rand.Reader)
	nonce := make([]byte, 24)
	real, err := envelope.Seal(own, nonce, make([]byte, 512+16), 0)
	if err != nil {
		t.Fatal(err)
	}
	raw := append([]byte(nil), real.Bytes()...)
	if !strings.Contains(string(raw), string(own.Public().(ed25519.PublicKey))) {
		t.Fatal("envelope layout: write key not found")
	}
	copy(raw[1:1+ed25519.PublicKeySize], keys.WritePub)
	forged, err := envelope.Decode(raw, 0)
	if err != nil {
		t.Fatal(err)
	}
	if forged.Mailbox() != keys.Mailbox {
		t.Fatal("forged envelope is not for the group's mailbox")
	}
	err = rita.n.Remote(host.ID()).RelayMessageToGroup(ctx, keys.Mailbox, forged)
	if err == nil || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("host accepted a reader's forged envelope: %v", err)
	}
	if err := host.RelayMessageToGroup(ctx, keys.Mailbox, forged); !errors.Is(err, envelope.ErrBadSignature) {
		t.Fatalf("host's local relay: %v, want envelope.ErrBadSignature", err)
	}

	res, err := alice.n.SetRole(ctx, gid, rita.id.Fingerprint(), groupstate.RoleWrite)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Rotated {
		t.Fatalf("promotion to write did not rotate: %+v", res)
	}
	waitEpoch(t, rita, gid, 1)
	tu.Eventually(t, 20*time.Second, func() bool {
		gi, err := rita.n.GroupInfo(gid)
		return err == nil && gi.CanWrite && gi.Role == "write"
	}, "rita can write")
	if _, err := rita.n.Send(ctx, gid, "now I write"); err != nil {
		t.Fatal(err)
	}
	waitText(t, alice, gid, "now I write")
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// A removed member still holds the old epoch's keys; a post it makes
// there under a state head nobody holds is refused as its own fault and
// does not show as a split: a split needs the manager's signature.
func TestRemovedMemberCannotReportSplits(t *testing.T) {
	leakCheck(t)
	_, _, gid, alice, bob, carol := threeMembers(t, groupstate.DefaultPolicy())
	ctx := context.Background()
	res, err := alice.n.RemoveMember(ctx, gid, carol.id.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	waitEpoch(t, bob, gid, res.Epoch)
	posts := map[string]bool{}
	for i := range 3 {
		env := postRawAt(t, carol, gid, 0, groupstate.EventID{0xb0, byte(i)}, groupstate.KindText, []byte("a split, says carol"))
		posts[env.ID().String()] = true
	}
	for _, p := range []*person{alice, bob} {
		// Count the refusals of these three posts only: carol's node may
		// also have posted on its own before it learnt of its removal,
		// which is refused too (past its sequence limit).
		tu.Eventually(t, 20*time.Second, func() bool {
			rs, _ := p.n.Rejections()
			n := 0
			for _, r := range rs {
				if posts[r.Envelope] && strings.Contains(r.Reason, "not on the group's chain") {
					n++
				}
			}
			return n == 3
		}, "%s refuses the removed member's three posts", p.nick)
		if s, _ := p.n.Splits(gid); len(s) != 0 {
			t.Fatalf("%s reports a removed member's splits: %+v", p.nick, s)
		}
		for _, msg := range messagesOf(t, p.n, gid) {
			if msg.Kind == KindSplit {
				t.Fatalf("%s shows a split warning: %+v", p.nick, msg)
			}
		}
	}
}

// A member's removal of itself ends its messages at the payload that
// carries it: a leave with no sequence limit, one far ahead, or one that
// comes in someone else's payload is refused (the leaver could otherwise
// go on posting to the old epoch under a head from before), and a leave
// that names the next sequence after its payload is applied.
func TestOwnRemovalSequenceLimit(t *testing.T) {
	leakCheck(t)
	_, _, gid, alice, bob, carol := threeMembers(t, groupstate.DefaultPolicy())
	self := [32]byte(bob.id.SigningKey())
	nextSeq := func() uint64 {
		bob.n.member.mu.Lock()
		defer bob.n.member.mu.Unlock()
		return entry(t, bob, gid).local.NextSeq
	}
	leave := func(limit uint64) []byte {
		return marshalEvent(t, signedEvent(t, bob, gid, bob.id, &groupstate.Event{Kind: groupstate.EventRemove, Target: self, SeqLimit: limit}))
	}
	postRaw(t, bob, gid, 0, groupstate.KindStateEvent, leave(0))
	postRaw(t, bob, gid, 0, groupstate.KindStateEvent, leave(nextSeq()+1000))
	postRaw(t, carol, gid, 0, groupstate.KindStateEvent, leave(nextSeq()+1)) // carried by carol
	for _, p := range []*person{alice, carol} {
		tu.Eventually(t, 20*time.Second, func() bool {
			rs, _ := p.n.Rejections()
			n := 0
			for _, r := range rs {
				if strings.Contains(r.Reason, "removal of itself names the sequence limit") {
					n++
				}
			}
			return n == 3 || p == carol && n == 2
		}, "%s refuses bob's unbounded leaves", p.nick)
		if got := roles(t, p.n, gid); got["bob"] != "write" {
			t.Fatalf("%s applied a leave without its limit: %v", p.nick, got)
		}
	}
	postRaw(t, bob, gid, 0, groupstate.KindStateEvent, leave(nextSeq()+1))
	for _, p := range []*person{alice, carol} {
		waitRoles(t, p, gid, map[string]string{"bob": ""})
	}
}
