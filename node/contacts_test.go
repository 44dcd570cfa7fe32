package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshnode/meshnode/contacts"
	"github.com/meshnode/meshnode/directory"
	"github.com/meshnode/meshnode/envelope"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/keymgmt"
)

// startWithDirectory runs p's node with the given directory hosts.
func (p *person) startWithDirectory(hosts ...string) *Node {
	p.t.Helper()
	params := DefaultParams(RoleMember)
	params.ProcessInterval = 200 * time.Millisecond
	params.Contacts.DirectoryHosts = hosts
	params.Contacts.PublishUserID = false
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

func directoryHost(t *testing.T, dir string, tweak func(*Params)) *Node {
	t.Helper()
	return startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen, dir: dir, tweak: tweak})
}

func pollUntil(t *testing.T, n *Node, want int) []contacts.ContactRequest {
	t.Helper()
	var reqs []contacts.ContactRequest
	tu.Eventually(t, 10*time.Second, func() bool {
		if _, err := n.PollRequests(context.Background()); err != nil {
			t.Logf("poll: %v", err)
		}
		var err error
		reqs, err = n.ContactRequests()
		return err == nil && len(reqs) >= want
	}, "%d contact requests", want)
	return reqs
}

func TestContactByAlias(t *testing.T) {
	leakCheck(t)
	hostDir := t.TempDir()
	host := directoryHost(t, hostDir, nil)
	const alias = "bob.the-builder_7731"
	const aliceNick, bobNick = "alice-in-wonderland", "bob-the-builder"
	alice, bob := newPerson(t, aliceNick), newPerson(t, bobNick)
	alice.startWithDirectory(hostAddr(host))
	bob.startWithDirectory(hostAddr(host))
	ctx := context.Background()

	info, err := bob.n.AddAlias(ctx, "  Bob.The-Builder_7731 ", nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != alias || info.Published != 1 {
		t.Fatalf("alias %+v", info)
	}
	if _, err := bob.n.AddAlias(ctx, alias, nil); !errors.Is(err, contacts.ErrAliasExists) {
		t.Fatalf("adding twice: %v", err)
	}
	if list, _ := bob.n.Aliases(); len(list) != 1 || list[0].Name != alias {
		t.Fatalf("alias list %+v", list)
	}

	ct, err := alice.n.RequestContact(ctx, alias)
	if err != nil {
		t.Fatal(err)
	}
	if ct.State != "pending" || !ct.Initiated || ct.Via != alias {
		t.Fatalf("alice's contact %+v", ct)
	}
	// Alice can already post to the connection group; bob must see none
	// of it before accepting.
	if _, err := alice.n.Send(ctx, ct.Group, "early bird"); err != nil {
		t.Fatal(err)
	}

	reqs := pollUntil(t, bob.n, 1)
	if len(reqs) != 1 || reqs[0].Nick != aliceNick || reqs[0].Fingerprint != alice.id.Fingerprint() || reqs[0].Via != alias {
		t.Fatalf("bob's quarantine: %+v", reqs)
	}
	// Before acceptance: no group, no contact, no message of alice's.
	if gs, _ := bob.n.Groups(); len(gs) != 0 {
		t.Fatalf("bob has groups before accepting: %+v", gs)
	}
	if cs, _ := bob.n.Contacts(); len(cs) != 0 {
		t.Fatalf("bob has contacts before accepting: %+v", cs)
	}
	if _, err := bob.n.Messages(ct.Group, 0); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("bob reads the connection group before accepting: %v", err)
	}
	// Polling again finds nothing new.
	if got, err := bob.n.PollRequests(ctx); err != nil || got != 0 {
		t.Fatalf("second poll: %d %v", got, err)
	}

	bct, err := bob.n.AcceptContact(ctx, reqs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if bct.Fingerprint != alice.id.Fingerprint() || bct.Group != ct.Group {
		t.Fatalf("bob's contact %+v", bct)
	}
	if reqs, _ := bob.n.ContactRequests(); len(reqs) != 0 {
		t.Fatalf("request still quarantined after accepting: %+v", reqs)
	}
	tu.Eventually(t, 20*time.Second, func() bool {
		cs, _ := alice.n.Contacts()
		return len(cs) == 1 && cs[0].State == "connected" && cs[0].Fingerprint == bob.id.Fingerprint() && cs[0].Nick == bobNick
	}, "alice sees bob connected")
	tu.Eventually(t, 20*time.Second, func() bool {
		cs, _ := bob.n.Contacts()
		return len(cs) == 1 && cs[0].State == "connected" && cs[0].Nick == aliceNick
	}, "bob sees alice connected")

	if _, err := bob.n.Send(ctx, bct.Group, "hi alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.n.Send(ctx, ct.Group, "hi bob"); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 20*time.Second, func() bool { return contains(texts(t, alice.n, ct.Group), "hi alice") }, "alice reads bob")
	tu.Eventually(t, 20*time.Second, func() bool { return contains(texts(t, bob.n, ct.Group), "hi bob") }, "bob reads alice")

	// Invites to other groups travel over the connection group.
	_, _, err = bob.n.CreateGroup(ctx, "workshop", []string{hostAddr(host)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.n.SendInvite(ctx, aliceNick, "workshop"); err != nil {
		t.Fatal(err)
	}
	var invites []string
	tu.Eventually(t, 20*time.Second, func() bool {
		invites, _ = alice.n.ContactInvites(bobNick)
		return len(invites) == 1
	}, "alice receives bob's invite")
	if _, err := alice.n.JoinGroup(ctx, invites[0], ""); err != nil {
		t.Fatal(err)
	}

	// The host's data: no alias, nick, identity or group in clear.
	n := host
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	gid := ct.Group
	secrets := map[string][]byte{
		"alias":            []byte(alias),
		"alice's nick":     []byte(aliceNick),
		"bob's nick":       []byte(bobNick),
		"alice's key":      alice.id.SigningKey(),
		"bob's key":        bob.id.SigningKey(),
		"alice's HPKE key": alice.id.Public().HPKEPub,
		"bob's HPKE key":   bob.id.Public().HPKEPub,
		"alice's user ID":  []byte(alice.id.Fingerprint()),
		"bob's user ID":    []byte(bob.id.Fingerprint()),
		"connection group": []byte(gid),
		"group name":       []byte("contact " + alias),
		"connection group ID": func() []byte {
			b, _ := hexDecode(gid)
			return b
		}(),
	}
	scanned := 0
	err = filepath.Walk(hostDir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		scanned += len(b)
		for what, s := range secrets {
			if bytes.Contains(b, s) {
				t.Errorf("host file %s contains %s", path, what)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scanned == 0 {
		t.Fatal("host data directory is empty: the scan checked nothing")
	}
	if _, err := os.Stat(filepath.Join(hostDir, "directory")); err != nil {
		t.Fatalf("directory database not on disk: %v", err)
	}
}

func hexDecode(s string) ([]byte, error) {
	b := make([]byte, len(s)/2)
	for i := range b {
		var v byte
		for _, c := range []byte(s[2*i : 2*i+2]) {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= c - '0'
			case c >= 'a' && c <= 'f':
				v |= c - 'a' + 10
			default:
				return nil, errors.New("not hex")
			}
		}
		b[i] = v
	}
	return b, nil
}

func TestContactRequestErrors(t *testing.T) {
	host := directoryHost(t, "", nil)
	alice, bob := newPerson(t, "alice"), newPerson(t, "bob")
	alice.startWithDirectory(hostAddr(host))
	bob.startWithDirectory(hostAddr(host))
	ctx := context.Background()
	cl := directory.NewClient(alice.n.Host(), 5*time.Second)
	hid := host.ID()
	alice.n.Host().Peerstore().AddAddrs(hid, host.Host().Addrs(), time.Hour)

	if _, err := alice.n.RequestContact(ctx, "nobody-here"); !errors.Is(err, contacts.ErrUnknownName) {
		t.Fatalf("unknown alias: %v", err)
	}
	if _, err := alice.n.RequestContact(ctx, "x"); err == nil {
		t.Fatal("invalid name accepted")
	}
	if _, err := alice.n.RequestContact(ctx, alice.id.Fingerprint()); !errors.Is(err, contacts.ErrSelfContact) {
		t.Fatalf("self: %v", err)
	}

	publish := func(name keymgmt.Name, pkgs ...[]byte) {
		t.Helper()
		var blobs [][]byte
		for _, p := range pkgs {
			blobs = append(blobs, name.SealBlob(p))
		}
		owner := bob.id.DirectoryOwnerKey(name.Hash())
		if err := cl.Publish(ctx, hid, &directory.Publication{Name: name.Hash(), Owner: owner, Expires: time.Now().Add(time.Hour), Blobs: blobs}); err != nil {
			t.Fatal(err)
		}
	}
	// An expired package.
	expiredName, _ := keymgmt.ParseAlias("expired-bob")
	var seed [keymgmt.MailboxSeedSize]byte
	rand.Read(seed[:])
	old, _, err := keymgmt.NewConnPackage(keymgmt.NameAlias, nil, keymgmt.SuiteX25519, seed, 0, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	publish(expiredName, old.Marshal())
	if _, err := alice.n.RequestContact(ctx, "expired-bob"); !errors.Is(err, keymgmt.ErrExpired) {
		t.Fatalf("expired package: %v", err)
	}
	// Garbage under an alias.
	junk, _ := keymgmt.ParseAlias("junk-bob")
	publish(junk, []byte("this is not a connection package"))
	if _, err := alice.n.RequestContact(ctx, "junk-bob"); !errors.Is(err, contacts.ErrBadPackage) {
		t.Fatalf("malformed package: %v", err)
	}
	// A forged package under bob's user ID: mallory's own package (valid
	// for her), published by her under bob's user ID.
	mallory, _ := keymgmt.NewIdentity(keymgmt.SuiteX25519)
	bobID := keymgmt.UserIDName(bob.id.SigningKey())
	forged, _, err := keymgmt.NewConnPackage(keymgmt.NameUserID, mallory, keymgmt.SuiteX25519, seed, 0, time.Now(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var blobs [][]byte
	blobs = append(blobs, bobID.SealBlob(forged.Marshal()))
	if err := cl.Publish(ctx, hid, &directory.Publication{Name: bobID.Hash(), Owner: mallory.DirectoryOwnerKey(bobID.Hash()),
		Expires: time.Now().Add(time.Hour), Blobs: blobs}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.n.RequestContact(ctx, bob.id.Fingerprint()); !errors.Is(err, contacts.ErrBadPackage) || !errors.Is(err, keymgmt.ErrBadSignature) {
		t.Fatalf("forged user ID package: %v", err)
	}
	if cs, _ := alice.n.Contacts(); len(cs) != 0 {
		t.Fatalf("failed requests left contacts: %+v", cs)
	}
	if gs, _ := alice.n.Groups(); len(gs) != 0 {
		t.Fatalf("failed requests left groups: %+v", gs)
	}
}

func TestContactByUserID(t *testing.T) {
	host := directoryHost(t, "", nil)
	alice, bob := newPerson(t, "alice"), newPerson(t, "bob")
	alice.startWithDirectory(hostAddr(host))
	bob.startWithDirectory(hostAddr(host))
	if err := bob.n.ensureUserID(); err != nil {
		t.Fatal(err)
	}
	bob.n.refreshNames()
	ctx := context.Background()
	ct, err := alice.n.RequestContact(ctx, bob.id.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	if ct.Fingerprint != bob.id.Fingerprint() {
		t.Fatalf("contact by user ID does not expect bob's fingerprint: %+v", ct)
	}
	reqs := pollUntil(t, bob.n, 1)
	if _, err := bob.n.AcceptContact(ctx, reqs[0].ID); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 20*time.Second, func() bool {
		cs, _ := alice.n.Contacts()
		return len(cs) == 1 && cs[0].State == "connected"
	}, "alice connected to bob by user ID")
	// Aliases list only aliases.
	if list, _ := bob.n.Aliases(); len(list) != 0 {
		t.Fatalf("user ID listed as an alias: %+v", list)
	}
}

// TestRequestsSilence: malformed, replayed and rejected requests reach
// bob's quarantine never, and tell the sender nothing.
func TestRequestsSilence(t *testing.T) {
	host := directoryHost(t, "", nil)
	alice, bob, carol := newPerson(t, "alice"), newPerson(t, "bob"), newPerson(t, "carol")
	alice.startWithDirectory(hostAddr(host))
	bob.startWithDirectory(hostAddr(host))
	carol.startWithDirectory(hostAddr(host))
	ctx := context.Background()
	if _, err := bob.n.AddAlias(ctx, "bob-silence", nil); err != nil {
		t.Fatal(err)
	}
	name, _ := keymgmt.ParseAlias("bob-silence")
	alice.n.Host().Peerstore().AddAddrs(host.ID(), host.Host().Addrs(), time.Hour)
	pkg, err := alice.n.fetchPackage(ctx, host.ID(), name)
	if err != nil {
		t.Fatal(err)
	}
	post := func(ct []byte) error {
		nonce := make([]byte, envelope.NonceSize)
		rand.Read(nonce)
		env, err := envelope.Seal(pkg.MailboxKey(), nonce, ct, 0)
		if err != nil {
			t.Fatal(err)
		}
		return alice.n.Remote(host.ID()).RelayMessageToGroup(ctx, pkg.Mailbox(), env)
	}
	// Garbage, a request sealed to an unknown key, a tampered request: the
	// host stores them (it cannot tell), bob drops them.
	if err := post([]byte("garbage")); err != nil {
		t.Fatal(err)
	}
	other, _, _ := keymgmt.NewConnPackage(keymgmt.NameAlias, nil, keymgmt.SuiteX25519, pkg.MailboxSeed, 0, time.Now(), time.Now().Add(time.Hour))
	est, _ := alice.id.NewEstablishment(other, "alice", "meshnode-invite-v1.x", time.Now())
	ct, _ := keymgmt.SealRequest(ctx, other, est)
	if err := post(ct); err != nil {
		t.Fatal(err)
	}
	// A valid establishment with an unusable invite.
	est, _ = alice.id.NewEstablishment(pkg, "alice", "not an invite", time.Now())
	ct, _ = keymgmt.SealRequest(ctx, pkg, est)
	if err := post(ct); err != nil {
		t.Fatal(err)
	}
	if got, err := bob.n.PollRequests(ctx); err != nil || got != 0 {
		t.Fatalf("bad requests quarantined: %d %v", got, err)
	}

	// Carol's real request, replayed in a fresh envelope: one request.
	if _, err := carol.n.RequestContact(ctx, "bob-silence"); err != nil {
		t.Fatal(err)
	}
	reqs := pollUntil(t, bob.n, 1)
	pg, err := host.FetchNewMessagesForGroup(ctx, pkg.Mailbox(), nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, env := range pg.Envelopes {
		if err := post(env.Ciphertext); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := bob.n.PollRequests(ctx); err != nil || got != 0 {
		t.Fatalf("replays quarantined: %d %v", got, err)
	}
	if all, _ := bob.n.ContactRequests(); len(all) != 1 {
		t.Fatalf("quarantine holds %d requests", len(all))
	}
	// Rejected: gone, and carol's next request is dropped unread.
	if err := bob.n.RejectContact(reqs[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := bob.n.RejectContact(reqs[0].ID); !errors.Is(err, contacts.ErrUnknownRequest) {
		t.Fatalf("rejecting twice: %v", err)
	}
	if _, err := carol.n.RequestContact(ctx, "bob-silence"); err != nil {
		t.Fatal(err)
	}
	if got, err := bob.n.PollRequests(ctx); err != nil || got != 0 {
		t.Fatalf("rejected initiator's new request quarantined: %d %v", got, err)
	}
	if gs, _ := bob.n.Groups(); len(gs) != 0 {
		t.Fatal("bob joined something")
	}
	if _, err := bob.n.AcceptContact(ctx, "nope"); !errors.Is(err, contacts.ErrUnknownRequest) {
		t.Fatalf("accepting an unknown request: %v", err)
	}
	// Removing the alias: gone from the host.
	if err := bob.n.RemoveAlias(ctx, "bob-silence"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.n.RequestContact(ctx, "bob-silence"); !errors.Is(err, contacts.ErrUnknownName) {
		t.Fatalf("removed alias: %v", err)
	}
}

// TestRequestFlood: mallory floods bob's request mailbox; the host's
// per-peer limit stops her, alice's request still gets through, and bob's
// quarantine shows mallory at most once.
func TestRequestFlood(t *testing.T) {
	host := directoryHost(t, "", func(p *Params) { p.Relay.PeerRate, p.Relay.PeerBurst = 1, 20 })
	alice, bob, mallory := newPerson(t, "alice"), newPerson(t, "bob"), newPerson(t, "mallory")
	alice.startWithDirectory(hostAddr(host))
	bob.startWithDirectory(hostAddr(host))
	mallory.startWithDirectory(hostAddr(host))
	ctx := context.Background()
	if _, err := bob.n.AddAlias(ctx, "bob-flood", nil); err != nil {
		t.Fatal(err)
	}
	name, _ := keymgmt.ParseAlias("bob-flood")
	mallory.n.Host().Peerstore().AddAddrs(host.ID(), host.Host().Addrs(), time.Hour)
	pkg, err := mallory.n.fetchPackage(ctx, host.ID(), name)
	if err != nil {
		t.Fatal(err)
	}
	limited := 0
	for i := range 100 {
		est, _ := mallory.id.NewEstablishment(pkg, "mallory", "meshnode-invite-v1.x", time.Now())
		ct, _ := keymgmt.SealRequest(ctx, pkg, est)
		if i%2 == 0 {
			ct = []byte("junk junk junk")
		}
		nonce := make([]byte, envelope.NonceSize)
		rand.Read(nonce)
		env, _ := envelope.Seal(pkg.MailboxKey(), nonce, ct, 0)
		if err := mallory.n.Remote(host.ID()).RelayMessageToGroup(ctx, pkg.Mailbox(), env); err != nil {
			limited++
		}
	}
	if limited < 50 {
		t.Fatalf("only %d of 100 flood envelopes refused", limited)
	}
	if _, err := alice.n.RequestContact(ctx, "bob-flood"); err != nil {
		t.Fatalf("alice's request after the flood: %v", err)
	}
	reqs := pollUntil(t, bob.n, 1)
	if len(reqs) != 1 || reqs[0].Fingerprint != alice.id.Fingerprint() {
		t.Fatalf("bob's quarantine after the flood: %+v", reqs)
	}
}
