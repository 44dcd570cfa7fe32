package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/contacts"
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

	if _, err := bob.n.AddAlias(ctx, "bob-welcomes", nil, contacts.WithProofBits(8)); err != nil {
		t.Fatal(err)
	}
	ct, err := alice.n.RequestContact(ctx, "bob-welcomes")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.n.AddContactToGroup(ctx, ct.Group, "bob-welcomes", groupstate.RoleWrite); !errors.Is(err, contacts.ErrUnknownContact) {
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

// connectedPair connects alice and bob through bob's alias on dir and
// waits until alice sees bob connected.
func connectedPair(t *testing.T, dir *Node, alice, bob *person, alias string) {
	t.Helper()
	ctx := context.Background()
	if _, err := bob.n.AddAlias(ctx, alias, nil, contacts.WithProofBits(0)); err != nil {
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
	if q.Group != gid || q.Role != "read" || q.State != contacts.AddWaiting || q.Fingerprint != bob.id.Fingerprint() || q.GroupName != "queued" {
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
	if err := alice.n.CancelContactAdd(res.Queued.ID); !errors.Is(err, contacts.ErrUnknownContactAdd) {
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
		return err == nil && len(ps) == 1 && ps[0].Group == left && ps[0].State == contacts.AddFailed && ps[0].LastError != ""
	}, "the add to the group alice left is kept as failed")
	if _, err := bob.n.GroupInfo(other); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("the cancelled add happened: %v", err)
	}
}

// TestReplacedOffersPruned: an offer replaced because half its validity
// is gone is still watched for a welcome during contacts.ReplacedOfferGrace, then
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
	offer := func() *contacts.OfferRec {
		t.Helper()
		b, err := bob.n.member.db.get(contacts.Key(contacts.KeyOffer, gid[:]))
		if err != nil || b == nil {
			return nil
		}
		rec, err := contacts.DecodeOfferRec(b)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	setOffer := func(rec *contacts.OfferRec) {
		t.Helper()
		b, _ := json.Marshal(rec)
		if err := bob.n.member.db.db.Update(func(txn *badger.Txn) error { return txn.Set(contacts.Key(contacts.KeyOffer, gid[:]), b) }); err != nil {
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
	if err := alice.n.member.db.db.Update(func(txn *badger.Txn) error { return txn.Set(contacts.Key(contacts.KeyUsedKP, h[:]), u64(1)) }); err != nil {
		t.Fatal(err)
	}
	alice.n.conn.mu.Lock()
	stale, err := alice.n.contactKeyPackage(act)
	alice.n.conn.mu.Unlock()
	if !errors.Is(err, contacts.ErrNoContactKeyPackage) {
		t.Fatalf("with the newest offer used, alice's node took %v (%v)", stale, err)
	}
	// Grace over: forgotten at the next pass, mailbox and all.
	o := offer()
	o.Replaced[0].At = time.Now().Add(-contacts.ReplacedOfferGrace - time.Minute)
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
