package scripts

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeSections are the README sections whose `sh` blocks form one
// walk-through, run in order as one script.
var readmeSections = []string{
	"## Quickstart: a group with a host, alice and bob",
	"## Managed groups",
	"## Finding people: aliases and contacts",
}

// shBlocks returns the ```sh blocks of a README section, in order.
func shBlocks(t *testing.T, readme, heading string) []string {
	t.Helper()
	a := strings.Index(readme, "\n"+heading+"\n")
	if a < 0 {
		t.Fatalf("the README has no section %q", heading)
	}
	sec := readme[a+1:]
	if b := strings.Index(sec[len(heading):], "\n## "); b >= 0 {
		sec = sec[:len(heading)+b]
	}
	var out []string
	for _, m := range regexp.MustCompile("(?s)\n```sh\n(.*?)\n```\n").FindAllStringSubmatch(sec, -1) {
		out = append(out, m[1])
	}
	if len(out) == 0 {
		t.Fatalf("section %q has no sh block", heading)
	}
	return out
}

// The command sequences of the README work as written: the quickstart,
// managed groups and contacts walk-through, run by bash exactly as shown,
// with two substitutions the test states here: `go build` copies the
// binary the test built, and the host's fixed port 4001 becomes a free
// port (the test must not depend on 4001 being free).
func TestREADMESequences(t *testing.T) {
	if _, err := exec.LookPath("jq"); err != nil {
		t.Fatalf("the README's commands use jq, which is not installed (.ci/run installs it): %v", err)
	}
	bin := binary(t)
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	script.WriteString(`go() { if [ "$1" = build ]; then cp "$MESHNODE_BIN" meshnode; else command go "$@"; fi; }` + "\n")
	for _, h := range readmeSections {
		for _, blk := range shBlocks(t, readme, h) {
			fmt.Fprintf(&script, "echo '>>> %s'\n%s\n", strings.TrimPrefix(h, "## "), blk)
		}
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	text := strings.ReplaceAll(script.String(), "tcp/4001", fmt.Sprintf("tcp/%d", port))

	dir := t.TempDir()
	t.Cleanup(func() { killUnder(t, dir) })
	if err := os.WriteFile(filepath.Join(dir, "readme.sh"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "readme.sh")
	cmd.Dir = dir
	cmd.Env = cleanEnv(dir, "MESHNODE_BIN="+bin)
	out, err := cmd.CombinedOutput()
	logs := func() string {
		var b strings.Builder
		for _, who := range []string{"host", "alice", "bob"} {
			l, _ := os.ReadFile(filepath.Join(dir, "demo", who+".log"))
			fmt.Fprintf(&b, "--- %s.log (tail)\n%s\n", who, tail(string(l), 3000))
		}
		return b.String()
	}
	if err != nil {
		t.Fatalf("the README's commands failed: %v\n%s\n%s", err, tail(string(out), 8000), logs())
	}
	s := string(out)
	for _, want := range []string{
		"while bob was away 3", "[direct to you] psst, only you can read this", // quickstart
		"added bob", "removed bob", // managed: bob joined by his key package, then was removed
		"hello bob, it is alice", "hi alice", // the contact's conversation
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the walk-through's output lacks %q:\n%s", want, tail(s, 8000))
		}
	}
	if left := processesUnder(t, dir); len(left) > 0 {
		t.Errorf("the README's commands left processes running:\n%s", strings.Join(left, "\n"))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
