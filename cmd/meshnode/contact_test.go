package main

import (
	"strings"
	"testing"
	"time"

	tu "github.com/meshnode/meshnode/internal/testutil"
)

// The contact commands end to end: bob publishes an alias with a chosen
// proof of work, alice asks to connect, bob accepts, and alice adds bob to
// a managed group with `group add --contact`; bob joins through the
// welcome sent over the connection group.
func TestContactAddToGroupFlow(t *testing.T) {
	host, _ := initHome(t, "--role", "host")
	alice, _ := initHome(t, "--nick", "alice")
	bob, _ := initHome(t, "--nick", "bob")
	startRun(t, host, "--host-policy", "open")
	e := env(t)
	hostAddr := hostAddrOf(t, host)
	startRun(t, alice, "--bootstrap", hostAddr)
	startRun(t, bob, "--bootstrap", hostAddr)

	if r := meshnode(t, e, "alias", "add", "--home", bob, "bob-cli", "--pow", "33"); r.code == 0 || !strings.Contains(r.stderr, "proof of work") {
		t.Fatalf("alias add --pow 33: %d\n%s", r.code, r.stderr)
	}
	out := ok(t, meshnode(t, e, "alias", "add", "--home", bob, "bob-cli", "--pow", "10"), "alias add --pow")
	if !strings.Contains(out, "10-bit proof of work") {
		t.Fatalf("alias add printed:\n%s", out)
	}
	as := jsonOf[[]map[string]any](t, meshnode(t, e, "alias", "list", "--home", bob, "--json"))
	if len(as) != 1 || as[0]["proof_bits"] != float64(10) {
		t.Fatalf("alias list: %v", as)
	}
	ok(t, meshnode(t, e, "contact", "request", "--home", alice, "bob-cli"), "contact request")
	var reqs []map[string]any
	tu.Eventually(t, 30*time.Second, func() bool {
		reqs = jsonOf[[]map[string]any](t, meshnode(t, e, "contact", "requests", "--home", bob, "--json"))
		return len(reqs) == 1
	}, "bob receives alice's request")
	ok(t, meshnode(t, e, "contact", "accept", "--home", bob, reqs[0]["id"].(string)), "contact accept")

	ok(t, meshnode(t, e, "group", "create", "--home", alice, "circle", "--managed", "--host", hostAddr), "create --managed")
	if r := meshnode(t, e, "group", "add", "--home", alice, "circle"); r.code == 0 {
		t.Fatalf("group add without a key package or --contact succeeded:\n%s", r.stdout)
	}
	if r := meshnode(t, e, "group", "add", "--home", alice, "circle", "--contact", "bob", "--bot"); r.code == 0 || !strings.Contains(r.stderr, "--contact") {
		t.Fatalf("--contact with --bot: %d\n%s", r.code, r.stderr)
	}
	if r := meshnode(t, e, "group", "add", "--home", alice, "circle", "--contact", "nobody"); r.code == 0 || !strings.Contains(r.stderr, "unknown contact") {
		t.Fatalf("--contact nobody: %d\n%s", r.code, r.stderr)
	}
	tu.Eventually(t, 60*time.Second, func() bool {
		r := meshnode(t, e, "group", "add", "--home", alice, "circle", "--contact", "bob", "--role", "write")
		if r.code != 0 && !strings.Contains(r.stderr, "key package") {
			t.Fatalf("group add --contact: %d\n%s", r.code, r.stderr)
		}
		return r.code == 0 && strings.Contains(r.stdout, "added bob")
	}, "alice adds bob through the contact")
	tu.Eventually(t, 60*time.Second, func() bool {
		return strings.Contains(meshnode(t, e, "group", "list", "--home", bob).stdout, "circle")
	}, "bob joins the managed group")
	ok(t, meshnode(t, e, "send", "--home", bob, "circle", "hi", "alice"), "bob send")
	waitTexts(t, alice, "circle", 1)

	// Ending the contact leaves the connection group, not the groups
	// joined through it.
	if r := meshnode(t, e, "contact", "remove", "--home", bob, "nobody"); r.code == 0 || !strings.Contains(r.stderr, "unknown contact") {
		t.Fatalf("contact remove nobody: %d\n%s", r.code, r.stderr)
	}
	removed := jsonOf[map[string]any](t, meshnode(t, e, "contact", "remove", "--home", bob, "alice", "--block", "--json"))
	if removed["nick"] != "alice" {
		t.Fatalf("removed %v", removed)
	}
	if cs := jsonOf[[]map[string]any](t, meshnode(t, e, "contact", "list", "--home", bob, "--json")); len(cs) != 0 {
		t.Fatalf("contacts after remove: %v", cs)
	}
	if !strings.Contains(meshnode(t, e, "group", "list", "--home", bob).stdout, "circle") {
		t.Fatal("removing the contact left the managed group too")
	}
}
