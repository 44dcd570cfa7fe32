package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tu "github.com/meshnode/meshnode/internal/testutil"
)

// The directory hosts of the README's contacts section (issue 15 item
// 2), end to end through the binary: "directory_hosts" in config.json is
// where `contact request NAME` looks without --host; with neither and no
// bootstrap peer, the error says how to give one.
func TestContactDirectoryHostsFromConfig(t *testing.T) {
	host, _ := initHome(t, "--role", "host")
	alice, _ := initHome(t, "--nick", "alice")
	bob, _ := initHome(t, "--nick", "bob")
	carol, _ := initHome(t, "--nick", "carol")
	startRun(t, host, "--host-policy", "open")
	e := env(t)
	hostAddr := hostAddrOf(t, host)

	// alice's config.json names the host as her directory host.
	path := filepath.Join(alice, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["directory_hosts"] = []string{hostAddr}
	if b, err = json.MarshalIndent(cfg, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	startRun(t, alice)
	startRun(t, bob)
	startRun(t, carol)

	ok(t, meshnode(t, e, "alias", "add", "--home", bob, "bob.dir", "--host", hostAddr, "--pow", "8"), "alias add --host")
	r := meshnode(t, e, "contact", "request", "--home", carol, "bob.dir")
	if r.code == 0 || !strings.Contains(r.stderr, "--host") || !strings.Contains(r.stderr, "directory_hosts") {
		t.Fatalf("contact request with no directory host: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	out := ok(t, meshnode(t, e, "contact", "request", "--home", alice, "bob.dir"), "contact request (directory_hosts)")
	if !strings.Contains(out, "your conversation is") || !strings.Contains(out, "meshnode send ") {
		t.Errorf("contact request does not say where the conversation happens:\n%s", out)
	}
	tu.Eventually(t, 30*time.Second, func() bool {
		reqs := jsonOf[[]map[string]any](t, meshnode(t, e, "contact", "requests", "--home", bob, "--json"))
		return len(reqs) == 1 && reqs[0]["nick"] == "alice"
	}, "bob receives alice's request through the directory host of her config.json")
}
