package node

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/keymgmt"
)

type person struct {
	t    *testing.T
	id   *keymgmt.Identity
	nick string
	dir  string
	n    *Node
	// tweak, if set, adjusts the node's parameters at each start.
	tweak func(*Params)
}

func newPerson(t *testing.T, nick string) *person {
	t.Helper()
	id, err := keymgmt.NewIdentity(keymgmt.SuiteX25519)
	if err != nil {
		t.Fatal(err)
	}
	return &person{t: t, id: id, nick: nick, dir: t.TempDir()}
}

// start runs (or restarts) the person's node with the same databases and
// a fresh transport identity.
func (p *person) start() *Node {
	p.t.Helper()
	params := DefaultParams(RoleMember)
	params.ProcessInterval = 200 * time.Millisecond
	if p.tweak != nil {
		p.tweak(&params)
	}
	n, err := New(context.Background(), params, WithLogger(quiet),
		WithDataDir(filepath.Join(p.dir, "data")),
		WithIdentity(p.id, p.nick), WithMemberDB(filepath.Join(p.dir, "member"), bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		p.t.Fatal(err)
	}
	p.n = n
	p.t.Cleanup(func() { n.Close() })
	return n
}

func (p *person) stop() {
	p.t.Helper()
	if err := p.n.Close(); err != nil {
		p.t.Fatal(err)
	}
}

func hostAddr(n *Node) string { return n.Addrs()[0].String() }

func texts(t *testing.T, n *Node, group string) []string {
	t.Helper()
	msgs, err := n.Messages(group, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		if m.Kind == "text" || m.Kind == "direct" {
			out = append(out, m.Text)
		}
	}
	return out
}

func waitTexts(t *testing.T, n *Node, group string, want int) {
	t.Helper()
	tu.Eventually(t, 20*time.Second, func() bool { return len(texts(t, n, group)) >= want }, "%d messages in %s", want, group)
}

func TestGroupConversation(t *testing.T) {
	leakCheck(t)
	host := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen})
	alice, bob, carol := newPerson(t, "alice"), newPerson(t, "bob"), newPerson(t, "carol")
	alice.start()
	bob.start()
	carol.start()
	ctx := context.Background()

	info, invite, err := alice.n.CreateGroup(ctx, "book club", []string{hostAddr(host)})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*person{bob, carol} {
		if _, err := p.n.JoinGroup(ctx, invite, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bob.n.JoinGroup(ctx, invite, ""); err == nil {
		t.Fatal("joining twice succeeded")
	}
	if _, err := alice.n.Send(ctx, "book club", "hello from alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.n.Send(ctx, info.ID, "hi, bob here"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*person{alice, bob, carol} {
		waitTexts(t, p.n, "book club", 2)
		msgs, _ := p.n.Messages("book club", 0)
		for _, m := range msgs {
			if !m.Verified || m.Author == "" || m.Group != info.ID {
				t.Fatalf("%s sees an unverified or unattributed message: %+v", p.nick, m)
			}
			if m.Text == "hi, bob here" && (m.Nick != "bob" || m.Author != bob.id.Fingerprint()) {
				t.Fatalf("bob's message attributed to %s/%s", m.Nick, m.Author)
			}
		}
	}
	// Direct message: only carol can read it.
	tu.Eventually(t, 10*time.Second, func() bool {
		ms, _ := alice.n.Members("book club")
		return len(ms) == 3
	}, "alice knows three members")
	if _, err := alice.n.SendDirect(ctx, "book club", carol.id.Fingerprint(), "psst, carol"); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 10*time.Second, func() bool { return contains(texts(t, carol.n, "book club"), "psst, carol") }, "carol reads the direct")
	if _, err := alice.n.Send(ctx, "book club", "after the direct"); err != nil {
		t.Fatal(err)
	}
	waitTexts(t, bob.n, "book club", 3)
	if contains(texts(t, bob.n, "book club"), "psst, carol") {
		t.Fatal("bob can read a direct message to carol")
	}
	if !contains(texts(t, alice.n, "book club"), "psst, carol") {
		t.Fatal("alice does not see her own direct message")
	}
	if _, err := alice.n.SendDirect(ctx, "book club", bob.id.Fingerprint()[:10]+"aaaaaaaaaaaaaaaaaaaaaa", "x"); err == nil {
		t.Fatal("direct to an unknown fingerprint succeeded")
	}
	if _, err := alice.n.Send(ctx, "no such group", "x"); err == nil {
		t.Fatal("send to unknown group succeeded")
	}
	if _, err := alice.n.Send(ctx, "book club", strings.Repeat("x", 70000)); err == nil {
		t.Fatal("oversize message accepted")
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestOfflineMemberCatchesUp(t *testing.T) {
	host := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen})
	alice, bob := newPerson(t, "alice"), newPerson(t, "bob")
	alice.start()
	bob.start()
	ctx := context.Background()
	_, invite, err := alice.n.CreateGroup(ctx, "ops", []string{hostAddr(host)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.n.JoinGroup(ctx, invite, "bob"); err != nil {
		t.Fatal(err)
	}
	bob.stop()
	var want []string
	for i := 0; i < 100; i++ {
		txt := fmt.Sprintf("message %03d", i)
		want = append(want, txt)
		res, err := alice.n.Send(ctx, "ops", txt)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.StoredBy) != 1 {
			t.Fatalf("message %d not acknowledged by the host: %+v", i, res)
		}
	}
	alice.stop() // bob can only catch up from the host
	bob.start()
	waitTexts(t, bob.n, "ops", 100)
	got := texts(t, bob.n, "ops")
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("bob shows %d messages, not the 100 sent once each in order", len(got))
	}
	// A second catch-up fetches nothing new and shows nothing twice.
	res, err := bob.n.CatchUp(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	if res.Fetched != 0 || len(texts(t, bob.n, "ops")) != 100 {
		t.Fatalf("second catch-up fetched %d, shows %d", res.Fetched, len(texts(t, bob.n, "ops")))
	}
}

// h1 misses one message (it was down); bob, who first reaches only h1,
// detects the gap and fills it from h2.
func TestGapDetectedAndFilled(t *testing.T) {
	h1dir := t.TempDir()
	h1key, _, _ := crypto.GenerateEd25519Key(nil)
	h1 := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen, dir: h1dir, key: h1key})
	h1addr := hostAddr(h1)
	h1listen := h1.Host().Addrs()[0].String()
	h2 := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen})
	alice, bob := newPerson(t, "alice"), newPerson(t, "bob")
	alice.start()
	ctx := context.Background()
	_, invite, err := alice.n.CreateGroup(ctx, "g", []string{h1addr, hostAddr(h2)})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		alice.n.Send(ctx, "g", fmt.Sprintf("m%d", i))
	}
	h1.Close()
	alice.n.Send(ctx, "g", "m4 (h1 is down)")
	h1 = startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen, dir: h1dir, key: h1key, tweak: func(p *Params) { p.ListenAddrs = []string{h1listen} }})
	// Alice's failed dial put h1 in dial backoff; a real user would
	// simply retry later.
	if sw, ok := alice.n.Host().Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(h1.ID())
	}
	for i := 5; i <= 6; i++ {
		if res, err := alice.n.Send(ctx, "g", fmt.Sprintf("m%d", i)); err != nil || len(res.StoredBy) != 2 {
			t.Fatalf("send m%d: %+v %v", i, res, err)
		}
	}
	alice.stop()
	bob.start()
	if _, err := bob.n.JoinGroup(ctx, invite, ""); err != nil {
		t.Fatal(err)
	}
	res, err := bob.n.CatchUp(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	waitTexts(t, bob.n, "g", 6)
	if len(res.Gaps) != 0 {
		t.Fatalf("gap reported although h2 could fill it: %+v", res.Gaps)
	}
}

// A message that no node holds (the only host that saw it dropped it) is
// reported once as a gap.
func TestUnfillableGapReported(t *testing.T) {
	host := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen})
	alice, bob := newPerson(t, "alice"), newPerson(t, "bob")
	alice.start()
	ctx := context.Background()
	_, invite, err := alice.n.CreateGroup(ctx, "g", []string{hostAddr(host)})
	if err != nil {
		t.Fatal(err)
	}
	inv, _ := groupstate.ParseInvite(invite)
	g := inv.Group()
	keys, _ := g.Keys(g.Epoch)
	ms := openMembership(t, alice, g.ID.String())
	alice.stop()
	// Alice's profile was her message 1; 2 and 4 reach the host, 3 was dropped.
	for _, seq := range []uint64{2, 4} {
		p := &groupstate.Payload{GroupID: g.ID, Epoch: g.Epoch, Seq: seq, Sent: time.Now().UnixMilli(), Kind: groupstate.KindText, Nick: "alice", Body: []byte(fmt.Sprint("m", seq))}
		p.StateHead = ms // her membership: what her node would write
		if err := groupstate.SignPayloadAs(p, alice.id); err != nil {
			t.Fatal(err)
		}
		env, err := groupstate.SealMessage(keys, p)
		if err != nil {
			t.Fatal(err)
		}
		if err := host.RelayMessageToGroup(ctx, keys.Mailbox, env); err != nil {
			t.Fatal(err)
		}
	}
	bob.start()
	if _, err := bob.n.JoinGroup(ctx, invite, ""); err != nil {
		t.Fatal(err)
	}
	res, err := bob.n.CatchUp(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	var gap *Gap
	for i := range res.Gaps {
		if res.Gaps[i].Author == alice.id.Fingerprint() && res.Gaps[i].First == 3 && res.Gaps[i].Last == 3 {
			gap = &res.Gaps[i]
		}
	}
	if gap == nil {
		t.Fatalf("gaps %+v do not report alice's message 3", res.Gaps)
	}
	notices := func() int {
		msgs, _ := bob.n.Messages("g", 0)
		c := 0
		for _, m := range msgs {
			if m.Kind == KindGap {
				c++
			}
		}
		return c
	}
	if notices() != 1 {
		t.Fatalf("%d gap notices, want 1", notices())
	}
	if _, err := bob.n.CatchUp(ctx, "g"); err != nil || notices() != 1 {
		t.Fatalf("a second catch-up repeated the notice: %d, %v", notices(), err)
	}
}

// TestRejectedContent injects bad envelopes into bob's mailbox directly.
func TestRejectedContent(t *testing.T) {
	alice, bob := newPerson(t, "alice"), newPerson(t, "bob")
	alice.start()
	bob.start()
	ctx := context.Background()
	_, invite, err := alice.n.CreateGroup(ctx, "g", nil)
	if err != nil {
		t.Fatal(err)
	}
	inv, _ := groupstate.ParseInvite(invite)
	g := inv.Group()
	keys, _ := g.Keys(g.Epoch)
	if _, err := bob.n.JoinGroup(ctx, invite, ""); err != nil {
		t.Fatal(err)
	}
	mb := keys.Mailbox

	payload := func(gid groupstate.GroupID, seq uint64, text string) *groupstate.Payload {
		p := &groupstate.Payload{GroupID: gid, Epoch: g.Epoch, Seq: seq, Sent: time.Now().UnixMilli(), Kind: groupstate.KindText, Nick: "mallory", Body: []byte(text)}
		if err := groupstate.SignPayloadAs(p, alice.id); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, err := groupstate.SealMessage(keys, payload(g.ID, 100, "genuine"))
	if err != nil {
		t.Fatal(err)
	}
	// Tampered ciphertext, re-signed with the write key (a writer can do that).
	ct := append([]byte(nil), good.Ciphertext...)
	ct[3] ^= 1
	tampered, _ := envelope.Seal(keys.WritePriv, good.Nonce, ct, 0)
	// Unencrypted: the signed payload bytes in the clear.
	clear, _ := groupstate.MarshalPayload(payload(g.ID, 101, "in the clear"))
	unencrypted, _ := envelope.Seal(keys.WritePriv, make([]byte, envelope.NonceSize), clear, 0)
	// A payload of another group sealed into this mailbox.
	other, _ := groupstate.NewGroup("other", nil)
	wrongGroup, _ := groupstate.SealMessage(keys, payload(other.ID, 102, "wrong group"))
	// A replay of the genuine payload in a new envelope.
	replay, _ := groupstate.SealMessage(keys, payload(g.ID, 100, "genuine"))

	for _, env := range []*envelope.Envelope{good, tampered, unencrypted, wrongGroup, good, replay} {
		if err := bob.n.RelayMessageToGroup(ctx, mb, env); err != nil {
			t.Fatal(err)
		}
	}
	tu.Eventually(t, 10*time.Second, func() bool { return contains(texts(t, bob.n, "g"), "genuine") }, "genuine message shown")
	bob.n.processAll()
	if got := texts(t, bob.n, "g"); len(got) != 1 {
		t.Fatalf("bob shows %q; only the genuine message may be shown once", got)
	}
}

func TestHostLearnsNothing(t *testing.T) {
	dir := t.TempDir()
	host := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen, dir: dir})
	alice := newPerson(t, "alice-the-nick")
	alice.start()
	ctx := context.Background()
	if _, _, err := alice.n.CreateGroup(ctx, "secret-group-name", []string{hostAddr(host)}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, err := alice.n.Send(ctx, "secret-group-name", fmt.Sprintf("plaintext-marker-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	host.Close()
	needles := [][]byte{[]byte("plaintext-marker"), []byte("alice-the-nick"), []byte("secret-group-name"),
		alice.id.SigningKey(), alice.id.Public().HPKEPub, []byte(alice.id.Fingerprint())}
	var files int
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, n := range needles {
			if bytes.Contains(b, n) {
				t.Errorf("%s contains %q", path, n)
			}
		}
		return nil
	})
	if err != nil || files == 0 {
		t.Fatalf("walked %d files: %v", files, err)
	}
	// The member's own database is encrypted at rest too.
	filepath.WalkDir(filepath.Join(alice.dir, "member"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(path)
		if bytes.Contains(b, []byte("plaintext-marker")) {
			t.Errorf("member database file %s holds plaintext", path)
		}
		return nil
	})
}

// A member started without a nickname still announces a profile (with a
// nickname made from its fingerprint), so it is listed and can receive
// directs; a join with an invalid nickname is refused before anything is
// stored.
func TestMemberWithoutNick(t *testing.T) {
	alice, anon := newPerson(t, "alice"), newPerson(t, "")
	alice.start()
	anon.start()
	ctx := context.Background()
	_, invite, err := alice.n.CreateGroup(ctx, "g", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anon.n.JoinGroup(ctx, invite, "bad\u202enick"); err == nil {
		t.Fatal("join with a bidi-override nickname accepted")
	}
	if gs, _ := anon.n.Groups(); len(gs) != 0 {
		t.Fatal("refused join left a group behind")
	}
	if _, err := anon.n.JoinGroup(ctx, invite, ""); err != nil {
		t.Fatal(err)
	}
	connect(t, anon.n, alice.n)
	tu.Eventually(t, 15*time.Second, func() bool {
		ms, _ := alice.n.Members("g")
		for _, m := range ms {
			if m.Fingerprint == anon.id.Fingerprint() && strings.HasPrefix(m.Nick, "member-") {
				return true
			}
		}
		if len(ms) < 2 {
			alice.n.CatchUp(ctx, "g")
		}
		return false
	}, "alice lists the member without a nickname")
	if _, err := alice.n.SendDirect(ctx, "g", anon.id.Fingerprint(), "hello you"); err != nil {
		t.Fatal(err)
	}
}

// Messages with a limit returns the latest messages in sending order.
func TestMessagesLimit(t *testing.T) {
	alice := newPerson(t, "alice")
	alice.start()
	ctx := context.Background()
	if _, _, err := alice.n.CreateGroup(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 0; i < 10; i++ {
		txt := fmt.Sprintf("m%d", i)
		want = append(want, txt)
		if _, err := alice.n.Send(ctx, "g", txt); err != nil {
			t.Fatal(err)
		}
	}
	all := texts(t, alice.n, "g")
	if fmt.Sprint(all) != fmt.Sprint(want) {
		t.Fatalf("all messages: %q", all)
	}
	for _, limit := range []int{1, 3, 10, 50} {
		msgs, err := alice.n.Messages("g", limit)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range msgs {
			got = append(got, m.Text)
		}
		w := want[max(0, len(want)-limit):]
		if fmt.Sprint(got) != fmt.Sprint(w) {
			t.Fatalf("limit %d: %q, want %q", limit, got, w)
		}
	}
}
