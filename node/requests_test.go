package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/meshnode/meshnode/envelope"
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
	if _, err := bob.n.AddAlias(ctx, "bob-too-hard", nil, WithProofBits(keymgmt.MaxProofBits+1)); !errors.Is(err, keymgmt.ErrInvalidParams) {
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
	info, err := bob.n.AddAlias(ctx, "bob-pow", nil, WithProofBits(bits))
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
	post := func(ct []byte) {
		t.Helper()
		nonce := make([]byte, envelope.NonceSize)
		rand.Read(nonce)
		env, err := envelope.Seal(pkg.MailboxKey(), nonce, ct, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := mallory.n.Remote(host.ID()).RelayMessageToGroup(ctx, pkg.Mailbox(), env); err != nil {
			t.Fatal(err)
		}
	}
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
