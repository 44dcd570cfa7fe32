package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/meshnode/meshnode/daemon"
	"github.com/meshnode/meshnode/groupstate"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/keymgmt"
)

// Every flag's help names its argument with a word, never with words a
// backquoted phrase in its usage text turned into (pflag takes the first
// `quoted` word of a usage as the argument's name).
func TestFlagArgumentNames(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			name, _ := pflag.UnquoteUsage(f)
			if strings.ContainsAny(name, " \t") || len(name) > 16 {
				t.Errorf("%s --%s: help shows the argument as %q", c.CommandPath(), f.Name, name)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot(&bytes.Buffer{}, &bytes.Buffer{}))
}

// A command line that does not parse is answered with the error and the
// command's usage line.
func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"send", "only-a-group"},
		{"send", "--no-such-flag", "g", "text"},
		{"group", "create"},
		{"messages", "a", "b"},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code == 0 {
			t.Errorf("%v: exit 0", args)
			continue
		}
		if !strings.Contains(errb.String(), "usage: meshnode "+args[0]) || !strings.Contains(errb.String(), "--help") {
			t.Errorf("%v: no usage line:\n%s", args, errb.String())
		}
	}
	// An error that is not about the command line has no usage line.
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"status", "--home", t.TempDir()}, &out, &errb); code == 0 || strings.Contains(errb.String(), "usage:") {
		t.Errorf("status on a directory that is not a home: %d\n%s", code, errb.String())
	}
}

// version names the build: never the bare placeholder "dev".
func TestVersionCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &out, &errb); code != 0 {
		t.Fatalf("version: %d\n%s", code, errb.String())
	}
	if !regexp.MustCompile(`^meshnode \S+.* go1\.\d+`).MatchString(out.String()) || strings.Contains(out.String(), " dev ") {
		t.Errorf("version printed %q", out.String())
	}
}

// init refuses a passphrase of a few characters, and a host is set up to
// serve the groups that name it.
func TestInitDefaults(t *testing.T) {
	home := filepath.Join(t.TempDir(), "h")
	r := meshnode(t, env(t, "MESHNODE_PASSPHRASE=abc"), append([]string{"init", "--home", home}, cheapKDF...)...)
	if r.code == 0 || !strings.Contains(r.stderr, "at least 8") {
		t.Errorf("init with a 3-character passphrase: %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(home); err == nil {
		t.Error("a refused init created the home")
	}
	for role, policy := range map[string]string{"host": "open", "bot": "own", "member": "own"} {
		home, _ := initHome(t, "--role", role)
		b, err := os.ReadFile(filepath.Join(home, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			HostPolicy string `json:"host_policy"`
		}
		if err := json.Unmarshal(b, &cfg); err != nil || cfg.HostPolicy != policy {
			t.Errorf("init --role %s wrote host_policy %q (%v), want %q", role, cfg.HostPolicy, err, policy)
		}
	}
}

// What a user meets while talking to a daemon: errors without the
// packages' names, one stated size limit, duplicate group names, and a
// follow that says so when the daemon goes away.
func TestCLIMessagesToUsers(t *testing.T) {
	alice, _ := initHome(t, "--nick", "alice")
	d := startRun(t, alice)
	e := env(t)

	r := meshnode(t, e, "send", "--home", alice, "no such group", "hi")
	if r.code == 0 || !strings.HasPrefix(r.stderr, "meshnode: unknown group") {
		t.Errorf("send to an unknown group: %d\n%s", r.code, r.stderr)
	}
	if regexp.MustCompile(`\b(daemon|node|store|groupstate|api): `).MatchString(r.stderr) {
		t.Errorf("error carries internal prefixes:\n%s", r.stderr)
	}

	// Two groups named alike: said at creation, and the ambiguous name's
	// error lists both IDs.
	first := jsonGroupID(t, ok(t, meshnode(t, e, "group", "create", "--home", alice, "ops"), "create ops"))
	r = meshnode(t, e, "group", "create", "--home", alice, "ops")
	second := jsonGroupID(t, ok(t, r, "create ops again"))
	if !strings.Contains(r.stderr, `other group(s) named "ops"`) || !strings.Contains(r.stderr, first) {
		t.Errorf("second group named ops: no note naming the first (%s):\n%s", first, r.stderr)
	}
	r = meshnode(t, e, "send", "--home", alice, "ops", "hi")
	if r.code == 0 || !strings.Contains(r.stderr, first) || !strings.Contains(r.stderr, second) {
		t.Errorf("send to an ambiguous name does not list the IDs %s and %s:\n%s", first, second, r.stderr)
	}

	// The size limit: the CLI's and the daemon's are the same number.
	limit := fmt.Sprint(groupstate.MaxTextLen)
	ok(t, meshnode(t, e, "send", "--home", alice, first, strings.Repeat("x", groupstate.MaxTextLen)), "a message of the largest size")
	r = meshnode(t, e, "send", "--home", alice, first, strings.Repeat("x", groupstate.MaxTextLen+1))
	if r.code == 0 || !strings.Contains(r.stderr, "at most "+limit+" bytes") {
		t.Errorf("a message one byte over the limit: %d\n%s", r.code, r.stderr)
	}

	// messages --follow ends with an error when the daemon stops.
	follow := exec.Command(binary(t), "messages", "--home", alice, first, "--follow")
	follow.Env = e
	var fout, ferr syncBuffer
	follow.Stdout, follow.Stderr = &fout, &ferr
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- follow.Wait() }()
	t.Cleanup(func() {
		follow.Process.Kill()
	})
	// Following: it has listed the group's message.
	tu.Eventually(t, 30*time.Second, func() bool { return strings.Contains(fout.String(), "xxxx") }, "the follow to list the messages")
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(ferr.String(), "daemon") {
			t.Errorf("messages --follow when the daemon stopped: %v\n%s", err, ferr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("messages --follow did not end when the daemon stopped")
	}
}

// jsonGroupID finds the group ID in group create's output.
func jsonGroupID(t *testing.T, out string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s+id\s+([0-9a-f]{32})$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no group ID in:\n%s", out)
	}
	return m[1]
}

// A service hands the passphrase over in a file (a systemd credential).
func TestPassphraseFile(t *testing.T) {
	home, _ := initHome(t)
	pf := filepath.Join(t.TempDir(), "passphrase")
	if err := os.WriteFile(pf, []byte(testPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary(t), "run", "--home", home)
	cmd.Env = env(t, "MESHNODE_PASSPHRASE_FILE="+pf)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	tu.Eventually(t, 30*time.Second, func() bool {
		select {
		case err := <-done:
			t.Fatalf("run with a passphrase file exited: %v\n%s", err, stderr.String())
		default:
		}
		return answers(home)
	}, "the daemon to start with its passphrase from a file")
	cmd.Process.Signal(syscall.SIGTERM)
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
}

// New profiles are post-quantum (X-Wing) unless init --classic; --pq, the
// old opt-in, still works and cannot be combined with --classic.
func TestInitKeySuite(t *testing.T) {
	for _, tc := range []struct {
		flags []string
		want  keymgmt.Suite
	}{
		{nil, keymgmt.SuitePQ},
		{[]string{"--pq"}, keymgmt.SuitePQ},
		{[]string{"--classic"}, keymgmt.SuiteX25519},
	} {
		home := filepath.Join(t.TempDir(), "h")
		args := append([]string{"init", "--home", home, "--unencrypted"}, cheapKDF...)
		r := meshnode(t, env(t), append(args, tc.flags...)...)
		if r.code != 0 {
			t.Fatalf("init %v: %d\n%s", tc.flags, r.code, r.stderr)
		}
		ks, err := keymgmt.LoadKeystore(filepath.Join(home, daemon.FileKeystore), nil)
		if err != nil || ks.Identity.Suite() != tc.want {
			t.Fatalf("init %v made a %v profile (%v), want %v", tc.flags, ks.Identity.Suite(), err, tc.want)
		}
		if want := map[keymgmt.Suite]string{keymgmt.SuitePQ: "post-quantum", keymgmt.SuiteX25519: "classic"}[tc.want]; !strings.Contains(r.stdout, want) {
			t.Errorf("init %v does not say %q:\n%s", tc.flags, want, r.stdout)
		}
	}
	home := filepath.Join(t.TempDir(), "h")
	r := meshnode(t, env(t), append([]string{"init", "--home", home, "--unencrypted", "--pq", "--classic"}, cheapKDF...)...)
	if r.code == 0 || !strings.Contains(r.stderr, "classic") {
		t.Errorf("init --pq --classic: %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(home); err == nil {
		t.Error("a refused init created the home")
	}
}
