package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	tu "github.com/meshnode/meshnode/internal/testutil"
)

// Managers, hosts and leaving from the command line: alice makes carol
// (a reader) a manager, hands her own management to bob, and can no
// longer manage; bob sets the hosts; carol leaves and her node forgets
// the group; bob, then the only manager, cannot leave; alice can.
func TestManagersHostsLeaveFlow(t *testing.T) {
	host, _ := initHome(t, "--role", "host")
	alice, _ := initHome(t, "--nick", "alice")
	bob, bobFP := initHome(t, "--nick", "bob")
	carol, carolFP := initHome(t, "--nick", "carol")
	startRun(t, host, "--host-policy", "open")
	for _, h := range []string{alice, bob, carol} {
		startRun(t, h)
	}
	e := env(t)
	hostAddr := hostAddrOf(t, host)
	ok(t, meshnode(t, e, "group", "create", "--home", alice, "club", "--managed", "--host", hostAddr), "create --managed")
	for _, p := range []struct{ home, role string }{{bob, "write"}, {carol, "read"}} {
		out := ok(t, meshnode(t, e, "keypackage", "--home", p.home, "--host", hostAddr), "keypackage")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		ok(t, meshnode(t, e, "group", "add", "--home", alice, "club", lines[len(lines)-1], "--role", p.role), "group add")
		tu.Eventually(t, 60*time.Second, func() bool {
			return strings.Contains(meshnode(t, e, "group", "list", "--home", p.home).stdout, "club")
		}, "%s joins", p.home)
	}

	res := jsonOf[map[string]any](t, meshnode(t, e, "group", "add-manager", "--home", alice, "club", carolFP, "--json"))
	if res["rotated"] != true || !strings.Contains(res["events"].([]any)[0].(string), "made carol") {
		t.Fatalf("add-manager --json: %v", res)
	}
	if r := meshnode(t, e, "group", "add-manager", "--home", alice, "club", carolFP); r.code == 0 || !strings.Contains(r.stderr, "already a manager") {
		t.Fatalf("add-manager of a manager: %d\n%s", r.code, r.stderr)
	}
	out := ok(t, meshnode(t, e, "group", "transfer-manager", "--home", alice, "club", bobFP), "transfer-manager")
	if !strings.Contains(out, "handed management to bob") {
		t.Fatalf("transfer-manager printed:\n%s", out)
	}
	if r := meshnode(t, e, "group", "hosts", "--home", alice, "club", hostAddr); r.code == 0 || !strings.Contains(r.stderr, "manage role") {
		t.Fatalf("a former manager sets hosts: %d\n%s", r.code, r.stderr)
	}
	if out := ok(t, meshnode(t, e, "group", "hosts", "--home", alice, "club"), "hosts"); strings.TrimSpace(out) != hostAddr {
		t.Fatalf("hosts printed:\n%s", out)
	}

	// Bob, once his node knows he manages, adds alice's node as a host.
	tu.Eventually(t, 60*time.Second, func() bool {
		return strings.Contains(meshnode(t, e, "group", "list", "--home", bob, "--json").stdout, `"role": "manage"`)
	}, "bob's node knows he manages")
	hosts := []string{hostAddr, hostAddrOf(t, alice)}
	ok(t, meshnode(t, e, append([]string{"group", "hosts", "--home", bob, "club"}, hosts...)...), "set hosts")
	got := jsonOf[map[string][]string](t, meshnode(t, e, "group", "hosts", "--home", bob, "club", "--json"))
	if !slices.Equal(got["hosts"], hosts) {
		t.Fatalf("hosts --json after setting: %v", got)
	}
	if r := meshnode(t, e, "group", "hosts", "--home", bob, "club", "/ip4/127.0.0.1/tcp/1"); r.code == 0 || !strings.Contains(r.stderr, "/p2p/") {
		t.Fatalf("a host without /p2p/: %d\n%s", r.code, r.stderr)
	}

	// Carol leaves.
	out = ok(t, meshnode(t, e, "group", "leave", "--home", carol, "club"), "leave")
	if !strings.Contains(out, "Left the group") {
		t.Fatalf("leave printed:\n%s", out)
	}
	if strings.Contains(meshnode(t, e, "group", "list", "--home", carol).stdout, "club") {
		t.Fatal("carol's node still lists the group")
	}
	if r := meshnode(t, e, "group", "leave", "--home", carol, "club"); r.code == 0 || !strings.Contains(r.stderr, "unknown group") {
		t.Fatalf("leaving twice: %d\n%s", r.code, r.stderr)
	}
	tu.Eventually(t, 60*time.Second, func() bool {
		return !strings.Contains(meshnode(t, e, "group", "members", "--home", bob, "club").stdout, "carol")
	}, "bob's node no longer lists carol")

	// Bob is the only manager now: he cannot leave; alice can.
	if r := meshnode(t, e, "group", "leave", "--home", bob, "club"); r.code == 0 || !strings.Contains(r.stderr, "only manager") {
		t.Fatalf("the only manager leaves: %d\n%s", r.code, r.stderr)
	}
	res = jsonOf[map[string]any](t, meshnode(t, e, "group", "leave", "--home", alice, "club", "--json"))
	if res["requested"] != true {
		t.Fatalf("alice's leave --json: %v", res)
	}
}
