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

// topology is the usual setting of a managed-group test: a host, a
// managed group on it, and the group's first manager.
type topology struct {
	t     *testing.T
	host  *Node
	hosts []string // the host's address, the group's hosts
	gid   string
	mgr   *person
}

// newTopology starts a host and the manager's node (tweak changes its
// params: nil for a member, asBot for a bot), which creates a managed
// group with a policy on that host.
func newTopology(t *testing.T, group string, policy groupstate.Policy, mgr string, tweak func(*Params)) *topology {
	t.Helper()
	return newTopologyOn(t, startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen}), group, policy, mgr, tweak)
}

// newTopologyOn is newTopology on a host the test started.
func newTopologyOn(t *testing.T, host *Node, group string, policy groupstate.Policy, mgr string, tweak func(*Params)) *topology {
	t.Helper()
	tp := &topology{t: t, host: host, hosts: []string{hostAddr(host)}}
	tp.mgr = tp.person(mgr, tweak)
	tp.gid = managedGroup(t, tp.mgr, group, tp.hosts, policy)
	return tp
}

// person starts a person's node (tweak as in newTopology), not yet in the
// group.
func (tp *topology) person(nick string, tweak func(*Params)) *person {
	tp.t.Helper()
	p := newPerson(tp.t, nick)
	p.startManaged(tweak)
	return p
}

// add has the manager add p with a role and waits until p has joined.
func (tp *topology) add(p *person, role groupstate.Role) *ManageResult {
	tp.t.Helper()
	return addPerson(tp.t, tp.mgr, p, tp.gid, tp.hosts, role)
}

// join starts a person's node and has the manager add it with a role.
func (tp *topology) join(nick string, role groupstate.Role) *person {
	tp.t.Helper()
	p := tp.person(nick, nil)
	tp.add(p, role)
	return p
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
	tp := newTopology(t, "club", groupstate.DefaultPolicy(), "alice", nil)
	alice, bob, gid := tp.mgr, tp.person("bob", nil), tp.gid
	ctx := context.Background()
	if _, err := alice.n.Invite(gid); !errors.Is(err, ErrNoInvite) {
		t.Fatalf("invite of a managed group: %v, want ErrNoInvite", err)
	}
	if _, err := alice.n.Send(ctx, gid, "before bob"); err != nil {
		t.Fatal(err)
	}
	tp.add(bob, groupstate.RoleWrite)
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
