package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tu "github.com/meshnode/meshnode/internal/testutil"
)

// Issue 18, item 1 from the command line: send --reply-to, react, edit,
// delete, and how messages shows them (readable and --json).
func TestMessageRefsCLI(t *testing.T) {
	host, _ := initHome(t, "--role", "host")
	alice, _ := initHome(t, "--nick", "alice")
	bob, _ := initHome(t, "--nick", "bob")
	startRun(t, host, "--host-policy", "open")
	startRun(t, alice)
	startRun(t, bob)
	e := env(t)
	out := ok(t, meshnode(t, e, "group", "create", "--home", alice, "refs", "--host", hostAddrOf(t, host)), "group create")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	ok(t, meshnode(t, e, "group", "join", "--home", bob, lines[len(lines)-1]), "group join")

	sent := jsonOf[map[string]any](t, meshnode(t, e, "send", "--home", alice, "--json", "refs", "lunch at noon?"))
	id := sent["id"].(string)
	waitTexts(t, bob, "refs", 1)
	ok(t, meshnode(t, e, "send", "--home", bob, "--reply-to", id[:8], "refs", "yes"), "send --reply-to")
	ok(t, meshnode(t, e, "react", "--home", bob, id[:8], "👍"), "react")
	ok(t, meshnode(t, e, "react", "--home", alice, id[:8], "🎉"), "react")
	ok(t, meshnode(t, e, "react", "--home", alice, id[:8], "🎉"), "react again: taken back")
	r := meshnode(t, e, "edit", "--home", bob, id[:8], "no lunch")
	if r.code == 0 || !strings.Contains(r.stderr, "author") {
		t.Fatalf("bob edits alice's message: exit %d\n%s", r.code, r.stderr)
	}
	if r := meshnode(t, e, "delete", "--home", bob, id); r.code == 0 {
		t.Fatalf("bob deletes alice's message:\n%s", r.stdout)
	}
	if r := meshnode(t, e, "react", "--home", bob, "00000000", "👍"); r.code == 0 || !strings.Contains(r.stderr, "no message") {
		t.Fatalf("a reaction to an unknown message: exit %d\n%s", r.code, r.stderr)
	}
	ok(t, meshnode(t, e, "edit", "--home", alice, id, "lunch", "at", "one?"), "edit")

	var orig, reply map[string]any
	tu.Eventually(t, 60*time.Second, func() bool {
		orig, reply = nil, nil
		for _, m := range messagesOf(t, bob, "refs") {
			switch {
			case m["id"] == id:
				orig = m
			case m["kind"] == "reply":
				reply = m
			}
		}
		rs, _ := orig["reactions"].([]any)
		return orig != nil && reply != nil && orig["text"] == "lunch at one?" && orig["edited"] == true && len(rs) == 1
	}, "bob sees the edit, his reaction and his reply")
	rs := orig["reactions"].([]any)[0].(map[string]any)
	if rs["emoji"] != "👍" || rs["count"] != 1.0 || rs["mine"] != true {
		t.Errorf("reaction %v", rs)
	}
	q, _ := reply["quote"].(map[string]any)
	if reply["reply_to"] != id || q == nil || q["text"] != "lunch at one?" || q["nick"] != "alice" {
		t.Errorf("reply %v", reply)
	}
	text := ok(t, meshnode(t, e, "messages", "--home", bob, "refs"), "messages")
	for _, want := range []string{"lunch at one?  (edited)  [👍 1*]  #" + id[:8], `[reply to #` + id[:8] + ` alice: "lunch at one?"] yes`} {
		if !strings.Contains(text, want) {
			t.Errorf("messages lacks %q:\n%s", want, text)
		}
	}

	ok(t, meshnode(t, e, "delete", "--home", alice, id[:8]), "delete")
	tu.Eventually(t, 60*time.Second, func() bool {
		for _, m := range messagesOf(t, bob, "refs") {
			if m["id"] == id {
				return m["deleted"] == true && m["text"] == ""
			}
		}
		return false
	}, "bob sees alice's message deleted")
	if text := ok(t, meshnode(t, e, "messages", "--home", bob, "refs"), "messages"); !strings.Contains(text, "[deleted by its author]") ||
		strings.Contains(text, "lunch at") {
		t.Errorf("after the delete:\n%s", text)
	}
}

// Issue 18, item 3 from the command line: group list counts what is
// unread, messages --unread shows it, read GROUP marks it read.
func TestUnreadCLI(t *testing.T) {
	alice, _ := initHome(t, "--nick", "alice")
	bob, _ := initHome(t, "--nick", "bob")
	startRun(t, alice)
	startRun(t, bob)
	e := env(t)
	out := ok(t, meshnode(t, e, "group", "create", "--home", alice, "news", "--host", hostAddrOf(t, alice)), "group create")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	ok(t, meshnode(t, e, "group", "join", "--home", bob, lines[len(lines)-1]), "group join")
	unreadOf := func() float64 {
		gs := jsonOf[[]map[string]any](t, meshnode(t, e, "group", "list", "--home", bob, "--json"))
		if len(gs) != 1 {
			t.Fatalf("bob's groups: %v", gs)
		}
		return gs[0]["unread"].(float64)
	}
	for _, txt := range []string{"one", "two"} {
		ok(t, meshnode(t, e, "send", "--home", alice, "news", txt), "send")
	}
	waitTexts(t, bob, "news", 2)
	if n := unreadOf(); n != 2 {
		t.Fatalf("unread %v, want 2", n)
	}
	if out := ok(t, meshnode(t, e, "group", "list", "--home", bob), "group list"); !strings.Contains(out, "UNREAD") {
		t.Errorf("group list:\n%s", out)
	}
	if out := ok(t, meshnode(t, e, "messages", "--home", bob, "--unread", "news"), "messages --unread"); !strings.Contains(out, "one") || !strings.Contains(out, "two") {
		t.Errorf("messages --unread:\n%s", out)
	}
	if out := ok(t, meshnode(t, e, "read", "--home", bob, "news"), "read"); !strings.Contains(out, "Marked 2 unread") {
		t.Errorf("read printed:\n%s", out)
	}
	if n := unreadOf(); n != 0 {
		t.Fatalf("unread after read: %v", n)
	}
	if out := ok(t, meshnode(t, e, "messages", "--home", bob, "--unread", "news"), "messages --unread"); strings.TrimSpace(out) != "" {
		t.Errorf("messages --unread after read:\n%s", out)
	}
	ok(t, meshnode(t, e, "send", "--home", alice, "news", "three"), "send")
	// Own messages do not count; bob's reply to it is his own.
	ok(t, meshnode(t, e, "send", "--home", bob, "news", "mine"), "send")
	waitTexts(t, bob, "news", 4)
	if n := unreadOf(); n != 1 {
		t.Fatalf("unread %v, want 1", n)
	}
	out = ok(t, meshnode(t, e, "messages", "--home", bob, "--unread", "--json", "news"), "messages --unread --json")
	if !strings.Contains(out, `"text":"three"`) || strings.Contains(out, `"text":"two"`) {
		t.Errorf("messages --unread --json:\n%s", out)
	}
}

// setConfig edits a home's config.json.
func setConfig(t *testing.T, home string, edit func(map[string]any)) {
	t.Helper()
	path := filepath.Join(home, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	edit(c)
	if b, err = json.MarshalIndent(c, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Issue 18, item 2 from the command line: send --file, then download on
// another node, byte for byte, refusing to overwrite; a file over the
// configured limit is refused.
func TestFilesCLI(t *testing.T) {
	alice, _ := initHome(t, "--nick", "alice")
	bob, _ := initHome(t, "--nick", "bob")
	setConfig(t, alice, func(c map[string]any) { c["max_file_mib"] = 1 })
	startRun(t, alice)
	startRun(t, bob)
	e := env(t)
	out := ok(t, meshnode(t, e, "group", "create", "--home", alice, "share", "--host", hostAddrOf(t, alice)), "group create")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	ok(t, meshnode(t, e, "group", "join", "--home", bob, lines[len(lines)-1]), "group join")
	dir := t.TempDir()
	data := make([]byte, 150_000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	src := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sent := jsonOf[map[string]any](t, meshnode(t, e, "send", "--home", alice, "--json", "--file", src, "share"))
	id := sent["id"].(string)
	big := filepath.Join(dir, "big.bin")
	if err := os.WriteFile(big, make([]byte, 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := meshnode(t, e, "send", "--home", alice, "--file", big, "share"); r.code == 0 || !strings.Contains(r.stderr, "at most") {
		t.Fatalf("a file over the limit: exit %d\n%s", r.code, r.stderr)
	}
	tu.Eventually(t, 60*time.Second, func() bool {
		for _, m := range messagesOf(t, bob, "share") {
			if m["id"] == id {
				f, _ := m["file"].(map[string]any)
				return m["kind"] == "file" && f["name"] == "notes.txt" && f["size"] == 150000.0
			}
		}
		return false
	}, "bob sees the file message")
	if text := ok(t, meshnode(t, e, "messages", "--home", bob, "share"), "messages"); !strings.Contains(text, "[file notes.txt, text/plain; charset=utf-8, 146.5 KiB: meshnode download "+id[:8]+"]") {
		t.Errorf("messages:\n%s", text)
	}
	dest := filepath.Join(dir, "got.txt")
	r := meshnode(t, e, "download", "--home", bob, id[:10], "--out", dest)
	ok(t, r, "download")
	got, err := os.ReadFile(dest)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("downloaded %d bytes (%v)", len(got), err)
	}
	if _, err := os.Stat(dest + ".part"); !os.IsNotExist(err) {
		t.Fatal("a .part file is left")
	}
	if r := meshnode(t, e, "download", "--home", bob, id, "--out", dest); r.code == 0 || !strings.Contains(r.stderr, "exists") {
		t.Fatalf("overwriting: exit %d\n%s", r.code, r.stderr)
	}
}

// Issue 18, item 4 from the command line.
func TestSearchCLI(t *testing.T) {
	alice, _ := initHome(t, "--nick", "alice")
	startRun(t, alice)
	e := env(t)
	ok(t, meshnode(t, e, "group", "create", "--home", alice, "club"), "group create")
	ok(t, meshnode(t, e, "group", "create", "--home", alice, "work"), "group create")
	ok(t, meshnode(t, e, "send", "--home", alice, "club", "Meeting on Tuesday"), "send")
	ok(t, meshnode(t, e, "send", "--home", alice, "work", "team meeting notes"), "send")
	ok(t, meshnode(t, e, "send", "--home", alice, "work", "lunch?"), "send")
	out := ok(t, meshnode(t, e, "search", "--home", alice, "meet"), "search")
	if !strings.Contains(out, "[club]") || !strings.Contains(out, "[work]") || strings.Contains(out, "lunch") {
		t.Errorf("search meet:\n%s", out)
	}
	out = ok(t, meshnode(t, e, "search", "--home", alice, "--group", "work", "--json", "meet"), "search --group --json")
	if strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, `"text":"team meeting notes"`) {
		t.Errorf("search --group work --json:\n%s", out)
	}
	if r := meshnode(t, e, "search", "--home", alice, "?"); r.code == 0 {
		t.Errorf("a query without a word succeeded:\n%s", r.stdout)
	}
}

// Issue 18, item 7: with the daemon stopped, messages, group list and
// search read the home's database directly (and say so); the daemon
// starts again afterwards (the lock was released).
func TestReadWithoutDaemon(t *testing.T) {
	alice, _ := initHome(t, "--nick", "alice")
	d := startRun(t, alice)
	e := env(t)
	ok(t, meshnode(t, e, "group", "create", "--home", alice, "diary"), "group create")
	ok(t, meshnode(t, e, "send", "--home", alice, "diary", "dear diary, today was long"), "send")
	ok(t, meshnode(t, e, "send", "--home", alice, "diary", "tomorrow: rest"), "send")
	d.stop(t)
	noPass := e
	e = env(t, "MESHNODE_PASSPHRASE="+testPass)
	r := meshnode(t, e, "messages", "--home", alice, "diary")
	ok(t, r, "messages offline")
	if !strings.Contains(r.stdout, "today was long") || !strings.Contains(r.stdout, "tomorrow: rest") || !strings.Contains(r.stderr, "no daemon runs") {
		t.Errorf("messages offline:\n%s%s", r.stdout, r.stderr)
	}
	gs := jsonOf[[]map[string]any](t, meshnode(t, e, "group", "list", "--home", alice, "--json"))
	if len(gs) != 1 || gs[0]["name"] != "diary" || gs[0]["messages"] != 2.0 {
		t.Errorf("group list offline: %v", gs)
	}
	if out := ok(t, meshnode(t, e, "search", "--home", alice, "tomorrow"), "search offline"); !strings.Contains(out, "tomorrow: rest") || strings.Contains(out, "diary, today") {
		t.Errorf("search offline:\n%s", out)
	}
	// Without the passphrase: a clear error.
	if r := meshnode(t, noPass, "messages", "--home", alice, "diary"); r.code == 0 || !strings.Contains(r.stderr, "passphrase") {
		t.Errorf("offline without a passphrase: exit %d\n%s", r.code, r.stderr)
	}
	startRun(t, alice)
	if out := ok(t, meshnode(t, e, "messages", "--home", alice, "diary"), "messages"); !strings.Contains(out, "tomorrow: rest") {
		t.Errorf("after the restart:\n%s", out)
	}
}
