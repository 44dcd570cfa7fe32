package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/meshnode/meshnode/contacts"
	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
)

// TestRequestProofOfWork: bob's alias asks for a proof of work. Requests
// without one, with a wrong one or with the proof of another request are
// dropped unopened and unanswered, and counted; a valid request replayed
// in fresh envelopes is dropped before it is opened again; alice's
// request (her node solves the proof) reaches the quarantine.
func TestRequestProofOfWork(t *testing.T) {
	host := directoryHost(t, "", nil)
	alice, bob, mallory := newPerson(t, "alice"), newPerson(t, "bob"), newPerson(t, "mallory")
	alice.startWithDirectory(hostAddr(host))
	bob.startWithDirectory(hostAddr(host))
	mallory.startWithDirectory(hostAddr(host))
	ctx := context.Background()

	// The default is DefaultAliasProofBits; out-of-range difficulties are
	// refused before anything is published.
	if _, err := bob.n.AddAlias(ctx, "bob-too-hard", nil, contacts.WithProofBits(keymgmt.MaxProofBits+1)); !errors.Is(err, keymgmt.ErrInvalidParams) {
		t.Fatalf("too hard: %v", err)
	}
	def, err := bob.n.AddAlias(ctx, "bob-default", nil)
	if err != nil {
		t.Fatal(err)
	}
	if def.ProofBits != keymgmt.DefaultAliasProofBits {
		t.Fatalf("default alias asks for %d bits", def.ProofBits)
	}
	const bits = 10
	info, err := bob.n.AddAlias(ctx, "bob-pow", nil, contacts.WithProofBits(bits))
	if err != nil {
		t.Fatal(err)
	}
	if info.ProofBits != bits || info.DroppedNoProof != 0 {
		t.Fatalf("alias %+v", info)
	}
	name, _ := keymgmt.ParseAlias("bob-pow")
	mallory.n.Host().Peerstore().AddAddrs(host.ID(), host.Host().Addrs(), time.Hour)
	pkg, err := mallory.n.fetchPackage(ctx, host.ID(), name)
	if err != nil {
		t.Fatal(err)
	}
	if pkg.ProofBits != bits {
		t.Fatalf("published package asks for %d bits", pkg.ProofBits)
	}
	post := func(ct []byte) { t.Helper(); postSealed(t, mallory.n, host.ID(), pkg, ct) }
	invite := func(n *Node) string {
		g, inv, err := n.CreateGroup(ctx, "connection", []string{hostAddr(host)})
		if err != nil || g == nil {
			t.Fatal(err)
		}
		return inv
	}
	est, err := mallory.id.NewEstablishment(pkg, "mallory", invite(mallory.n), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Missing: sealed as if the package asked for nothing.
	free := *pkg
	free.ProofBits = 0
	noProof, err := keymgmt.SealRequest(ctx, &free, est)
	if err != nil {
		t.Fatal(err)
	}
	// Wrong: a valid request whose nonce is changed until it fails.
	valid, err := keymgmt.SealRequest(ctx, pkg, est)
	if err != nil {
		t.Fatal(err)
	}
	wrong := bytes.Clone(valid)
	for i := 0; ; i++ {
		wrong[17+i%8]++
		if _, err := keymgmt.CheckRequestProof(wrong, pkg.Mailbox(), bits); errors.Is(err, keymgmt.ErrBadProof) {
			break
		}
	}
	// For another package: a proof solved for a request to another of
	// bob's packages (same mailbox), moved onto this one.
	other, err := mallory.n.fetchPackage(ctx, host.ID(), name)
	if err != nil {
		t.Fatal(err)
	}
	var moved []byte
	for moved == nil {
		est2, _ := mallory.id.NewEstablishment(other, "mallory", "meshnode-invite-v1.x", time.Now())
		forOther, err := keymgmt.SealRequest(ctx, other, est2)
		if err != nil {
			t.Fatal(err)
		}
		try := bytes.Clone(valid)
		copy(try[17:25], forOther[17:25])
		if _, err := keymgmt.CheckRequestProof(try, pkg.Mailbox(), bits); errors.Is(err, keymgmt.ErrBadProof) {
			moved = try
		}
	}
	for _, ct := range [][]byte{noProof, wrong, moved} {
		post(ct)
	}
	if got, err := bob.n.PollRequests(ctx); err != nil || got != 0 {
		t.Fatalf("requests without a valid proof quarantined: %d %v", got, err)
	}
	if as, _ := bob.n.Aliases(); len(as) != 2 || as[1].Name != "bob-pow" || as[1].DroppedNoProof != 3 || as[0].DroppedNoProof != 0 {
		t.Fatalf("drop counts: %+v", as)
	}

	// Mallory's valid request counts once, however often it is replayed.
	post(valid)
	post(valid)
	reqs := pollUntil(t, bob.n, 1)
	if len(reqs) != 1 || reqs[0].Fingerprint != mallory.id.Fingerprint() {
		t.Fatalf("quarantine: %+v", reqs)
	}
	post(valid)
	if got, err := bob.n.PollRequests(ctx); err != nil || got != 0 {
		t.Fatalf("replayed request quarantined: %d %v", got, err)
	}

	// Alice's node solves the proof itself.
	if _, err := alice.n.RequestContact(ctx, "bob-pow"); err != nil {
		t.Fatal(err)
	}
	reqs = pollUntil(t, bob.n, 2)
	if len(reqs) != 2 || reqs[1].Fingerprint != alice.id.Fingerprint() || reqs[1].Via != "bob-pow" {
		t.Fatalf("quarantine: %+v", reqs)
	}
}

// postedRequest fetches a package of alias from host as from and returns
// a valid request envelope to it, with an invite to a group of from's.
func postedRequest(t *testing.T, host *Node, from *person, alias string) (*envelope.Envelope, *keymgmt.ConnPackage) {
	t.Helper()
	ctx := context.Background()
	name, _ := keymgmt.ParseAlias(alias)
	from.n.Host().Peerstore().AddAddrs(host.ID(), host.Host().Addrs(), time.Hour)
	pkg, err := from.n.fetchPackage(ctx, host.ID(), name)
	if err != nil {
		t.Fatal(err)
	}
	_, inv, err := from.n.CreateGroup(ctx, "connection", []string{hostAddr(host)})
	if err != nil {
		t.Fatal(err)
	}
	est, err := from.id.NewEstablishment(pkg, from.nick, inv, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ct, err := keymgmt.SealRequest(ctx, pkg, est)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, envelope.NonceSize)
	rand.Read(nonce)
	env, err := envelope.Seal(pkg.MailboxKey(), nonce, ct, 0)
	if err != nil {
		t.Fatal(err)
	}
	return env, pkg
}

// TestRequestSurvivesDatabaseError: a database failure while a request
// is being decided loses nothing — its proof of work is not spent, so the
// next poll reads it again and quarantines it. (The proof digest used to
// be recorded before the request was opened, so the retry was dropped as
// a replay.)
func TestRequestSurvivesDatabaseError(t *testing.T) {
	host := directoryHost(t, "", nil)
	alice, bob := newPerson(t, "alice"), newPerson(t, "bob")
	alice.startWithDirectory(hostAddr(host))
	bob.startWithDirectory(hostAddr(host))
	if _, err := bob.n.AddAlias(context.Background(), "bob-db", nil, contacts.WithProofBits(4)); err != nil {
		t.Fatal(err)
	}
	env, pkg := postedRequest(t, host, alice, "bob-db")
	// A damaged contact record makes the quarantine fail after the open.
	bad := contacts.Key(contacts.KeyContact, bytes.Repeat([]byte{9}, 16))
	db := bob.n.member.db.db
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(bad, []byte("{")) }); err != nil {
		t.Fatal(err)
	}
	quarantine := func() (bool, error) {
		bob.n.conn.mu.Lock()
		defer bob.n.conn.mu.Unlock()
		return bob.n.quarantine(env, pkg.Mailbox())
	}
	if ok, err := quarantine(); ok || !errors.Is(err, contacts.ErrCorrupt) {
		t.Fatalf("with a damaged record: %v %v", ok, err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Delete(bad) }); err != nil {
		t.Fatal(err)
	}
	if ok, err := quarantine(); !ok || err != nil {
		t.Fatalf("read again once the record is repaired: %v %v", ok, err)
	}
	if ok, err := quarantine(); ok || err != nil {
		t.Fatalf("a third read: %v %v", ok, err)
	}
	if reqs, _ := bob.n.ContactRequests(); len(reqs) != 1 || reqs[0].Fingerprint != alice.id.Fingerprint() {
		t.Fatalf("quarantine: %+v", reqs)
	}
}

// TestPruneContacts: requests left unanswered for MaxRequestAge leave the
// quarantine (so strangers cannot fill it for good), and the cursors of
// request mailboxes no name lists any more are forgotten.
func TestPruneContacts(t *testing.T) {
	host := directoryHost(t, "", nil)
	bob := newPerson(t, "bob")
	bob.startWithDirectory(hostAddr(host))
	if _, err := bob.n.AddAlias(context.Background(), "bob-prune", nil, contacts.WithProofBits(0)); err != nil {
		t.Fatal(err)
	}
	age := bob.n.params.Contacts.MaxRequestAge
	put := func(k []byte, v any) {
		t.Helper()
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := bob.n.member.db.db.Update(func(txn *badger.Txn) error { return txn.Set(k, b) }); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC()
	put(contacts.Key(contacts.KeyRequest, []byte("old")), &contacts.RequestRec{ID: "old", Nick: "spam", Received: now.Add(-age - time.Hour)})
	put(contacts.Key(contacts.KeyRequest, []byte("new")), &contacts.RequestRec{ID: "new", Nick: "friend", Received: now.Add(-age + time.Hour)})
	recs, err := bob.n.cstore.Names()
	if err != nil || len(recs) != 1 || len(recs[0].Mailboxes) == 0 {
		t.Fatalf("names %+v %v", recs, err)
	}
	liveMB := keymgmt.RequestMailbox(recs[0].Mailboxes[0].MailboxSeed())
	var gone envelope.MailboxID
	rand.Read(gone[:])
	liveKey := contacts.Key(contacts.KeyCursor, []byte(host.ID().String()+"/"+liveMB.String()))
	goneKey := contacts.Key(contacts.KeyCursor, []byte(host.ID().String()+"/"+gone.String()))
	put(liveKey, "cursor")
	put(goneKey, "cursor")

	bob.n.pruneContacts()
	reqs, err := bob.n.ContactRequests()
	if err != nil || len(reqs) != 1 || reqs[0].ID != "new" {
		t.Fatalf("quarantine after pruning: %+v %v", reqs, err)
	}
	if v, _ := bob.n.member.db.get(liveKey); v == nil {
		t.Fatal("the cursor of a live request mailbox was pruned")
	}
	if v, _ := bob.n.member.db.get(goneKey); v != nil {
		t.Fatal("the cursor of a forgotten request mailbox was kept")
	}
}

// TestSetAliasProofBits: an alias's difficulty changes in place; the
// packages hosts hand out ask for the new one, and raising it applies to
// packages handed out before (a request solved for the old difficulty is
// dropped), lowering it does not weaken those.
func TestSetAliasProofBits(t *testing.T) {
	host := directoryHost(t, "", nil)
	alice, bob := newPerson(t, "alice"), newPerson(t, "bob")
	alice.startWithDirectory(hostAddr(host))
	bob.startWithDirectory(hostAddr(host))
	ctx := context.Background()
	if _, err := bob.n.AddAlias(ctx, "bob-pow2", nil, contacts.WithProofBits(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.n.SetAliasProofBits(ctx, "nobody-here", 4); !errors.Is(err, contacts.ErrUnknownAlias) {
		t.Fatalf("unknown alias: %v", err)
	}
	if _, err := bob.n.SetAliasProofBits(ctx, "bob-pow2", keymgmt.MaxProofBits+1); !errors.Is(err, keymgmt.ErrInvalidParams) {
		t.Fatalf("too hard: %v", err)
	}
	// A request made with a package handed out before the change.
	early, pkg := postedRequest(t, host, alice, "bob-pow2")
	if pkg.ProofBits != 0 {
		t.Fatalf("package asks for %d bits", pkg.ProofBits)
	}
	info, err := bob.n.SetAliasProofBits(ctx, "bob-pow2", 6)
	if err != nil || info.ProofBits != 6 {
		t.Fatalf("raise: %+v %v", info, err)
	}
	if as, _ := bob.n.Aliases(); len(as) != 1 || as[0].ProofBits != 6 {
		t.Fatalf("aliases %+v", as)
	}
	name, _ := keymgmt.ParseAlias("bob-pow2")
	fresh, err := alice.n.fetchPackage(ctx, host.ID(), name)
	if err != nil || fresh.ProofBits != 6 {
		t.Fatalf("package handed out after the change: %+v %v", fresh, err)
	}
	bob.n.conn.mu.Lock()
	ok, err := bob.n.quarantine(early, pkg.Mailbox())
	bob.n.conn.mu.Unlock()
	if ok || err != nil {
		t.Fatalf("request without a proof through an older package: %v %v", ok, err)
	}
	// Lowering: new packages ask for less, older ones keep theirs.
	if info, err := bob.n.SetAliasProofBits(ctx, "bob-pow2", 2); err != nil || info.ProofBits != 2 {
		t.Fatalf("lower: %+v %v", info, err)
	}
	if p, err := alice.n.fetchPackage(ctx, host.ID(), name); err != nil || p.ProofBits != 2 {
		t.Fatalf("package after lowering: %+v %v", p, err)
	}
	b, err := bob.n.member.db.get(contacts.Key(contacts.KeySecret, func() []byte { id := fresh.KeyID(); return id[:] }()))
	if err != nil || b == nil {
		t.Fatalf("secret of the package handed out at 6 bits: %v", err)
	}
	if s, _, err := contacts.DecodeSecretRec(b); err != nil || s.ProofBits != 6 {
		t.Fatalf("secret of the 6-bit package: %+v %v", s, err)
	}
}

// TestConcurrentPolls: the contacts loop and the API poll at the same
// time; each request is still opened once (without serialising the
// polls, both read the same pages from the same cursor and the second
// opened every request again and counted it as a replay).
func TestConcurrentPolls(t *testing.T) {
	host := directoryHost(t, "", nil)
	bob := newPerson(t, "bob")
	params := DefaultParams(RoleMember)
	params.Contacts.DirectoryHosts = []string{hostAddr(host)}
	params.Contacts.PublishUserID = false
	params.Contacts.PollInterval = time.Hour // only the polls below
	reg := prometheus.NewRegistry()
	n, err := New(context.Background(), params, WithLogger(quiet), WithRegisterer(reg),
		WithDataDir(filepath.Join(bob.dir, "data")),
		WithIdentity(bob.id, bob.nick), WithMemberDB(filepath.Join(bob.dir, "member"), bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	bob.n = n
	ctx := context.Background()
	if _, err := n.AddAlias(ctx, "bob-polls", nil, contacts.WithProofBits(0)); err != nil {
		t.Fatal(err)
	}
	mallory := newPerson(t, "mallory")
	mallory.startWithDirectory(hostAddr(host))
	name, _ := keymgmt.ParseAlias("bob-polls")
	mallory.n.Host().Peerstore().AddAddrs(host.ID(), host.Host().Addrs(), time.Hour)
	pkg, err := mallory.n.fetchPackage(ctx, host.ID(), name)
	if err != nil {
		t.Fatal(err)
	}
	g, err := groupstate.NewGroup("connection", []string{hostAddr(host)})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := groupstate.NewInvite(g, true)
	if err != nil {
		t.Fatal(err)
	}
	const requests = 30
	for range requests {
		// One identity each: every request is a new one in quarantine.
		id, err := keymgmt.NewIdentity(keymgmt.SuiteX25519)
		if err != nil {
			t.Fatal(err)
		}
		postRequest(t, mallory.n, host.ID(), pkg, id, "someone", inv)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := n.PollRequests(ctx)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			total += got
			mu.Unlock()
		}()
	}
	wg.Wait()
	if total != requests {
		t.Fatalf("%d requests quarantined, want %d", total, requests)
	}
	var replayed dto.Metric
	if err := n.conn.dropped.WithLabelValues(requestDropReplayed).Write(&replayed); err != nil {
		t.Fatal(err)
	}
	if v := replayed.GetCounter().GetValue(); v != 0 {
		t.Fatalf("%v requests opened twice and dropped as replays", v)
	}
}

// A request whose invite names a host the alias is not published on is
// dropped unanswered: joining it on accept would show that host (the
// initiator's own, perhaps) the responder's address. The same request with
// the connection group on the directory host is quarantined.
func TestRequestInviteOnForeignHost(t *testing.T) {
	host := directoryHost(t, "", nil)
	foreign := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen})
	bob, mallory := newPerson(t, "bob"), newPerson(t, "mallory")
	bob.startWithDirectory(hostAddr(host))
	mallory.startWithDirectory(hostAddr(host))
	ctx := context.Background()
	if _, err := bob.n.AddAlias(ctx, "bob-hosts", nil, contacts.WithProofBits(0)); err != nil {
		t.Fatal(err)
	}
	name, _ := keymgmt.ParseAlias("bob-hosts")
	mallory.n.Host().Peerstore().AddAddrs(host.ID(), host.Host().Addrs(), time.Hour)
	send := func(on *Node) {
		t.Helper()
		pkg, err := mallory.n.fetchPackage(ctx, host.ID(), name)
		if err != nil {
			t.Fatal(err)
		}
		_, inv, err := mallory.n.CreateGroup(ctx, "connection", []string{hostAddr(on)})
		if err != nil {
			t.Fatal(err)
		}
		postRequest(t, mallory.n, host.ID(), pkg, mallory.id, "mallory", inv)
	}
	send(foreign)
	if got, err := bob.n.PollRequests(ctx); err != nil || got != 0 {
		t.Fatalf("a request with its invite on a foreign host was quarantined: %d %v", got, err)
	}
	send(host)
	reqs := pollUntil(t, bob.n, 1)
	if len(reqs) != 1 || reqs[0].Fingerprint != mallory.id.Fingerprint() {
		t.Fatalf("requests %+v", reqs)
	}
}

// postRequest seals an establishment of id (with nick and invite) to pkg
// and relays it through n to the package's request mailbox on host.
func postRequest(t *testing.T, n *Node, host peer.ID, pkg *keymgmt.ConnPackage, id *keymgmt.Identity, nick, invite string) {
	t.Helper()
	est, err := id.NewEstablishment(pkg, nick, invite, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ct, err := keymgmt.SealRequest(context.Background(), pkg, est)
	if err != nil {
		t.Fatal(err)
	}
	postSealed(t, n, host, pkg, ct)
}

// postSealed relays a sealed request through n to pkg's request mailbox
// on host, in a fresh envelope.
func postSealed(t *testing.T, n *Node, host peer.ID, pkg *keymgmt.ConnPackage, ct []byte) {
	t.Helper()
	nonce := make([]byte, envelope.NonceSize)
	rand.Read(nonce)
	env, err := envelope.Seal(pkg.MailboxKey(), nonce, ct, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Remote(host).RelayMessageToGroup(context.Background(), pkg.Mailbox(), env); err != nil {
		t.Fatal(err)
	}
}
