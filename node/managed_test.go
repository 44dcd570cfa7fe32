package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/groupstate"
	tu "github.com/meshnode/meshnode/internal/testutil"
)

// startManaged runs the person's node with short intervals for managed
// groups (role member unless tweaked).
func (p *person) startManaged(tweak func(*Params)) *Node {
	p.t.Helper()
	params := DefaultParams(RoleMember)
	params.ProcessInterval = 200 * time.Millisecond
	params.ManageInterval = 300 * time.Millisecond
	params.CatchUpInterval = 2 * time.Second
	if tweak != nil {
		tweak(&params)
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

func asBot(p *Params) {
	p.Role = RoleBot
	p.StablePeerID = false
}

// managedGroup creates a managed group at the manager and returns its ID.
func managedGroup(t *testing.T, mgr *person, name string, hosts []string, policy groupstate.Policy) string {
	t.Helper()
	info, invite, err := mgr.n.CreateGroup(context.Background(), name, hosts, Managed(policy))
	if err != nil {
		t.Fatal(err)
	}
	if invite != "" || !info.Managed || info.Role != "manage" {
		t.Fatalf("managed group created with invite %q, info %+v", invite, info)
	}
	return info.ID
}

// addPerson adds p to the group through a fresh key package and waits
// until p's node has joined.
func addPerson(t *testing.T, mgr, p *person, gid string, hosts []string, role groupstate.Role, opts ...ManageOption) *ManageResult {
	t.Helper()
	ctx := context.Background()
	kp, err := p.n.NewKeyPackage(ctx, 0, hosts)
	if err != nil {
		t.Fatal(err)
	}
	res, err := mgr.n.AddMember(ctx, gid, kp.KeyPackage, role, opts...)
	if err != nil {
		t.Fatal(err)
	}
	waitJoined(t, p, gid)
	return res
}

func waitJoined(t *testing.T, p *person, gid string) {
	t.Helper()
	tu.Eventually(t, 20*time.Second, func() bool {
		_, err := p.n.GroupInfo(gid)
		return err == nil
	}, "%s joins group %s", p.nick, gid)
}

func waitEpoch(t *testing.T, p *person, gid string, epoch uint64) {
	t.Helper()
	tu.Eventually(t, 20*time.Second, func() bool {
		gi, err := p.n.GroupInfo(gid)
		return err == nil && gi.Epoch >= epoch
	}, "%s reaches epoch %d", p.nick, epoch)
}

func waitText(t *testing.T, p *person, gid, text string) {
	t.Helper()
	tu.Eventually(t, 20*time.Second, func() bool { return contains(texts(t, p.n, gid), text) }, "%s reads %q", p.nick, text)
}

func roles(t *testing.T, n *Node, gid string) map[string]string {
	t.Helper()
	ms, err := n.Members(gid)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range ms {
		r := m.Role
		if m.Bot {
			r += "+bot"
		}
		out[m.Nick] = r
	}
	return out
}

func TestManagedGroupAddAndMembers(t *testing.T) {
	leakCheck(t)
	host := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen})
	hosts := []string{hostAddr(host)}
	alice, bob := newPerson(t, "alice"), newPerson(t, "bob")
	alice.startManaged(nil)
	bob.startManaged(nil)
	ctx := context.Background()
	gid := managedGroup(t, alice, "club", hosts, groupstate.DefaultPolicy())
	if _, err := alice.n.Invite(gid); !errors.Is(err, ErrNoInvite) {
		t.Fatalf("invite of a managed group: %v, want ErrNoInvite", err)
	}
	if _, err := alice.n.Send(ctx, gid, "before bob"); err != nil {
		t.Fatal(err)
	}
	addPerson(t, alice, bob, gid, hosts, groupstate.RoleWrite)
	want := map[string]string{"alice": "manage", "bob": "write"}
	for _, p := range []*person{alice, bob} {
		if got := roles(t, p.n, gid); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s lists %v, want %v", p.nick, got, want)
		}
	}
	if _, err := bob.n.Send(ctx, gid, "hi from bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.n.Send(ctx, gid, "hi from alice"); err != nil {
		t.Fatal(err)
	}
	waitText(t, alice, gid, "hi from bob")
	waitText(t, bob, gid, "hi from alice")
	// Shared history: bob reads what was said before he came.
	waitText(t, bob, gid, "before bob")
	msgs, err := bob.n.Messages(gid, 0)
	if err != nil {
		t.Fatal(err)
	}
	var welcomed bool
	for _, m := range msgs {
		if m.Kind == KindEvent && strings.Contains(m.Text, "welcomed you") && m.Nick == "alice" {
			welcomed = true
		}
	}
	if !welcomed {
		t.Fatalf("bob is not shown who welcomed him: %+v", msgs)
	}
	if s, _ := bob.n.Splits(gid); len(s) != 0 {
		t.Fatalf("splits reported in an honest group: %+v", s)
	}
	if rej, _ := bob.n.Rejections(); len(rej) != 0 {
		t.Fatalf("bob rejected payloads of an honest group: %+v", rej)
	}
	if _, err := bob.n.AddMember(ctx, gid, "x", groupstate.RoleRead); !errors.Is(err, ErrBadKeyPackage) {
		t.Fatalf("bad key package: %v", err)
	}
}
