package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/groupstate"
	tu "github.com/meshnode/meshnode/internal/testutil"
)

// messagesOf runs `messages --json` and decodes its lines.
func messagesOf(t *testing.T, home, group string) []map[string]any {
	t.Helper()
	r := meshnode(t, env(t), "messages", "--home", home, "--json", group)
	if r.code != 0 {
		t.Fatalf("messages: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("messages --json line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// textsOf are the texts of the text and direct messages, in order.
func textsOf(msgs []map[string]any) []string {
	var out []string
	for _, m := range msgs {
		if m["kind"] == "text" || m["kind"] == "direct" {
			out = append(out, m["text"].(string))
		}
	}
	return out
}

// waitTexts polls `messages --json` until it shows n texts.
func waitTexts(t *testing.T, home, group string, n int) []map[string]any {
	t.Helper()
	var msgs []map[string]any
	tu.Eventually(t, 60*time.Second, func() bool {
		msgs = messagesOf(t, home, group)
		return len(textsOf(msgs)) >= n
	}, "%d messages in %s at %s", n, group, home)
	return msgs
}

func hostAddrOf(t *testing.T, home string) string {
	t.Helper()
	id := jsonOf[map[string]any](t, meshnode(t, env(t), "id", "--home", home, "--json"))
	addrs, _ := id["addrs"].([]any)
	if len(addrs) == 0 {
		t.Fatalf("host without addresses: %v", id)
	}
	return addrs[0].(string)
}

func ok(t *testing.T, r result, what string) string {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: exit %d\n%s%s", what, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

func TestGroupFlow(t *testing.T) {
	host, _ := initHome(t, "--role", "host")
	alice, aliceFP := initHome(t, "--nick", "alice")
	bob, bobFP := initHome(t, "--nick", "bob")
	startRun(t, host, "--host-policy", "open")
	startRun(t, alice)
	bobd := startRun(t, bob)
	e := env(t)
	hostAddr := hostAddrOf(t, host)

	// Create: a summary, then the invite as the last line.
	out := ok(t, meshnode(t, e, "group", "create", "--home", alice, "book club", "--host", hostAddr), "group create")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	invite := lines[len(lines)-1]
	if !strings.HasPrefix(invite, "meshnode-invite-v1.") || !strings.Contains(out, hostAddr) {
		t.Fatalf("group create printed:\n%s", out)
	}
	if got := strings.TrimSpace(ok(t, meshnode(t, e, "group", "invite", "--home", alice, "book club"), "group invite")); !strings.HasPrefix(got, "meshnode-invite-v1.") {
		t.Errorf("group invite printed %q", got)
	}
	out = ok(t, meshnode(t, e, "group", "join", "--home", bob, invite), "group join")
	if !strings.Contains(out, "book club") {
		t.Errorf("group join printed:\n%s", out)
	}
	groups := jsonOf[[]map[string]any](t, meshnode(t, e, "group", "list", "--home", bob, "--json"))
	if len(groups) != 1 {
		t.Fatalf("bob's groups %v", groups)
	}
	keys(t, "group", groups[0], "id", "name", "epoch", "hosts", "can_write", "history", "members", "nick", "messages", "unread")
	gid := groups[0]["id"].(string)
	if groups[0]["name"] != "book club" || groups[0]["nick"] != "bob" || groups[0]["can_write"] != true {
		t.Errorf("bob's group %v", groups[0])
	}
	if out := ok(t, meshnode(t, e, "group", "list", "--home", alice), "group list"); !strings.Contains(out, gid) || !strings.Contains(out, "read-write") {
		t.Errorf("group list:\n%s", out)
	}

	// Both send; both read both, verified. TEXT is several words here.
	out = ok(t, meshnode(t, e, "send", "--home", alice, "book club", "hello", "from", "alice"), "alice send")
	if !strings.Contains(out, "stored_by") || !strings.Contains(out, hostAddr[strings.LastIndex(hostAddr, "/")+1:]) {
		t.Errorf("send printed:\n%s", out)
	}
	// TEXT - reads standard input.
	cmd := exec.Command(binary(t), "send", "--home", bob, gid, "-")
	cmd.Env = e
	cmd.Stdin = strings.NewReader("hi, bob here\n")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bob send from stdin: %v\n%s", err, b)
	}
	want := []string{"hello from alice", "hi, bob here"}
	for _, home := range []string{alice, bob} {
		msgs := waitTexts(t, home, gid, 2)
		if got := textsOf(msgs); !slices.Equal(got, want) {
			t.Errorf("%s shows %q", home, got)
		}
		for _, m := range msgs {
			if m["verified"] != true || m["group"] != gid || m["kind"] != "text" {
				t.Errorf("message %v", m)
			}
			for _, k := range []string{"id", "group", "author", "nick", "text", "sent", "kind", "verified"} {
				if _, ok := m[k]; !ok {
					t.Errorf("message lacks %q: %v", k, m)
				}
			}
		}
		if msgs[1]["author"] != bobFP || msgs[1]["nick"] != "bob" || msgs[0]["author"] != aliceFP {
			t.Errorf("authors %v, %v", msgs[0], msgs[1])
		}
	}
	// The readable form: time, nick, short fingerprint, text.
	if out := ok(t, meshnode(t, e, "messages", "--home", alice, "book club"), "messages"); !strings.Contains(out, "bob ("+bobFP[:9]+")  hi, bob here") {
		t.Errorf("messages printed:\n%s", out)
	}

	// Members, then a direct message only bob reads.
	tu.Eventually(t, 30*time.Second, func() bool {
		ms := jsonOf[[]map[string]any](t, meshnode(t, e, "group", "members", "--home", alice, "--json", gid))
		return len(ms) == 2
	}, "alice knows both members")
	ms := jsonOf[[]map[string]any](t, meshnode(t, e, "group", "members", "--home", alice, "--json", gid))
	keys(t, "member", ms[0], "fingerprint", "nick", "self")
	if out := ok(t, meshnode(t, e, "group", "members", "--home", alice, gid), "members"); !strings.Contains(out, bobFP) || !strings.Contains(out, "(you)") {
		t.Errorf("members printed:\n%s", out)
	}
	ok(t, meshnode(t, e, "send", "--home", alice, "--to", bobFP, gid, "psst, bob"), "direct")
	msgs := waitTexts(t, bob, gid, 3)
	if last := msgs[len(msgs)-1]; last["kind"] != "direct" || last["to"] != bobFP || last["text"] != "psst, bob" {
		t.Errorf("direct %v", last)
	}
	if out := ok(t, meshnode(t, e, "messages", "--home", bob, "--limit", "1", gid), "messages --limit"); !strings.Contains(out, "[direct to you] psst, bob") ||
		strings.Count(out, "\n") != 1 {
		t.Errorf("messages --limit 1 printed:\n%s", out)
	}

	// Bob goes offline; alice sends five; bob comes back and catches up,
	// each message once and in order.
	bobd.stop(t)
	for i := 1; i <= 5; i++ {
		r := meshnode(t, e, "send", "--home", alice, gid, fmt.Sprintf("while bob was away %d", i))
		ok(t, r, "send while bob is away")
		if strings.Contains(r.stderr, "warning") {
			t.Errorf("the host did not store a message: %s", r.stderr)
		}
	}
	startRun(t, bob)
	msgs = waitTexts(t, bob, gid, 8)
	want = []string{"hello from alice", "hi, bob here", "psst, bob"}
	for i := 1; i <= 5; i++ {
		want = append(want, fmt.Sprintf("while bob was away %d", i))
	}
	if got := textsOf(msgs); !slices.Equal(got, want) {
		t.Errorf("after the restart bob shows %q", got)
	}
	fetch := jsonOf[map[string]any](t, meshnode(t, e, "fetch", "--home", bob, "--json", gid))
	if fetch["group"] != gid || fetch["hosts"].(float64) < 1 || fetch["gaps"] != nil {
		t.Errorf("fetch %v", fetch)
	}
	if out := ok(t, meshnode(t, e, "fetch", "--home", bob, "book club"), "fetch"); !strings.Contains(out, "host(s)") || !strings.Contains(out, "No gaps") {
		t.Errorf("fetch printed:\n%s", out)
	}
	if got := textsOf(messagesOf(t, bob, gid)); len(got) != 8 {
		t.Errorf("after fetch bob shows %d messages", len(got))
	}

	// --follow: the existing messages, then new ones, until interrupted.
	follow := exec.Command(binary(t), "messages", "--home", bob, "--json", "--follow", "--limit", "2", gid)
	follow.Env = e
	stdout, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	follow.Stderr = &stderr
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { follow.Process.Kill(); follow.Wait() })
	lines2 := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines2 <- sc.Text()
		}
		close(lines2)
	}()
	next := func() map[string]any {
		t.Helper()
		select {
		case line, ok := <-lines2:
			if !ok {
				t.Fatalf("follow ended\n%s", stderr.String())
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("follow line %q: %v", line, err)
			}
			return m
		case <-time.After(60 * time.Second):
			t.Fatalf("follow printed nothing for a minute\n%s", stderr.String())
		}
		return nil
	}
	for _, w := range want[len(want)-2:] {
		if m := next(); m["text"] != w {
			t.Fatalf("follow listed %v, want %q", m, w)
		}
	}
	ok(t, meshnode(t, e, "send", "--home", alice, gid, "live"), "send while followed")
	if m := next(); m["text"] != "live" || m["verified"] != true {
		t.Fatalf("follow streamed %v", m)
	}
	if err := follow.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for range lines2 {
	}
	if err := follow.Wait(); err != nil {
		t.Errorf("follow after SIGINT: %v\n%s", err, stderr.String())
	}
}

func TestGroupCommandErrors(t *testing.T) {
	alice, _ := initHome(t, "--nick", "alice")
	other, otherFP := initHome(t)
	startRun(t, alice)
	e := env(t)
	out := ok(t, meshnode(t, e, "group", "create", "--home", alice, "solo"), "create without hosts")
	if !strings.Contains(out, "hosts") || !strings.Contains(out, "none") {
		t.Errorf("create without hosts printed:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	invite := lines[len(lines)-1]
	r := meshnode(t, e, "send", "--home", alice, "solo", "alone")
	if r.code != 0 || !strings.Contains(r.stderr, "warning: no host stored the message") {
		t.Errorf("send without hosts: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if g := jsonOf[[]map[string]any](t, meshnode(t, e, "group", "list", "--home", alice, "--json")); len(g) != 1 || g[0]["hosts"] == nil {
		t.Errorf("group list --json %v", g)
	}

	for _, tc := range []struct {
		name  string
		args  []string
		stdin string
		want  string
	}{
		{"unknown group, send", []string{"send", "nope", "x"}, "", "meshnode group list"},
		{"unknown group, messages", []string{"messages", "nope"}, "", "meshnode group list"},
		{"unknown group, follow", []string{"messages", "--follow", "nope"}, "", "meshnode group list"},
		{"unknown group, fetch", []string{"fetch", "nope"}, "", "meshnode group list"},
		{"unknown group, invite", []string{"group", "invite", "nope"}, "", "meshnode group list"},
		{"unknown group, members", []string{"group", "members", "nope"}, "", "meshnode group list"},
		{"malformed invite", []string{"group", "join", "meshnode-invite-v1.AAAA"}, "", "invite"},
		{"truncated invite", []string{"group", "join", invite[:len(invite)-4]}, "", "ask"},
		{"already a member", []string{"group", "join", invite}, "", "already"},
		{"direct to an unknown fingerprint", []string{"send", "--to", otherFP, "solo", "x"}, "", "no member of the group has that fingerprint"},
		{"direct to a malformed fingerprint", []string{"send", "--to", "zz", "solo", "x"}, "", "fingerprint"},
		{"oversize text", []string{"send", "solo", strings.Repeat("x", 70000)}, "", "at most"},
		{"oversize text on stdin", []string{"send", "solo", "-"}, strings.Repeat("y", 3<<20), "at most"},
		// Under the CLI's bound, over the node's exact one (the payload's
		// fixed fields take more than 50 bytes).
		{"text just over what fits", []string{"send", "solo", "-"}, strings.Repeat("z", groupstate.MaxPayloadSize-50), "at most"},
		{"empty text on stdin", []string{"send", "solo", "-"}, "\n", "empty"},
		{"no text", []string{"send", "solo"}, "", "requires at least 2 arg"},
		{"negative limit", []string{"messages", "--limit", "-1", "solo"}, "", "--limit"},
		{"host without /p2p/", []string{"group", "create", "x", "--host", "/ip4/127.0.0.1/tcp/4001"}, "", "/p2p/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{}, tc.args[:1]...), "--home", alice)
			args = append(args, tc.args[1:]...)
			cmd := exec.Command(binary(t), args...)
			cmd.Env = e
			cmd.Stdin = strings.NewReader(tc.stdin)
			b, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(b), tc.want) {
				t.Fatalf("%v: %v, want a failure mentioning %q:\n%.2000s", tc.args, err, tc.want, b)
			}
		})
	}
	// Only the first message was stored.
	if got := textsOf(messagesOf(t, alice, "solo")); !slices.Equal(got, []string{"alone"}) {
		t.Errorf("after the failures: %q", got)
	}
	// Without a daemon: how to start one.
	if r := meshnode(t, e, "group", "list", "--home", other); r.code == 0 || !strings.Contains(r.stderr, "meshnode run --home "+other) {
		t.Errorf("group list without a daemon: %d\n%s", r.code, r.stderr)
	}
}
