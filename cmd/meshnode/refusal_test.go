package main

import (
	"regexp"
	"strings"
	"testing"
)

// A host's refusal reaches `meshnode send` reading once, with its code:
// a host that admits one new mailbox per network (loopback counted like
// any network) stores the first group's message and refuses the
// second's as rate limited, and the output says so in one clause.
func TestSendShowsRefusalOnce(t *testing.T) {
	host, _ := initHome(t, "--role", "host")
	alice, _ := initHome(t, "--nick", "alice")
	startRun(t, host, "--host-policy", "open", "--limit", "exempt_loopback=false",
		"--limit", "new_mailbox_rate_per_prefix=0.0001", "--limit", "new_mailbox_burst_per_prefix=1")
	startRun(t, alice)
	e := env(t)
	hostAddr := hostAddrOf(t, host)
	ok(t, meshnode(t, e, "group", "create", "--home", alice, "first", "--host", hostAddr), "group create")
	ok(t, meshnode(t, e, "group", "create", "--home", alice, "second", "--host", hostAddr), "group create")
	if out := ok(t, meshnode(t, e, "send", "--home", alice, "first", "hello"), "send"); !strings.Contains(out, "stored_by") || strings.Contains(out, "failed") {
		t.Fatalf("first group's send:\n%s", out)
	}
	r := meshnode(t, e, "send", "--home", alice, "second", "hello")
	if r.code != 0 || !strings.Contains(r.stderr, "no host stored the message yet") {
		t.Fatalf("second group's send: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	line := regexp.MustCompile(`(?m)^failed\s+(.*)$`).FindStringSubmatch(r.stdout)
	if line == nil {
		t.Fatalf("no failed line:\n%s", r.stdout)
	}
	const want = ": rate limited: too many new mailboxes from your network; retry later"
	if !strings.HasSuffix(line[1], want) || strings.Count(line[1], "rate limited") != 1 || strings.Contains(line[1], "remote") {
		t.Fatalf("failed line %q, want it to end %q and name its code once", line[1], want)
	}
}
