package main

import (
	"strings"
	"testing"
	"time"

	tu "github.com/meshnode/meshnode/internal/testutil"
)

// The managed-group commands end to end: alice creates a managed group,
// bob prints a key package and is added read-only, reads, cannot write,
// is promoted (the keys rotate), writes, and is removed; policy, splits
// and the refusals.
func TestManagedGroupFlow(t *testing.T) {
	host, _ := initHome(t, "--role", "host")
	alice, _ := initHome(t, "--nick", "alice")
	bob, bobFP := initHome(t, "--nick", "bob")
	startRun(t, host, "--host-policy", "open")
	startRun(t, alice)
	startRun(t, bob)
	e := env(t)
	hostAddr := hostAddrOf(t, host)

	if r := meshnode(t, e, "group", "create", "--home", alice, "x", "--history", "from-join"); r.code == 0 || !strings.Contains(r.stderr, "--managed") {
		t.Fatalf("--history without --managed: %d\n%s", r.code, r.stderr)
	}
	out := ok(t, meshnode(t, e, "group", "create", "--home", alice, "club", "--managed", "--host", hostAddr), "create --managed")
	if !strings.Contains(out, "Created managed group") || strings.Contains(out, "meshnode-invite-v1.") {
		t.Fatalf("group create --managed printed:\n%s", out)
	}
	if r := meshnode(t, e, "group", "invite", "--home", alice, "club"); r.code == 0 || !strings.Contains(r.stderr, "managed group") {
		t.Fatalf("invite of a managed group: %d\n%s", r.code, r.stderr)
	}

	out = ok(t, meshnode(t, e, "keypackage", "--home", bob, "--host", hostAddr), "keypackage")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	kp := lines[len(lines)-1]
	if !strings.HasPrefix(kp, "mnkp1.") {
		t.Fatalf("keypackage printed:\n%s", out)
	}
	if r := meshnode(t, e, "group", "add", "--home", alice, "club", "mnkp1.AAAA", "--role", "read"); r.code == 0 || !strings.Contains(r.stderr, "invalid key package") {
		t.Fatalf("add with a bad key package: %d\n%s", r.code, r.stderr)
	}
	if r := meshnode(t, e, "group", "add", "--home", alice, "club", kp, "--role", "boss"); r.code == 0 || !strings.Contains(r.stderr, "read, write or manage") {
		t.Fatalf("add with a bad role: %d\n%s", r.code, r.stderr)
	}
	out = ok(t, meshnode(t, e, "group", "add", "--home", alice, "club", kp, "--role", "read"), "group add")
	if !strings.Contains(out, "added bob") {
		t.Fatalf("group add printed:\n%s", out)
	}
	tu.Eventually(t, 60*time.Second, func() bool {
		return strings.Contains(meshnode(t, e, "group", "list", "--home", bob).stdout, "club")
	}, "bob joins the managed group")

	ok(t, meshnode(t, e, "send", "--home", alice, "club", "hello", "bob"), "alice send")
	waitTexts(t, bob, "club", 1)
	members := jsonOf[[]map[string]any](t, meshnode(t, e, "group", "members", "--home", bob, "club", "--json"))
	got := map[string]string{}
	for _, m := range members {
		got[m["nick"].(string)] = m["role"].(string)
	}
	if got["alice"] != "manage" || got["bob"] != "read" {
		t.Fatalf("members --json: %v", members)
	}
	if out := ok(t, meshnode(t, e, "group", "members", "--home", bob, "club"), "members"); !strings.Contains(out, "ROLE") || !strings.Contains(out, "read") {
		t.Fatalf("members printed:\n%s", out)
	}
	if r := meshnode(t, e, "send", "--home", bob, "club", "may I?"); r.code == 0 || !strings.Contains(r.stderr, "only read") {
		t.Fatalf("a reader sends: %d\n%s", r.code, r.stderr)
	}
	if r := meshnode(t, e, "group", "rotate", "--home", bob, "club"); r.code == 0 || !strings.Contains(r.stderr, "manage role") {
		t.Fatalf("a reader rotates: %d\n%s", r.code, r.stderr)
	}

	out = ok(t, meshnode(t, e, "group", "role", "--home", alice, "club", bobFP, "write"), "group role")
	if !strings.Contains(out, "Keys rotated") {
		t.Fatalf("promotion printed:\n%s", out)
	}
	tu.Eventually(t, 60*time.Second, func() bool {
		return meshnode(t, e, "send", "--home", bob, "club", "thanks").code == 0
	}, "bob can write after his promotion")
	waitTexts(t, alice, "club", 2)

	ok(t, meshnode(t, e, "group", "policy", "--home", alice, "club", "--rotate-after", "50", "--history", "from-join"), "policy set")
	out = ok(t, meshnode(t, e, "group", "policy", "--home", alice, "club"), "policy show")
	if !strings.Contains(out, "from-join") || !strings.Contains(out, "50 messages") {
		t.Fatalf("policy printed:\n%s", out)
	}
	if r := meshnode(t, e, "group", "policy", "--home", alice, "club", "--rotate-every", "10s"); r.code == 0 {
		t.Fatalf("a rotation period under a minute accepted:\n%s", r.stdout)
	}
	if r := meshnode(t, e, "group", "rotate", "--home", alice, "club", "--via-bot"); r.code == 0 || !strings.Contains(r.stderr, "bot") {
		t.Fatalf("--via-bot without a bot: %d\n%s", r.code, r.stderr)
	}
	out = ok(t, meshnode(t, e, "group", "rotate", "--home", alice, "club"), "rotate")
	if !strings.Contains(out, "epoch 2") {
		t.Fatalf("rotate printed:\n%s", out)
	}
	if out := ok(t, meshnode(t, e, "group", "splits", "--home", alice, "club"), "splits"); !strings.Contains(out, "No split") {
		t.Fatalf("splits printed:\n%s", out)
	}

	out = ok(t, meshnode(t, e, "group", "remove", "--home", alice, "club", bobFP), "group remove")
	if !strings.Contains(out, "removed bob") || !strings.Contains(out, "Keys rotated") {
		t.Fatalf("remove printed:\n%s", out)
	}
	tu.Eventually(t, 60*time.Second, func() bool {
		return strings.Contains(meshnode(t, e, "group", "members", "--home", bob, "club").stdout, "You were removed")
	}, "bob's node learns he was removed")
	// The sender is told: a removed member's node refuses to send, and
	// lists the group as removed.
	if r := meshnode(t, e, "send", "--home", bob, "club", "still here?"); r.code == 0 || !strings.Contains(r.stderr, "removed") || strings.Contains(r.stdout, "stored") {
		t.Fatalf("a removed member sends: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if out := ok(t, meshnode(t, e, "group", "list", "--home", bob), "group list"); !strings.Contains(out, "removed") {
		t.Fatalf("group list of a removed member:\n%s", out)
	}
	rejs := jsonOf[[]map[string]any](t, meshnode(t, e, "group", "rejections", "--home", alice, "club", "--json"))
	for _, r := range rejs {
		if r["kind"] == nil || r["reason"] == nil || r["time"] == nil {
			t.Fatalf("group rejections --json: %v", rejs)
		}
	}
	if out := ok(t, meshnode(t, e, "group", "rejections", "--home", alice, "club"), "group rejections"); len(rejs) == 0 && !strings.Contains(out, "Nothing refused") {
		t.Fatalf("group rejections printed:\n%s", out)
	}
	ok(t, meshnode(t, e, "send", "--home", alice, "club", "bob is gone"), "send after removal")
	msgs := messagesOf(t, alice, "club")
	var events int
	for _, m := range msgs {
		if m["kind"] == "event" {
			events++
		}
	}
	if events < 5 {
		t.Fatalf("alice's messages show %d group events: %v", events, msgs)
	}
	if r := meshnode(t, e, "group", "remove", "--home", alice, "club", bobFP); r.code == 0 || !strings.Contains(r.stderr, "no member") {
		t.Fatalf("removing a non-member: %d\n%s", r.code, r.stderr)
	}
}
