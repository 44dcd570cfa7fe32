package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshnode/meshnode/api"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/node"
)

// TestWebAppEndpoints: paged history, read markers and the inbox, verified
// fingerprints, the network view, the QR code and the event stream, over
// the API token.
func TestWebAppEndpoints(t *testing.T) {
	leakCheck(t)
	alice, bob := startMember(t, "alice"), startMember(t, "bob")
	ctx := context.Background()
	created, err := alice.c.CreateGroup(ctx, "club", []string{alice.addr()})
	if err != nil {
		t.Fatal(err)
	}
	gid := created.Group.ID
	if _, err := bob.c.JoinGroup(ctx, created.Invite, ""); err != nil {
		t.Fatal(err)
	}
	ectx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	events, err := bob.c.Events(ectx)
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	for i := range 12 {
		if _, err := alice.c.Send(ctx, gid, fmt.Sprintf("m%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Every message comes as an event, with its position.
	seen := map[string]string{}
	for len(seen) < 12 {
		ev, err := events.Next()
		if err != nil {
			t.Fatalf("events after %d messages: %v", len(seen), err)
		}
		if ev.Type == api.EventMessage && ev.Message.Kind == api.KindText {
			if ev.Group != gid || ev.Message.Cursor == "" {
				t.Fatalf("message event %+v", ev)
			}
			seen[ev.Message.Text] = ev.Message.Cursor
		}
	}

	// Paged upward.
	p, err := bob.c.History(ctx, gid, api.HistoryQuery{Limit: 5})
	if err != nil || len(p.Messages) != 5 || !p.More || p.Messages[4].Text != "m11" {
		t.Fatalf("latest page: %+v %v", p, err)
	}
	if p.Messages[4].Cursor != seen["m11"] {
		t.Fatalf("the event's position %q is not the listing's %q", seen["m11"], p.Messages[4].Cursor)
	}
	older, err := bob.c.History(ctx, gid, api.HistoryQuery{Limit: 5, Before: p.Messages[0].Cursor})
	if err != nil || len(older.Messages) != 5 || older.Messages[4].Text != "m06" {
		t.Fatalf("older page: %+v %v", older, err)
	}
	if _, err := bob.c.History(ctx, gid, api.HistoryQuery{Limit: 5, Before: "nope"}); !apiCode(err, api.CodeBadCursor) {
		t.Fatalf("bad cursor: %v", err)
	}
	if _, err := bob.c.History(ctx, gid, api.HistoryQuery{Limit: 501}); !apiCode(err, api.CodeBadRequest) {
		t.Fatalf("page too large: %v", err)
	}

	// Unread counts in the inbox, and a marker that moves.
	inbox, err := bob.c.Inbox(ctx)
	if err != nil || len(inbox) != 1 || inbox[0].Read.Unread != 12 || inbox[0].Read.Last.Text != "m11" {
		t.Fatalf("inbox: %+v %v", inbox, err)
	}
	rs, err := bob.c.MarkRead(ctx, gid, seen["m07"])
	if err != nil || rs.Unread != 4 {
		t.Fatalf("mark read: %+v %v", rs, err)
	}
	for {
		ev, err := events.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == api.EventRead {
			if ev.Read.Unread != 4 || ev.Read.Cursor != seen["m07"] {
				t.Fatalf("read event %+v", ev.Read)
			}
			break
		}
	}
	if rs, err := bob.c.ReadState(ctx, "club"); err != nil || rs.Unread != 4 {
		t.Fatalf("read state: %+v %v", rs, err)
	}

	// Verified fingerprints.
	if v, err := bob.c.SetVerified(ctx, strings.ToUpper(alice.fp), true); err != nil || v.Fingerprint != alice.fp {
		t.Fatalf("verify: %+v %v", v, err)
	}
	if vs, err := bob.c.Verified(ctx); err != nil || len(vs) != 1 || vs[0].Fingerprint != alice.fp {
		t.Fatalf("verified: %+v %v", vs, err)
	}
	if _, err := bob.c.SetVerified(ctx, "abc", true); !apiCode(err, api.CodeBadRequest) {
		t.Fatalf("malformed fingerprint: %v", err)
	}
	if _, err := bob.c.SetVerified(ctx, alice.fp, false); err != nil {
		t.Fatal(err)
	}
	if vs, _ := bob.c.Verified(ctx); len(vs) != 0 {
		t.Fatalf("after clearing: %+v", vs)
	}

	// The network: alice's node is the group's host, connected.
	nw, err := bob.c.Network(ctx)
	if err != nil || len(nw.Groups) != 1 || len(nw.Groups[0].Hosts) != 1 || !nw.Groups[0].Hosts[0].Connected || len(nw.Peers) == 0 {
		t.Fatalf("network: %+v %v", nw, err)
	}
	tu.Eventually(t, 20*time.Second, func() bool {
		nw, err := bob.c.Network(ctx)
		return err == nil && nw.Groups[0].CatchUp != nil && !nw.Groups[0].CatchUp.Running && nw.Groups[0].CatchUp.Steps > 0
	}, "bob's join catch-up is reported")

	// The invite's QR code is a PNG.
	b, err := alice.c.InviteQR(ctx, gid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(b)); err != nil {
		t.Fatalf("QR code: %v", err)
	}
}

// browser is an HTTP client that behaves like a page of the app: it keeps
// the session cookie and sends the headers a browser sends.
type browser struct {
	t      *testing.T
	base   string
	hc     *http.Client
	csrf   string
	origin string
}

func newBrowser(t *testing.T, base string) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, base: base, origin: base, hc: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

func (b *browser) do(method, path, body string, hdr map[string]string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.base+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if method != http.MethodGet {
		req.Header.Set("Origin", b.origin)
		req.Header.Set("Content-Type", "application/json")
		if b.csrf != "" {
			req.Header.Set(api.CSRFHeader, b.csrf)
		}
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, string(out)
}

// login spends a login URL's secret as the app's page does.
func (b *browser) login(loginURL string) *http.Response {
	b.t.Helper()
	u, err := url.Parse(loginURL)
	if err != nil {
		b.t.Fatal(err)
	}
	resp, _ := b.do(http.MethodPost, "/ui/login", `{"secret":"`+u.Fragment+`"}`, nil)
	return resp
}

// TestWebAppSession: the login URL works once, the cookie's flags, the
// session's CSRF token, and refusals of foreign hosts, origins and
// requests without the token. The API token keeps working unchanged.
func TestWebAppSession(t *testing.T) {
	leakCheck(t)
	alice := startMember(t, "alice")
	ctx := context.Background()
	l, err := alice.c.UILogin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + alice.d.APIAddr()
	if alice.d.UIURL() != base || !strings.HasPrefix(l.URL, base+"/login#") || time.Until(l.Expires) < 4*time.Minute {
		t.Fatalf("login URL %+v (app at %s)", l, alice.d.UIURL())
	}

	// The page and its assets need no session, and carry the CSP.
	b := newBrowser(t, base)
	resp, page := b.do(http.MethodGet, "/login", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") ||
		!strings.Contains(page, "<script type=\"module\"") {
		t.Fatalf("login page: %d %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
	// Without a session the API refuses.
	if resp, _ := b.do(http.MethodGet, api.PathGroups, "", nil); resp.StatusCode != 401 {
		t.Fatalf("API without a session: %d", resp.StatusCode)
	}
	// A wrong secret, then the right one, then the right one again.
	if resp, _ := b.do(http.MethodPost, "/ui/login", `{"secret":"`+strings.Repeat("A", 43)+`"}`, nil); resp.StatusCode != 401 {
		t.Fatalf("wrong secret: %d", resp.StatusCode)
	}
	// A login from another origin is refused, and does not spend the secret.
	other := newBrowser(t, base)
	other.origin = "http://evil.example"
	if resp := other.login(l.URL); resp.StatusCode != 403 {
		t.Fatalf("login from another origin: %d", resp.StatusCode)
	}
	resp = b.login(l.URL)
	if resp.StatusCode != 200 {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		cookie = c
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || !strings.HasPrefix(cookie.Name, "meshnode_session_") {
		t.Fatalf("session cookie %+v", cookie)
	}
	if resp := newBrowser(t, base).login(l.URL); resp.StatusCode != 401 {
		t.Fatalf("second use of a login URL: %d", resp.StatusCode)
	}

	// The session works for reads; writes need Origin and the CSRF token.
	if resp, body := b.do(http.MethodGet, api.PathGroups, "", nil); resp.StatusCode != 200 || body != "[]\n" {
		t.Fatalf("groups: %d %q", resp.StatusCode, body)
	}
	create := `{"name":"g","hosts":[]}`
	if resp, _ := b.do(http.MethodPost, api.PathGroups, create, nil); resp.StatusCode != 403 {
		t.Fatalf("a write without the CSRF token: %d", resp.StatusCode)
	}
	resp, body := b.do(http.MethodGet, api.PathUISession, "", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `"csrf"`) || !strings.Contains(body, alice.fp) {
		t.Fatalf("session: %d %s", resp.StatusCode, body)
	}
	b.csrf = body[strings.Index(body, `"csrf":"`)+8:]
	b.csrf = b.csrf[:strings.Index(b.csrf, `"`)]
	for _, tc := range []struct {
		name string
		hdr  map[string]string
	}{
		{"wrong CSRF token", map[string]string{api.CSRFHeader: strings.Repeat("x", 43)}},
		{"foreign origin", map[string]string{"Origin": "http://evil.example"}},
		{"no origin", map[string]string{"Origin": ""}},
		{"cross-site fetch", map[string]string{"Sec-Fetch-Site": "cross-site"}},
	} {
		if resp, body := b.do(http.MethodPost, api.PathGroups, create, tc.hdr); resp.StatusCode != 403 || !strings.Contains(body, api.CodeBadOrigin) {
			t.Errorf("%s: %d %s", tc.name, resp.StatusCode, body)
		}
	}
	if gs, _ := alice.c.Groups(ctx); len(gs) != 0 {
		t.Fatalf("a refused request created a group: %+v", gs)
	}
	if resp, body := b.do(http.MethodPost, api.PathGroups, create, nil); resp.StatusCode != 201 {
		t.Fatalf("create with the session: %d %s", resp.StatusCode, body)
	}
	// A cross-site read is refused too (a page elsewhere cannot read it
	// anyway, but it could time it).
	if resp, _ := b.do(http.MethodGet, api.PathGroups, "", map[string]string{"Sec-Fetch-Site": "cross-site"}); resp.StatusCode != 403 {
		t.Fatalf("cross-site read: %d", resp.StatusCode)
	}
	// A session cannot mint login URLs for other browsers.
	if resp, _ := b.do(http.MethodPost, api.PathUILogin, "", nil); resp.StatusCode != 403 {
		t.Fatalf("login URL from a session: %d", resp.StatusCode)
	}

	// DNS rebinding: another host name is refused, whatever the session.
	for _, host := range []string{"evil.example:" + portOf(alice.d.APIAddr()), "localhost.evil.example:" + portOf(alice.d.APIAddr()), "127.0.0.1:1"} {
		req, _ := http.NewRequest(http.MethodGet, base+api.PathGroups, nil)
		req.Host = host
		resp, err := b.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Errorf("Host %s: %d", host, resp.StatusCode)
		}
		req, _ = http.NewRequest(http.MethodGet, base+"/", nil)
		req.Host = host
		if resp, err = http.DefaultClient.Do(req); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Errorf("page for Host %s: %d", host, resp.StatusCode)
		}
	}
	// localhost with the right port is this app.
	lb := newBrowser(t, "http://localhost:"+portOf(alice.d.APIAddr()))
	if resp, _ := lb.do(http.MethodGet, "/", "", nil); resp.StatusCode != 200 {
		t.Errorf("localhost: %d", resp.StatusCode)
	}

	// The API token works as before, with any Host.
	if gs, err := alice.c.Groups(ctx); err != nil || len(gs) != 1 {
		t.Fatalf("API token: %+v %v", gs, err)
	}

	// Logging out ends the session.
	if resp, _ := b.do(http.MethodDelete, api.PathUISession, "", nil); resp.StatusCode != 200 {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, _ := b.do(http.MethodGet, api.PathGroups, "", nil); resp.StatusCode != 401 {
		t.Fatalf("after logout: %d", resp.StatusCode)
	}
}

// lockedBuffer is a log sink safe for the daemon's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func portOf(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }

// TestWebAppAddresses: the app on its own address, off, and behind a
// Unix-socket API.
func TestWebAppAddresses(t *testing.T) {
	res := initHome(t, node.RoleMember)
	d := startDaemon(t, res.Home, func(c *Config) { c.UIAddr = "127.0.0.1:0" })
	if d.UIAddr() == d.APIAddr() || !strings.HasPrefix(d.UIURL(), "http://127.0.0.1:") {
		t.Fatalf("own address: ui %s api %s", d.UIAddr(), d.APIAddr())
	}
	resp, err := http.Get(d.UIURL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("app on its own address: %d", resp.StatusCode)
	}
	l, err := d.NewLoginURL()
	if err != nil || !strings.HasPrefix(l.URL, d.UIURL()+"/login#") {
		t.Fatalf("login URL %+v %v", l, err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	d = startDaemon(t, res.Home, func(c *Config) { c.UIAddr = UIOff })
	if d.UIURL() != "" {
		t.Fatalf("app off, yet at %q", d.UIURL())
	}
	c := client(t, res.Home)
	if _, err := c.UILogin(context.Background()); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("login URL with the app off: %v", err)
	}
	if status, _, _ := rawGet(t, d, "GET", "/", ""); status != 401 {
		t.Fatalf("page with the app off: %d", status)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	sock := shortSocket(t)
	d = startDaemon(t, res.Home, func(c *Config) { c.APIAddr = "unix:" + sock })
	if !strings.HasPrefix(d.UIURL(), "http://127.0.0.1:") {
		t.Fatalf("app of a Unix-socket API at %q", d.UIURL())
	}
	for _, bad := range []string{"unix:/tmp/x", "nowhere", "1.2.3.4"} {
		cfg := DefaultConfig(node.RoleMember)
		cfg.UIAddr = bad
		if err := cfg.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("ui_addr %q accepted", bad)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// Bound beyond loopback: served, and the daemon warns.
	var logs lockedBuffer
	d = startDaemon(t, res.Home, func(c *Config) { c.UIAddr = "0.0.0.0:0" },
		WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	if !strings.HasPrefix(d.UIURL(), "http://127.0.0.1:") || !strings.Contains(logs.String(), "web app listens beyond this machine") {
		t.Fatalf("app on 0.0.0.0: url %q, log %q", d.UIURL(), logs.String())
	}
	if base, loop := uiBase("0.0.0.0:80"); base != "http://127.0.0.1:80" || loop {
		t.Errorf("wildcard: %s %v", base, loop)
	}
	if base, loop := uiBase("[::]:80"); base != "http://[::1]:80" || loop {
		t.Errorf("IPv6 wildcard: %s %v", base, loop)
	}
	if _, loop := uiBase("[::1]:80"); !loop {
		t.Error("::1 is loopback")
	}
}
