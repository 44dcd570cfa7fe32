// Package scripts holds the tests of the repository's scripts and of the
// command sequences the README shows (they run the real binary, as a user
// would).
package scripts

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	tu "github.com/meshnode/meshnode/internal/testutil"
)

// The tests run the real binary, built once.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "meshnode-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "meshnode")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/meshnode").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// cleanEnv is the test's environment without MESHNODE_* variables, with
// HOME and TMPDIR in dir, plus extra.
func cleanEnv(dir string, extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MESHNODE_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "TMPDIR=") && !strings.HasPrefix(kv, "KEEP=") {
			out = append(out, kv)
		}
	}
	home := filepath.Join(dir, "home")
	os.MkdirAll(home, 0o700)
	return append(append(out, "HOME="+home, "TMPDIR="+dir), extra...)
}

// processesUnder lists the processes whose command line names a path under
// dir (the daemons run with --home inside the demo directory).
func processesUnder(t *testing.T, dir string) []string { return tu.ProcessesUnder(t, dir) }

// killUnder kills what processesUnder finds (a failed test must not leave
// daemons behind either).
func killUnder(t *testing.T, dir string) {
	for _, p := range processesUnder(t, dir) {
		var pid int
		fmt.Sscanf(p, "%d:", &pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// The quickstart takes bob offline (his daemon really stops: no second
// daemon on his home), shows him catching up on what alice sent
// meanwhile, and leaves no process behind.
func TestQuickstart(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	t.Cleanup(func() { killUnder(t, dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "quickstart.sh")
	cmd.Env = cleanEnv(dir, "MESHNODE_BIN="+bin, "KEEP=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("quickstart.sh: %v\n%s", err, out)
	}
	s := string(out)
	back := strings.Index(s, "== bob comes back")
	if !strings.Contains(s, "bob is offline") || back < 0 || !strings.Contains(s, "bob caught up") {
		t.Fatalf("the quickstart does not show bob offline and back:\n%s", s)
	}
	for i := 1; i <= 3; i++ {
		if !strings.Contains(s[back:], fmt.Sprintf("while bob was away %d", i)) {
			t.Errorf("bob's messages after he came back lack %q:\n%s", fmt.Sprintf("while bob was away %d", i), s)
		}
	}
	demos, _ := filepath.Glob(filepath.Join(dir, "meshnode-demo.*"))
	if len(demos) != 1 {
		t.Fatalf("KEEP=1 kept %v", demos)
	}
	bobLog, err := os.ReadFile(filepath.Join(demos[0], "bob.log"))
	if err != nil {
		t.Fatal(err)
	}
	log := string(bobLog)
	if strings.Contains(log, "another meshnode daemon") || strings.Count(log, "daemon started") != 2 || strings.Count(log, "daemon stopped") != 2 {
		t.Errorf("bob's daemon did not stop and start again cleanly; bob.log:\n%s", log)
	}
	if left := processesUnder(t, dir); len(left) > 0 {
		t.Errorf("the quickstart left processes running:\n%s", strings.Join(left, "\n"))
	}
}

// Interrupted half way (Ctrl-C), the quickstart still stops its daemons.
func TestQuickstartInterrupted(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	t.Cleanup(func() { killUnder(t, dir) })
	cmd := exec.Command("bash", "quickstart.sh")
	cmd.Env = cleanEnv(dir, "MESHNODE_BIN="+bin)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(out.String(), "== alice creates") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the quickstart did not get to the group:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(processesUnder(t, dir)) < 3 {
		t.Fatalf("expected three daemons running, found %v", processesUnder(t, dir))
	}
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Fatalf("the quickstart did not end after SIGINT:\n%s", out.String())
	}
	if left := processesUnder(t, dir); len(left) > 0 {
		t.Errorf("an interrupted quickstart left processes running:\n%s", strings.Join(left, "\n"))
	}
}

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
