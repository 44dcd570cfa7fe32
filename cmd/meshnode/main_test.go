package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/daemon"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/node"
)

// The tests run the real binary, built once into a temporary directory.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "meshnode-bin"); buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "meshnode")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

const testPass = "correct horse battery staple"

// cheapKDF are the hidden init flags that keep Argon2id fast in tests.
var cheapKDF = []string{"--kdf-time", "1", "--kdf-memory-kib", "64", "--kdf-threads", "1"}

// env is the test process's environment without MESHNODE_* variables,
// with HOME pointing to a temporary directory, plus extra.
func env(t *testing.T, extra ...string) []string {
	t.Helper()
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MESHNODE_") && !strings.HasPrefix(kv, "HOME=") {
			out = append(out, kv)
		}
	}
	return append(append(out, "HOME="+t.TempDir()), extra...)
}

type result struct {
	code           int
	stdout, stderr string
}

// meshnode runs the binary to completion.
func meshnode(t *testing.T, environ []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = environ
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, stdout.String(), stderr.String()}
}

// initHome runs init and returns the home and the fingerprint it printed.
func initHome(t *testing.T, extra ...string) (string, string) {
	t.Helper()
	home := filepath.Join(t.TempDir(), "home")
	args := append([]string{"init", "--home", home, "--listen", "/ip4/127.0.0.1/tcp/0"}, cheapKDF...)
	r := meshnode(t, env(t, "MESHNODE_PASSPHRASE="+testPass), append(args, extra...)...)
	if r.code != 0 {
		t.Fatalf("init: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	m := regexp.MustCompile(`fingerprint\s+(\S+)`).FindStringSubmatch(r.stdout)
	if m == nil || !strings.Contains(r.stdout, "meshnode run --home "+home) {
		t.Fatalf("init output lacks the fingerprint or the next step:\n%s", r.stdout)
	}
	return home, m[1]
}

// syncBuffer is a bytes.Buffer safe for the process's writer and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type daemonProc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

// startRun starts "meshnode run" in the background and waits until its
// api.addr appears. The process is killed at cleanup if still running.
func startRun(t *testing.T, home string, args ...string) *daemonProc {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"run", "--home", home}, args...)...)
	cmd.Env = env(t, "MESHNODE_PASSPHRASE="+testPass)
	p := &daemonProc{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
	})
	tu.Eventually(t, 30*time.Second, func() bool {
		select {
		case <-p.done:
			t.Fatalf("run exited early: %v\n%s", p.err, p.stderr)
		default:
		}
		return answers(home)
	}, "the daemon of %s to answer", home)
	return p
}

// answers reports whether something listens at the address in the home's
// api.addr (a stale file from a killed daemon leads nowhere).
func answers(home string) bool {
	b, err := os.ReadFile(filepath.Join(home, "api.addr"))
	if err != nil {
		return false
	}
	network, addr, err := api.ParseAddress(strings.TrimSpace(string(b)))
	if err != nil {
		return false
	}
	c, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// stop sends SIGTERM and waits for a clean exit.
func (p *daemonProc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("run did not stop after SIGTERM\n%s", p.stderr)
	}
	if p.err != nil {
		t.Fatalf("run exited with %v after SIGTERM\n%s", p.err, p.stderr)
	}
}

func jsonOf[T any](t *testing.T, r result) T {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var v T
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	return v
}

// keys checks that a JSON object has exactly the contract's fields.
func keys(t *testing.T, what string, m map[string]any, want ...string) {
	t.Helper()
	for _, k := range want {
		if _, ok := m[k]; !ok {
			t.Errorf("%s lacks %q: %v", what, k, m)
		}
	}
	if len(m) != len(want) {
		t.Errorf("%s has fields %v, want exactly %v", what, m, want)
	}
}

func TestInitRunIDStatus(t *testing.T) {
	home, fp := initHome(t, "--nick", "alice")
	d := startRun(t, home, "--metrics", "127.0.0.1:0", "--log-format", "json")
	e := env(t)

	id := jsonOf[map[string]any](t, meshnode(t, e, "id", "--home", home, "--json"))
	keys(t, "id", id, "peer_id", "addrs", "role", "fingerprint")
	peerID, _ := id["peer_id"].(string)
	if id["fingerprint"] != fp || id["role"] != "member" || peerID == "" {
		t.Errorf("id %v (init printed fingerprint %s)", id, fp)
	}
	addrs, _ := id["addrs"].([]any)
	if len(addrs) == 0 {
		t.Fatal("no addrs")
	}
	for _, a := range addrs {
		if s, _ := a.(string); !strings.HasPrefix(s, "/ip4/127.0.0.1/tcp/") || !strings.HasSuffix(s, "/p2p/"+peerID) {
			t.Errorf("address %v", a)
		}
	}

	// $MESHNODE_HOME stands in for --home.
	st := jsonOf[map[string]any](t, meshnode(t, env(t, "MESHNODE_HOME="+home), "status", "--json"))
	keys(t, "status", st, "peer_id", "role", "host_policy", "addrs", "uptime_seconds", "connected_peers",
		"hosted_mailboxes", "store", "version", "admission", "outbox")
	adm, _ := st["admission"].(map[string]any)
	keys(t, "status.admission", adm, "state", "refusals", "joined_topics", "max_joined_topics",
		"new_mailbox_limit_bytes", "new_mailboxes_refused", "relay_streams", "fetch_streams", "sync_streams")
	if adm["state"] != "normal" {
		t.Errorf("a fresh node's admission state %v", adm["state"])
	}
	store, _ := st["store"].(map[string]any)
	keys(t, "status.store", store, "envelopes", "bytes", "disk_free_bytes", "disk_full")
	if st["peer_id"] != peerID || st["host_policy"] != "own" || st["hosted_mailboxes"] != 0.0 {
		t.Errorf("status %v", st)
	}

	// The human forms name the same things.
	if r := meshnode(t, e, "status", "--home", home); r.code != 0 || !strings.Contains(r.stdout, peerID) {
		t.Errorf("status: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := meshnode(t, e, "id", "--home", home); r.code != 0 || !strings.Contains(r.stdout, fp) {
		t.Errorf("id: %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	d.stop(t)
	if _, err := os.Stat(filepath.Join(home, "api.addr")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("api.addr after SIGTERM: %v", err)
	}
	for _, dir := range []string{"data", "member"} {
		if entries, err := os.ReadDir(filepath.Join(home, dir)); err != nil || len(entries) == 0 {
			t.Errorf("%s/ is missing or empty after a run: %v", dir, err)
		}
	}
	logs := d.stderr.String()
	for _, want := range []string{`"msg":"daemon started"`, `"msg":"daemon stopped"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	tok, _ := os.ReadFile(filepath.Join(home, "api.token"))
	for _, secret := range []string{testPass, strings.TrimSpace(string(tok))} {
		if strings.Contains(logs, secret) {
			t.Error("the daemon logged a secret")
		}
	}

	r := meshnode(t, e, "status", "--home", home)
	if r.code == 0 || !strings.Contains(r.stderr, "not running") || !strings.Contains(r.stderr, "meshnode run --home "+home) {
		t.Errorf("status without a daemon: %d\n%s", r.code, r.stderr)
	}
}

func TestTwoDaemonsSideBySide(t *testing.T) {
	homeA, fpA := initHome(t)
	homeB, fpB := initHome(t, "--role", "host", "--pq")
	a := startRun(t, homeA)
	b := startRun(t, homeB, "--listen", "/ip4/127.0.0.1/tcp/0", "--host-policy", "open")
	e := env(t)

	idA := jsonOf[map[string]any](t, meshnode(t, e, "id", "--home", homeA, "--json"))
	idB := jsonOf[map[string]any](t, meshnode(t, e, "id", "--home", homeB, "--json"))
	if idA["peer_id"] == idB["peer_id"] || idA["fingerprint"] != fpA || idB["fingerprint"] != fpB || idB["role"] != "host" {
		t.Errorf("ids %v and %v", idA, idB)
	}
	stB := jsonOf[map[string]any](t, meshnode(t, e, "status", "--home", homeB, "--json"))
	if stB["host_policy"] != "open" {
		t.Errorf("flag did not override config: %v", stB)
	}
	addrA, _ := os.ReadFile(filepath.Join(homeA, "api.addr"))
	addrB, _ := os.ReadFile(filepath.Join(homeB, "api.addr"))
	if bytes.Equal(addrA, addrB) {
		t.Errorf("both daemons on %s", addrA)
	}

	// A second daemon on a home in use fails clearly, and the first runs on.
	r := meshnode(t, env(t, "MESHNODE_PASSPHRASE="+testPass), "run", "--home", homeA)
	if r.code == 0 || !strings.Contains(r.stderr, "another meshnode daemon is running") {
		t.Errorf("second run: %d\n%s", r.code, r.stderr)
	}
	if r := meshnode(t, e, "status", "--home", homeA); r.code != 0 {
		t.Errorf("first daemon after a second run: %d\n%s", r.code, r.stderr)
	}
	a.stop(t)
	b.stop(t)
}

func TestRunFailures(t *testing.T) {
	home, _ := initHome(t)
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"wrong passphrase", []string{"MESHNODE_PASSPHRASE=wrong"}, nil, "wrong passphrase"},
		{"no passphrase, no terminal", nil, nil, "MESHNODE_PASSPHRASE"},
		{"bad flag value", []string{"MESHNODE_PASSPHRASE=" + testPass}, []string{"--host-policy", "everyone"}, "host policy"},
		{"bad api address", []string{"MESHNODE_PASSPHRASE=" + testPass}, []string{"--api", "8080"}, "api address"},
		{"not a home", []string{"MESHNODE_PASSPHRASE=" + testPass}, []string{"--home", t.TempDir()}, "meshnode init"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := meshnode(t, env(t, tc.env...), append([]string{"run", "--home", home}, tc.args...)...)
			if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d, want failure mentioning %q:\n%s", r.code, tc.want, r.stderr)
			}
			if _, err := os.Stat(filepath.Join(home, "api.addr")); !errors.Is(err, os.ErrNotExist) {
				t.Fatal("a failed run left api.addr")
			}
		})
	}
}

func TestInitCases(t *testing.T) {
	home, _ := initHome(t)
	cfg, _ := os.ReadFile(filepath.Join(home, "config.json"))
	r := meshnode(t, env(t, "MESHNODE_PASSPHRASE="+testPass), append([]string{"init", "--home", home}, cheapKDF...)...)
	if r.code == 0 || !strings.Contains(r.stderr, "already") {
		t.Errorf("init over a home: %d\n%s", r.code, r.stderr)
	}
	if cfg2, _ := os.ReadFile(filepath.Join(home, "config.json")); !bytes.Equal(cfg, cfg2) {
		t.Error("init over a home changed it")
	}

	dir := filepath.Join(t.TempDir(), "h")
	r = meshnode(t, env(t), "init", "--home", dir)
	if r.code == 0 || !strings.Contains(r.stderr, "MESHNODE_PASSPHRASE") {
		t.Errorf("init without a passphrase: %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Error("failed init created the home")
	}

	// Unencrypted: a warning, and run needs no passphrase.
	r = meshnode(t, env(t), "init", "--home", dir, "--unencrypted", "--listen", "/ip4/127.0.0.1/tcp/0")
	if r.code != 0 || !strings.Contains(r.stderr, "NOT encrypted") {
		t.Fatalf("unencrypted init: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	cmd := exec.Command(binary(t), "run", "--home", dir)
	cmd.Env = env(t)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tu.Eventually(t, 30*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(dir, "api.addr"))
		return err == nil || ctx.Err() != nil
	}, "unencrypted daemon up")
	cmd.Process.Signal(syscall.SIGINT)
	if err := <-done; err != nil {
		t.Fatalf("unencrypted run: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "NOT encrypted") {
		t.Errorf("run did not warn about the unencrypted keystore:\n%s", stderr.String())
	}
}

func TestRestartAfterCrash(t *testing.T) {
	home, fp := initHome(t, "--role", "bot")
	d := startRun(t, home)
	e := env(t)
	before := jsonOf[map[string]any](t, meshnode(t, e, "id", "--home", home, "--json"))
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d.done

	// The stale api.addr leads nowhere: reported as not running.
	if _, err := os.Stat(filepath.Join(home, "api.addr")); err != nil {
		t.Fatalf("SIGKILL removed api.addr? %v", err)
	}
	r := meshnode(t, e, "status", "--home", home)
	if r.code == 0 || !strings.Contains(r.stderr, "not running") {
		t.Fatalf("status after a crash: %d\n%s", r.code, r.stderr)
	}

	// The kernel dropped the lock: the home starts again, with the bot's
	// stable peer ID.
	d = startRun(t, home)
	after := jsonOf[map[string]any](t, meshnode(t, e, "id", "--home", home, "--json"))
	if after["peer_id"] != before["peer_id"] || after["fingerprint"] != fp {
		t.Errorf("after restart %v, before %v", after, before)
	}
	d.stop(t)
}

func TestRunLimitFlags(t *testing.T) {
	cfg := daemon.DefaultConfig(node.RoleHost)
	if err := setLimits(&cfg, []string{"new_mailbox_rate=3", " request_timeout = 2s"}); err != nil {
		t.Fatal(err)
	}
	if cfg.Limits.NewMailboxRate != 3 || cfg.Limits.RequestTimeout != daemon.Duration(2*time.Second) {
		t.Fatalf("limits %+v", *cfg.Limits)
	}
	for _, bad := range []string{"new_mailbox_rate", "=3", "nope=1", "conns_per_ip=x"} {
		if err := setLimits(&cfg, []string{bad}); !errors.Is(err, daemon.ErrConfig) {
			t.Errorf("--limit %q: %v", bad, err)
		}
	}
}
