package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tu "github.com/meshnode/meshnode/internal/testutil"
)

// TestUICommand: `meshnode ui` prints a one-time login URL of the app the
// daemon serves (`--ui ADDR` moves it), `open` also opens it, and
// `verify` marks, lists and clears fingerprints.
func TestUICommand(t *testing.T) {
	home, _ := initHome(t)
	startRun(t, home, "--ui", "127.0.0.1:0")
	// An opener that records what it was asked to open.
	bin := t.TempDir()
	opened := filepath.Join(t.TempDir(), "opened")
	script := "#!/bin/sh\necho \"$1\" > " + opened + "\n"
	if err := os.WriteFile(filepath.Join(bin, "xdg-open"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e := append(env(t), "PATH="+bin+":"+os.Getenv("PATH"))

	r := meshnode(t, e, "ui", "--home", home)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "http://127.0.0.1:") || !strings.Contains(r.stdout, "/login#") ||
		!strings.Contains(r.stderr, "one login") {
		t.Fatalf("ui: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	addr, _ := os.ReadFile(filepath.Join(home, "api.addr"))
	if strings.Contains(r.stdout, strings.TrimSpace(string(addr))) {
		t.Errorf("with --ui, the app is on the API's address: %s", r.stdout)
	}
	url := strings.TrimSpace(r.stdout)
	resp, err := http.Get(strings.Split(url, "#")[0])
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Errorf("the login page: %d %v", resp.StatusCode, resp.Header)
	}

	r = meshnode(t, e, "open", "--home", home)
	if r.code != 0 {
		t.Fatalf("open: %d\n%s", r.code, r.stderr)
	}
	tu.Eventually(t, 10*time.Second, func() bool {
		b, err := os.ReadFile(opened)
		return err == nil && strings.TrimSpace(string(b)) == strings.TrimSpace(r.stdout)
	}, "open hands the URL to the opener")
	if strings.TrimSpace(r.stdout) == url {
		t.Error("two login URLs are the same")
	}
	var l struct {
		URL     string    `json:"url"`
		Expires time.Time `json:"expires"`
	}
	r = meshnode(t, e, "ui", "--home", home, "--json")
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil || !strings.Contains(l.URL, "/login#") || time.Until(l.Expires) < time.Minute {
		t.Fatalf("ui --json: %q %v", r.stdout, err)
	}

	const fp = "abcd-efgh-ijkl-mnop-qrst-uvwx-yz23-4567"
	if r := meshnode(t, e, "verify", "--home", home, strings.ToUpper(strings.ReplaceAll(fp, "-", ""))); r.code != 0 || !strings.Contains(r.stdout, fp+" marked as verified") {
		t.Fatalf("verify: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := meshnode(t, e, "verify", "--home", home); r.code != 0 || !strings.HasPrefix(r.stdout, fp+"  since ") {
		t.Fatalf("verify list: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := meshnode(t, e, "verify", "--home", home, "not-a-fingerprint"); r.code == 0 {
		t.Fatal("a malformed fingerprint was accepted")
	}
	if r := meshnode(t, e, "verify", "--home", home, "--remove", fp); r.code != 0 {
		t.Fatalf("verify --remove: %d\n%s", r.code, r.stderr)
	}
	if r := meshnode(t, e, "verify", "--home", home, "--json"); r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("after --remove: %q", r.stdout)
	}
}
