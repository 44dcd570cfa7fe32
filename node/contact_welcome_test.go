package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/keymgmt"
)

// TestAddContactToGroup: alice and bob connect by alias over real libp2p
// loopback; alice creates a managed group on a host bob has never heard
// of and adds bob through the contact; bob's welcome comes inside the
// connection group, he joins, and they talk. Bob's node then offers a
// fresh key package, which alice uses for a second group.
func TestAddContactToGroup(t *testing.T) {
	leakCheck(t)
	dir := directoryHost(t, "", nil)
	groupHost := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen})
	alice, bob := newPerson(t, "alice"), newPerson(t, "bob")
	tweak := func(p *Params) {
		p.Contacts.DirectoryHosts = []string{hostAddr(dir)}
		p.Contacts.PublishUserID = false
		p.Contacts.PollInterval = 300 * time.Millisecond
	}
	alice.startManaged(tweak)
	bob.startManaged(tweak)
	ctx := context.Background()

	if _, err := bob.n.AddAlias(ctx, "bob-welcomes", nil, WithProofBits(8)); err != nil {
		t.Fatal(err)
	}
	ct, err := alice.n.RequestContact(ctx, "bob-welcomes")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.n.AddContactToGroup(ctx, ct.Group, "bob-welcomes", groupstate.RoleWrite); !errors.Is(err, ErrUnknownContact) {
		t.Fatalf("adding a contact who has not accepted: %v", err)
	}
	reqs := pollUntil(t, bob.n, 1)
	if _, err := bob.n.AcceptContact(ctx, reqs[0].ID); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 20*time.Second, func() bool {
		cs, _ := alice.n.Contacts()
		return len(cs) == 1 && cs[0].State == "connected"
	}, "alice sees bob connected")

	hosts := []string{hostAddr(groupHost)}
	// The immediate path: wait until alice holds an unused offer of bob's.
	add := func(gid string) *ContactAddResult {
		t.Helper()
		tu.Eventually(t, 20*time.Second, func() bool {
			alice.n.conn.mu.Lock()
			defer alice.n.conn.mu.Unlock()
			ct, err := alice.n.contact("bob")
			if err != nil {
				return false
			}
			_, err = alice.n.contactKeyPackage(ct)
			return err == nil
		}, "bob's key package reaches alice")
		res, err := alice.n.AddContactToGroup(ctx, gid, "bob", groupstate.RoleWrite)
		if err != nil || res.Queued != nil {
			t.Fatalf("add bob: %+v %v", res, err)
		}
		return res
	}
	gid := managedGroup(t, alice, "project", hosts, groupstate.DefaultPolicy())
	if res := add(gid); len(res.Events) == 0 || res.Delivered == 0 {
		t.Fatalf("add result %+v", res)
	}
	tu.Eventually(t, 30*time.Second, func() bool {
		info, err := bob.n.GroupInfo(gid)
		return err == nil && info.Role == "write" && len(info.Hosts) == 1 && info.Hosts[0] == hosts[0]
	}, "bob joins the group through the welcome sent over the connection group")
	bob.n.conn.mu.Lock()
	delivered := bob.n.conn.welcomes.delivered
	bob.n.conn.mu.Unlock()
	if delivered == 0 {
		t.Fatal("bob's node delivered no welcome envelope from the connection group")
	}
	if _, err := bob.n.Send(ctx, gid, "hello from bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.n.Send(ctx, gid, "welcome, bob"); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 30*time.Second, func() bool { return contains(texts(t, alice.n, gid), "hello from bob") }, "alice reads bob")
	tu.Eventually(t, 30*time.Second, func() bool { return contains(texts(t, bob.n, gid), "welcome, bob") }, "bob reads alice")

	// The key package is spent: a second group takes the fresh one bob's
	// node offers once it has joined.
	gid2 := managedGroup(t, alice, "second", hosts, groupstate.DefaultPolicy())
	add(gid2)
	tu.Eventually(t, 30*time.Second, func() bool { _, err := bob.n.GroupInfo(gid2); return err == nil }, "bob joins the second group")
}

func testWelcomeEnvelopes(t testing.TB, sizes ...int) []*envelope.Envelope {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	var out []*envelope.Envelope
	for _, n := range sizes {
		nonce := make([]byte, envelope.NonceSize)
		rand.Read(nonce)
		ct := make([]byte, n)
		rand.Read(ct)
		env, err := envelope.Seal(priv, nonce, ct, envelope.AbsoluteMaxSize)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, env)
	}
	return out
}

func TestContactWelcomeFrames(t *testing.T) {
	envs := testWelcomeEnvelopes(t, 500, 65000, 65000, 30000)
	texts, err := contactWelcomeTexts(envs)
	if err != nil {
		t.Fatal(err)
	}
	if len(texts) != 4 {
		t.Fatalf("%d frames", len(texts))
	}
	for _, tx := range texts {
		if len(tx) > groupstate.MaxBodyLen(64, 8) {
			t.Fatalf("frame text of %d bytes does not fit a message", len(tx))
		}
	}
	// Any order, with repeats and noise, reassembles; done welcomes are
	// skipped.
	mixed := append([]string{texts[3], "hello", texts[1], texts[0]}, texts[2], texts[1])
	got := reassembleContactWelcomes(mixed[:4], nil)
	if len(got) != 0 {
		t.Fatal("an incomplete welcome reassembled")
	}
	got = reassembleContactWelcomes([]string{texts[3], "hello", texts[1], texts[0], texts[2]}, nil)
	if len(got) != 1 {
		t.Fatalf("%d welcomes reassembled", len(got))
	}
	for tag, g := range got {
		if len(g) != len(envs) {
			t.Fatalf("%d envelopes", len(g))
		}
		for i := range g {
			if g[i].ID() != envs[i].ID() {
				t.Fatalf("envelope %d changed", i)
			}
		}
		if again := reassembleContactWelcomes(texts, map[[16]byte]bool{tag: true}); len(again) != 0 {
			t.Fatal("a done welcome reassembled again")
		}
	}
	if len(reassembleContactWelcomes(mixed, nil)) != 0 {
		t.Fatal("a welcome with a repeated frame reassembled")
	}

	// Too large for a connection group.
	big := make([]*envelope.Envelope, 0, 100)
	for range 100 {
		big = append(big, testWelcomeEnvelopes(t, 64<<10)...)
	}
	if _, err := contactWelcomeTexts(big); !errors.Is(err, ErrWelcomeTooLarge) {
		t.Fatalf("oversized welcome: %v", err)
	}
	if _, err := contactWelcomeTexts(nil); !errors.Is(err, ErrWelcomeTooLarge) {
		t.Fatalf("empty welcome: %v", err)
	}
}

func TestContactWelcomeRejects(t *testing.T) {
	one, err := contactWelcomeTexts(testWelcomeEnvelopes(t, 500))
	if err != nil {
		t.Fatal(err)
	}
	two, _ := contactWelcomeTexts(testWelcomeEnvelopes(t, 60000))
	frame := func(s string) []byte {
		b, err := contactB64.DecodeString(strings.TrimPrefix(s, ContactWelcomePrefix))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	enc := func(b []byte) string { return ContactWelcomePrefix + contactB64.EncodeToString(b) }
	mod := func(s string, f func([]byte) []byte) string { return enc(f(frame(s))) }
	for name, text := range map[string]string{
		"no prefix":       strings.TrimPrefix(one[0], ContactWelcomePrefix),
		"invite":          groupstate.InvitePrefix + "x",
		"bad base64":      ContactWelcomePrefix + "!!!!",
		"padded base64":   ContactWelcomePrefix + "AAAA==",
		"header only":     mod(one[0], func(b []byte) []byte { return b[:contactWelcomeHeader] }),
		"version":         mod(one[0], func(b []byte) []byte { b[0] = 2; return b }),
		"count 0":         mod(one[0], func(b []byte) []byte { binary.BigEndian.PutUint16(b[19:], 0); return b }),
		"index >= count":  mod(one[0], func(b []byte) []byte { binary.BigEndian.PutUint16(b[17:], 1); return b }),
		"too many parts":  mod(one[0], func(b []byte) []byte { binary.BigEndian.PutUint16(b[19:], MaxContactWelcomeParts+1); return b }),
		"short middle":    mod(two[0], func(b []byte) []byte { return b[:len(b)-1] }),
		"oversized chunk": mod(two[0], func(b []byte) []byte { return append(b, 0) }),
	} {
		if _, err := parseContactFrame(text); !errors.Is(err, ErrBadContactWelcome) {
			t.Errorf("frame %s: %v", name, err)
		}
	}

	envs := testWelcomeEnvelopes(t, 300, 400)
	good := binary.BigEndian.AppendUint16(nil, 2)
	for _, e := range envs {
		good = binary.BigEndian.AppendUint32(good, uint32(len(e.Bytes())))
		good = append(good, e.Bytes()...)
	}
	if got, err := parseContactWelcome(good); err != nil || len(got) != 2 {
		t.Fatalf("valid stream: %v", err)
	}
	smod := func(f func([]byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for name, stream := range map[string][]byte{
		"empty":            nil,
		"no envelopes":     {0, 0},
		"too many":         smod(func(b []byte) []byte { binary.BigEndian.PutUint16(b, groupstate.MaxWelcomeParts+1); return b }),
		"count too high":   smod(func(b []byte) []byte { binary.BigEndian.PutUint16(b, 3); return b }),
		"count too low":    smod(func(b []byte) []byte { binary.BigEndian.PutUint16(b, 1); return b }),
		"truncated":        good[:len(good)-1],
		"length past end":  smod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[2:], 1<<20); return b }),
		"bad signature":    smod(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }),
		"length cut short": good[:2+3],
		"absurd length":    smod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[2:], 0xffffffff); return b }),
		"garbage envelope": append(binary.BigEndian.AppendUint32([]byte{0, 1}, 5), "hello"...),
	} {
		if _, err := parseContactWelcome(stream); !errors.Is(err, ErrBadContactWelcome) {
			t.Errorf("stream %s: %v", name, err)
		}
	}
}

func FuzzContactWelcome(f *testing.F) {
	texts, _ := contactWelcomeTexts(testWelcomeEnvelopes(f, 200, 300))
	f.Add(texts[0], []byte(nil))
	envs := testWelcomeEnvelopes(f, 100)
	stream := binary.BigEndian.AppendUint16(nil, 1)
	stream = binary.BigEndian.AppendUint32(stream, uint32(len(envs[0].Bytes())))
	stream = append(stream, envs[0].Bytes()...)
	f.Add(ContactWelcomePrefix+"AQ", stream)
	f.Fuzz(func(t *testing.T, text string, stream []byte) {
		if fr, err := parseContactFrame(text); err == nil {
			if fr.count == 0 || fr.index >= fr.count || len(fr.chunk) == 0 || len(fr.chunk) > contactWelcomeChunk {
				t.Fatalf("accepted frame %d of %d with %d bytes", fr.index, fr.count, len(fr.chunk))
			}
		}
		if got, err := parseContactWelcome(stream); err == nil {
			if len(got) == 0 {
				t.Fatal("accepted an empty welcome")
			}
			for _, e := range got {
				if e.Verify() != nil {
					t.Fatal("accepted an envelope that does not verify")
				}
			}
		}
		_ = reassembleContactWelcomes([]string{text, text}, nil)
	})
}

// connectedPair connects alice and bob through bob's alias on dir and
// waits until alice sees bob connected.
func connectedPair(t *testing.T, dir *Node, alice, bob *person, alias string) {
	t.Helper()
	ctx := context.Background()
	if _, err := bob.n.AddAlias(ctx, alias, nil, WithProofBits(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.n.RequestContact(ctx, alias); err != nil {
		t.Fatal(err)
	}
	reqs := pollUntil(t, bob.n, 1)
	if _, err := bob.n.AcceptContact(ctx, reqs[0].ID); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 20*time.Second, func() bool {
		cs, _ := alice.n.Contacts()
		return len(cs) == 1 && cs[0].State == "connected"
	}, "alice sees bob connected")
}

// TestQueuedContactAdd: bob's node offers no key package (it has not been
// online with offers since the connection); alice's adds are queued,
// listed, deduplicated, cancellable and kept across a restart, and
// completed by alice's node once bob's node comes back and offers one.
// An add that can never complete is kept as failed with its reason.
func TestQueuedContactAdd(t *testing.T) {
	leakCheck(t)
	dir := directoryHost(t, "", nil)
	groupHost := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen})
	alice, bob := newPerson(t, "alice"), newPerson(t, "bob")
	tweak := func(offers bool) func(p *Params) {
		return func(p *Params) {
			p.Contacts.DirectoryHosts = []string{hostAddr(dir)}
			p.Contacts.PublishUserID = false
			p.Contacts.PollInterval = 300 * time.Millisecond
			p.Contacts.OfferKeyPackages = offers
		}
	}
	alice.startManaged(tweak(true))
	bob.startManaged(tweak(false))
	ctx := context.Background()
	connectedPair(t, dir, alice, bob, "bob-queued")

	hosts := []string{hostAddr(groupHost)}
	gid := managedGroup(t, alice, "queued", hosts, groupstate.DefaultPolicy())
	other := managedGroup(t, alice, "cancelled", hosts, groupstate.DefaultPolicy())
	left := managedGroup(t, alice, "left", hosts, groupstate.DefaultPolicy())
	res, err := alice.n.AddContactToGroup(ctx, gid, "bob", groupstate.RoleRead)
	if err != nil || res.Queued == nil {
		t.Fatalf("add without an offer: %+v %v", res, err)
	}
	q := res.Queued
	if q.Group != gid || q.Role != "read" || q.State != ContactAddWaiting || q.Fingerprint != bob.id.Fingerprint() || q.GroupName != "queued" {
		t.Fatalf("queued add %+v", q)
	}
	// Again with another role: the same queued add, updated.
	if res, err := alice.n.AddContactToGroup(ctx, gid, "bob", groupstate.RoleWrite); err != nil || res.Queued == nil || res.Queued.ID != q.ID || res.Queued.Role != "write" {
		t.Fatalf("queued twice: %+v %v", res, err)
	}
	res, err = alice.n.AddContactToGroup(ctx, other, "bob", groupstate.RoleWrite)
	if err != nil || res.Queued == nil {
		t.Fatalf("second queued add: %+v %v", res, err)
	}
	if err := alice.n.CancelContactAdd(res.Queued.ID); err != nil {
		t.Fatal(err)
	}
	if err := alice.n.CancelContactAdd(res.Queued.ID); !errors.Is(err, ErrUnknownContactAdd) {
		t.Fatalf("cancelling twice: %v", err)
	}
	if _, err := alice.n.AddContactToGroup(ctx, left, "bob", groupstate.RoleWrite); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.n.LeaveGroup(ctx, left); err != nil {
		t.Fatalf("leave: %v", err)
	}
	if _, err := alice.n.AddContactToGroup(ctx, "no-such-group", "bob", groupstate.RoleWrite); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("queueing for an unknown group: %v", err)
	}

	// Persisted: alice's node restarts with both adds queued.
	alice.stop()
	alice.startManaged(tweak(true))
	ps, err := alice.n.PendingContactAdds()
	if err != nil || len(ps) != 2 || ps[0].ID != q.ID || ps[0].Role != "write" || ps[1].Group != left {
		t.Fatalf("queued adds after a restart: %+v %v", ps, err)
	}
	if _, err := bob.n.GroupInfo(gid); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("bob in the group before offering: %v", err)
	}

	// Bob's node comes back offering key packages: alice's node adds him.
	bob.stop()
	bob.startManaged(tweak(true))
	tu.Eventually(t, 30*time.Second, func() bool {
		info, err := bob.n.GroupInfo(gid)
		return err == nil && info.Role == "write"
	}, "bob joins through the queued add")
	tu.Eventually(t, 20*time.Second, func() bool {
		ps, err := alice.n.PendingContactAdds()
		return err == nil && len(ps) == 1 && ps[0].Group == left && ps[0].State == ContactAddFailed && ps[0].LastError != ""
	}, "the add to the group alice left is kept as failed")
	if _, err := bob.n.GroupInfo(other); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("the cancelled add happened: %v", err)
	}
}

// TestReplacedOffersPruned: an offer replaced because half its validity
// is gone is still watched for a welcome during replacedOfferGrace, then
// forgotten while the node runs (it used to linger as a pending key
// package, with its welcome mailbox hosted and fetched, until its grace
// period ended and the node restarted); key packages past their grace
// are forgotten at runtime too.
func TestReplacedOffersPruned(t *testing.T) {
	leakCheck(t)
	dir := directoryHost(t, "", nil)
	alice, bob := newPerson(t, "alice"), newPerson(t, "bob")
	tweak := func(p *Params) {
		p.Contacts.DirectoryHosts = []string{hostAddr(dir)}
		p.Contacts.PublishUserID = false
		p.Contacts.PollInterval = 300 * time.Millisecond
	}
	alice.startManaged(tweak)
	bob.startManaged(tweak)
	connectedPair(t, dir, alice, bob, "bob-offers")
	cts, err := bob.n.Contacts()
	if err != nil || len(cts) != 1 {
		t.Fatalf("bob's contacts %+v %v", cts, err)
	}
	gid, _ := groupstate.ParseGroupID(cts[0].Group)
	offer := func() *offerRec {
		t.Helper()
		b, err := bob.n.member.db.get(dkey(dOffer, gid[:]))
		if err != nil || b == nil {
			return nil
		}
		rec, err := decodeOfferRec(b)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	setOffer := func(rec *offerRec) {
		t.Helper()
		b, _ := json.Marshal(rec)
		if err := bob.n.member.db.db.Update(func(txn *badger.Txn) error { return txn.Set(dkey(dOffer, gid[:]), b) }); err != nil {
			t.Fatal(err)
		}
	}
	pending := func() int { kps, _ := bob.n.KeyPackages(); return len(kps) }
	tu.Eventually(t, 20*time.Second, func() bool { return offer() != nil && pending() == 1 }, "bob offers a key package")
	first := offer()

	// Half its validity gone: replaced, the old one still watched.
	first.Expires = time.Now().Add(time.Hour)
	setOffer(first)
	tu.Eventually(t, 20*time.Second, func() bool { o := offer(); return o.Hash != first.Hash && len(o.Replaced) == 1 }, "the offer is replaced")
	if n := pending(); n != 2 {
		t.Fatalf("%d pending key packages during the grace", n)
	}
	// Alice's node uses only bob's newest offer: once that one is used, the
	// replaced one (which bob's node forgets after the grace) is not taken.
	newest := offer()
	alice.n.conn.mu.Lock()
	act, err := alice.n.contact("bob")
	if err != nil {
		t.Fatal(err)
	}
	alice.n.conn.mu.Unlock()
	var got *keymgmt.KeyPackage
	tu.Eventually(t, 20*time.Second, func() bool {
		alice.n.conn.mu.Lock()
		defer alice.n.conn.mu.Unlock()
		got, _ = alice.n.contactKeyPackage(act)
		if got == nil {
			return false
		}
		h := sha256.Sum256(got.Marshal())
		return hex.EncodeToString(h[:]) == newest.Hash
	}, "alice holds bob's newest offer")
	h := sha256.Sum256(got.Marshal())
	if err := alice.n.member.db.db.Update(func(txn *badger.Txn) error { return txn.Set(dkey(dUsedKP, h[:]), u64(1)) }); err != nil {
		t.Fatal(err)
	}
	alice.n.conn.mu.Lock()
	stale, err := alice.n.contactKeyPackage(act)
	alice.n.conn.mu.Unlock()
	if !errors.Is(err, ErrNoContactKeyPackage) {
		t.Fatalf("with the newest offer used, alice's node took %v (%v)", stale, err)
	}
	// Grace over: forgotten at the next pass, mailbox and all.
	o := offer()
	o.Replaced[0].At = time.Now().Add(-replacedOfferGrace - time.Minute)
	setOffer(o)
	var oldHash [32]byte
	hb, _ := hexDecode(first.Hash)
	copy(oldHash[:], hb)
	tu.Eventually(t, 20*time.Second, func() bool { return pending() == 1 && len(offer().Replaced) == 0 }, "the replaced offer is forgotten")
	if v, _ := bob.n.member.db.get(append([]byte{pfxKeyPackage}, oldHash[:]...)); v != nil {
		t.Fatal("the replaced key package's record was kept")
	}

	// Past its grace period, a key package goes while the node runs.
	kps, _ := bob.n.KeyPackages()
	if got, err := bob.n.pruneKeyPackages(kps[0].Expires.Add(keyPackageGrace + time.Minute)); err != nil || got != 1 || pending() != 0 {
		t.Fatalf("runtime prune: %d %v, %d left", got, err, pending())
	}
}
