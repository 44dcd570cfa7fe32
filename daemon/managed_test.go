package daemon

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/meshnode/meshnode/api"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/keymgmt"
	"github.com/meshnode/meshnode/node"
)

func fastManager(p *node.Params) { p.ManageInterval = 300 * time.Millisecond }

// Managers, hosts and leaving over the API, with their refusals.
func TestManagerHostsLeaveOverAPI(t *testing.T) {
	leakCheck(t)
	alice := startMember(t, "alice", WithNodeParams(fastManager))
	bob := startMember(t, "bob", WithNodeParams(fastManager))
	ctx := context.Background()
	created, err := alice.c.CreateManagedGroup(ctx, &api.CreateManagedRequest{Name: "staff", Hosts: []string{alice.addr()}})
	if err != nil {
		t.Fatal(err)
	}
	gid := created.Group.ID
	kp, err := bob.c.NewKeyPackage(ctx, &api.NewKeyPackageRequest{Hosts: []string{alice.addr()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.AddMember(ctx, gid, &api.AddMemberRequest{KeyPackage: kp.KeyPackage, Role: "read"}); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 30*time.Second, func() bool { _, err := bob.c.Group(ctx, gid); return err == nil }, "bob joins")
	open, err := alice.c.CreateGroup(ctx, "open", nil)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		call func() error
		code string
	}{
		{"malformed fingerprint", func() error { _, err := alice.c.AddManager(ctx, gid, "abcd", false); return err }, api.CodeBadRequest},
		// As for remove and role: the chain refuses an event on a non-member.
		{"not a member", func() error { _, err := alice.c.TransferManager(ctx, gid, strangerFP(t), false); return err }, api.CodeRefused},
		{"already a manager", func() error { _, err := alice.c.AddManager(ctx, gid, alice.fp, false); return err }, api.CodeRefused},
		{"no bot", func() error { _, err := alice.c.AddManager(ctx, gid, bob.fp, true); return err }, api.CodeNoBot},
		{"not a manager", func() error { _, err := bob.c.SetHosts(ctx, gid, &api.SetHostsRequest{}); return err }, api.CodeNotManager},
		{"bad host", func() error {
			_, err := alice.c.SetHosts(ctx, gid, &api.SetHostsRequest{Hosts: []string{"/ip4/127.0.0.1/tcp/1"}})
			return err
		}, api.CodeBadRequest},
		{"open group hosts", func() error {
			_, err := alice.c.SetHosts(ctx, open.Group.ID, &api.SetHostsRequest{Hosts: []string{alice.addr()}})
			return err
		}, api.CodeNotManaged},
		{"unknown group", func() error { _, err := alice.c.LeaveGroup(ctx, "nope"); return err }, api.CodeUnknownGroup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !apiCode(err, tc.code) {
				t.Fatalf("got %v, want code %s", err, tc.code)
			}
		})
	}

	res, err := alice.c.AddManager(ctx, gid, bob.fp, false)
	if err != nil || !res.Rotated || res.Epoch != 1 || len(res.Events) != 1 {
		t.Fatalf("bob made a manager: %+v %v", res, err)
	}
	hosts := []string{alice.addr(), bob.addr()}
	if res, err = alice.c.SetHosts(ctx, gid, &api.SetHostsRequest{Hosts: hosts}); err != nil || res.Delivered != 1 {
		t.Fatalf("set hosts: %+v %v", res, err)
	}
	tu.Eventually(t, 30*time.Second, func() bool {
		h, err := bob.c.GroupHosts(ctx, gid)
		return err == nil && slices.Equal(h.Hosts, hosts)
	}, "bob follows the new hosts")

	// Bob leaves; alice's node no longer lists him; alice, now alone,
	// leaves too.
	if _, err := bob.c.LeaveGroup(ctx, gid); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.c.Group(ctx, gid); !errors.Is(err, api.ErrUnknownGroup) {
		t.Fatalf("bob's group after leaving: %v", err)
	}
	tu.Eventually(t, 30*time.Second, func() bool {
		ms, err := alice.c.Members(ctx, gid)
		return err == nil && len(ms) == 1
	}, "alice sees bob leave")
	if res, err = alice.c.LeaveGroup(ctx, gid); err != nil || res.Delivered != 0 {
		t.Fatalf("the last member leaves: %+v %v", res, err)
	}
	gs, err := alice.c.Groups(ctx)
	if err != nil || len(gs) != 1 || gs[0].Name != "open" {
		t.Fatalf("alice's groups after leaving: %+v %v", gs, err)
	}
}

// strangerFP is the fingerprint of a fresh identity, in no group.
func strangerFP(t *testing.T) string {
	t.Helper()
	id, err := keymgmt.NewIdentity(keymgmt.SuiteX25519)
	if err != nil {
		t.Fatal(err)
	}
	return id.Fingerprint()
}
