package webui_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/node"
)

// hostile is the corpus of the XSS test: markup, script URLs, bidi
// overrides, and one very long line.
var hostile = []string{
	`<img src=x onerror="window.__pwned='img'">`,
	`<script>window.__pwned='script'</script>`,
	`javascript:window.__pwned='url'`,
	`[click me](javascript:window.__pwned='markdown')`,
	`<a href="javascript:window.__pwned='anchor'">click</a>`,
	`https://example.com/"><img src=x onerror="window.__pwned='url-break'">`,
	`<svg onload="window.__pwned='svg'"><iframe srcdoc="<script>parent.__pwned='iframe'</script>"></iframe>`,
	`data:text/html,<script>window.__pwned='data'</script>`,
	"abc \u202Edcba\u202C tail \u2067isolate\u2069 \u200Fmark",
	`{{constructor.constructor('window.__pwned="template"')()}} ${window.__pwned='template'}`,
	`<style>body{display:none}</style><link rel=stylesheet href=https://evil.example/x.css>`,
}

// TestBrowserHostileContentInert: hostile message text, nicks and group
// names are shown as text, exactly, and nothing in them runs, loads or
// escapes its box. Nothing is requested of anyone but the node.
func TestBrowserHostileContentInert(t *testing.T) {
	alice := startPerson(t, "alice")
	// A nick with a right-to-left override and markup.
	// A nick with markup (the protocol refuses bidi controls in nicks and
	// group names; the messages below carry them).
	mallory := startPerson(t, "<b onmouseover=alert(1)>mallory</b>")
	ctx := context.Background()
	name := `<img src=x onerror="window.__pwned='group'"> club`
	created, err := mallory.c.CreateGroup(ctx, name, []string{mallory.addr()})
	if err != nil {
		t.Fatal(err)
	}
	gid := created.Group.ID
	if _, err := alice.c.JoinGroup(ctx, created.Invite, ""); err != nil {
		t.Fatal(err)
	}
	corpus := append([]string{}, hostile...)
	// One line as long as a message may be (a message travels in one
	// envelope of 64 KiB; the text is what fits beside its signature,
	// nick and parents).
	long := strings.Repeat("A", 60000)
	corpus = append(corpus, long)
	for _, text := range corpus {
		if _, err := mallory.c.Send(ctx, gid, text); err != nil {
			t.Fatalf("sending %.40q: %v", text, err)
		}
	}
	tu.Eventually(t, 30*time.Second, func() bool {
		ms, err := alice.c.Messages(ctx, gid, 0)
		return err == nil && len(ms) >= len(corpus)
	}, "alice has the corpus")

	a := openPage(t, alice, 1280, 800)
	a.eval(`window.__violations = []; document.addEventListener('securitypolicyviolation', e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI)); true`, nil)
	a.openChat(gid)
	a.wait(fmt.Sprintf(`document.querySelectorAll('.timeline .msg .text').length >= %d`, len(corpus)), "the corpus shows")
	// A live one too, while the chat is open.
	if _, err := mallory.c.Send(ctx, gid, `<img src=x onerror="window.__pwned='live'">`); err != nil {
		t.Fatal(err)
	}
	a.wait(`[...document.querySelectorAll('.timeline .msg .text')].some(e => e.textContent.includes("'live'"))`, "the live message shows")
	checkInert(t, a, hostile, name)
	checkLongLine(t, a, long)

	// The same corpus written by alice in her page shows as her own.
	for _, text := range hostile[:4] {
		a.setValue(`.compose-input`, text)
		a.do(chromedp.Focus(chromedp.CSS(`.compose-input`)), chromedp.KeyEvent("\r"))
		a.wait(fmt.Sprintf(`[...document.querySelectorAll('.msg.own .text')].some(e => e.textContent === %s)`, jsString(text)), "alice's own hostile message shows")
	}
	checkInert(t, a, hostile, name)
	a.checkRequests()
}

// checkLongLine: the 60 KB line shows its start, folded, inside its
// bubble; unfolded it shows whole, wrapped, and nothing scrolls sideways.
func checkLongLine(t *testing.T, a *page, long string) {
	t.Helper()
	var box struct {
		Overflow bool    `json:"overflow"`
		Folded   bool    `json:"folded"`
		Prefix   bool    `json:"prefix"`
		Width    int     `json:"width"`
		Whole    bool    `json:"whole"`
		Height   int     `json:"height"`
		OpenMS   float64 `json:"open_ms"`
	}
	a.eval(`(() => {
		const tl = document.querySelector('.timeline');
		const bubble = [...document.querySelectorAll('.timeline .msg .bubble')].find(e => e.querySelector('.fold'));
		const text = bubble.querySelector('.text');
		const out = {folded: text.classList.contains('folded') && text.getBoundingClientRect().height < 600,
			prefix: text.textContent.length >= 1000 && /^A+$/.test(text.textContent),
			width: Math.round(text.getBoundingClientRect().width)};
		const t0 = performance.now();
		bubble.querySelector('.fold').click();
		const open = bubble.querySelector('.text');
		out.height = Math.round(open.getBoundingClientRect().height);
		out.open_ms = performance.now() - t0;
		out.whole = open.textContent.length === 60000 && /^A+$/.test(open.textContent);
		out.overflow = tl.scrollWidth > tl.clientWidth + 1 || document.documentElement.scrollWidth > innerWidth + 1;
		return out;
	})()`, &box)
	t.Logf("the 60 KB line: %+v", box)
	if box.Overflow || !box.Folded || !box.Prefix || box.Width > 800 || !box.Whole || box.Height < 1000 {
		t.Errorf("the 60 KB line: %+v", box)
	}
}

func checkInert(t *testing.T, a *page, corpus []string, groupName string) {
	t.Helper()
	var pwned any
	a.eval(`window.__pwned === undefined ? null : String(window.__pwned)`, &pwned)
	if pwned != nil {
		t.Fatalf("hostile content ran: %v", pwned)
	}
	var n int
	a.eval(`document.querySelectorAll('.text img, .text script, .text iframe, .text svg, .text style, .text link, .text b, img:not([src^="/"]), iframe, object, embed').length`, &n)
	if n != 0 {
		t.Fatalf("%d elements were made from message text", n)
	}
	var handlers []string
	a.eval(`[...document.querySelectorAll('*')].flatMap(e => [...e.attributes].filter(x => x.name.startsWith('on')).map(x => e.tagName + ' ' + x.name))`, &handlers)
	if len(handlers) != 0 {
		t.Fatalf("event handler attributes in the page: %q", handlers)
	}
	var hrefs []string
	a.eval(`[...document.querySelectorAll('a[href]')].map(e => e.getAttribute('href'))`, &hrefs)
	for _, h := range hrefs {
		if !strings.HasPrefix(h, "#") && !strings.HasPrefix(h, "https://") && !strings.HasPrefix(h, "http://") {
			t.Errorf("a link to %q", h)
		}
		if strings.Contains(strings.ToLower(h), "javascript") {
			t.Errorf("a script link %q", h)
		}
	}
	// Every text shows exactly as written.
	var shown []string
	a.eval(`[...document.querySelectorAll('.timeline .msg .text')].map(e => e.textContent)`, &shown)
	for _, want := range corpus {
		if !contains(shown, want) {
			t.Errorf("not shown as written: %.60q", want)
		}
	}
	// Names are isolated runs of text: the override cannot reorder what
	// is around them.
	var nicks []string
	a.eval(`[...document.querySelectorAll('.msg-head .nick')].map(e => e.tagName + ':' + e.textContent)`, &nicks)
	if len(nicks) == 0 || nicks[0] != "BDI:<b onmouseover=alert(1)>mallory</b>" {
		t.Errorf("the nick shows as %q", nicks)
	}
	if got := a.str(`document.querySelector('.conv-title h2 bdi').textContent`); got != groupName {
		t.Errorf("the group name shows as %q", got)
	}
	var violations []string
	a.eval(`window.__violations`, &violations)
	if len(violations) != 0 {
		t.Errorf("CSP violations: %q", violations)
	}
}

// TestBrowserForeignOriginRefused: a page of another origin (another port
// of the same machine: same site, so the SameSite cookie goes along)
// cannot make the app's node do anything, and a page served under a
// rebound name (DNS rebinding) gets nothing.
func TestBrowserForeignOriginRefused(t *testing.T) {
	alice := startPerson(t, "alice")
	ctx := context.Background()
	a := openPage(t, alice, 1280, 800)
	base := alice.d.UIURL()
	port := base[strings.LastIndex(base, ":")+1:]

	// The attacker's page, on another port of 127.0.0.1.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<!doctype html><title>evil</title><p>evil</p>")
	}))
	t.Cleanup(evil.Close)
	// The victim visits it in the same browser (same cookies).
	e := a
	e.do(chromedp.Navigate(evil.URL))
	// Logged-in victim's cookie is in this browser context (same site):
	// try simple (no-cors) and CORS requests, GET and POST.
	var results []string
	e.eval(fmt.Sprintf(`(async () => {
		const out = [];
		const target = %q;
		const body = JSON.stringify({name: 'pwned', hosts: []});
		for (const [mode, method] of [['no-cors', 'POST'], ['cors', 'POST'], ['cors', 'GET']]) {
			try {
				const r = await fetch(target + '/v1/groups', {method, mode, credentials: 'include',
					headers: mode === 'cors' && method === 'POST' ? {'Content-Type': 'application/json', 'X-CSRF-Token': 'guess'} : {},
					body: method === 'POST' ? body : undefined});
				out.push(mode + ' ' + method + ' ' + r.type + ' ' + r.status);
			} catch (err) {
				out.push(mode + ' ' + method + ' blocked');
			}
		}
		// A form post, the oldest trick.
		const f = document.createElement('form');
		f.method = 'POST'; f.action = target + '/v1/groups'; f.enctype = 'text/plain';
		const i = document.createElement('input'); i.name = '{"name":"pwned2","hosts":[],"x":"'; i.value = '"}';
		f.append(i); document.body.append(f);
		const frame = document.createElement('iframe'); frame.name = 'sink'; document.body.append(frame);
		f.target = 'sink'; f.submit();
		await new Promise(r => setTimeout(r, 1500));
		return out;
	})()`, base), &results)
	t.Logf("cross-origin attempts: %q", results)
	for _, r := range results {
		if strings.HasSuffix(r, " 200") || strings.HasSuffix(r, " 201") {
			t.Errorf("a cross-origin request succeeded: %s", r)
		}
	}
	if gs, err := alice.c.Groups(ctx); err != nil || len(gs) != 0 {
		t.Fatalf("a foreign page created a group: %+v %v", gs, err)
	}

	// DNS rebinding: the attacker's name now points at 127.0.0.1; the
	// browser sends Host: rebind.test, and the node refuses it.
	r := a
	r.do(chromedp.Navigate("http://rebind.test:" + port + "/"))
	body := r.str(`document.body.textContent`)
	if !strings.Contains(body, "bad_origin") || strings.Contains(body, "meshnode's web app") {
		t.Fatalf("the app under a rebound name: %q", body)
	}
	var status int
	r.eval(`fetch('/v1/groups', {credentials: 'include'}).then(r => r.status)`, &status)
	if status != 403 {
		t.Fatalf("the API under a rebound name answered %d", status)
	}
	// The real page still works, with the session it had.
	a.do(chromedp.Navigate(base + "/"))
	a.wait(`document.body.dataset.ready === 'true' && !!document.querySelector('.chat-list')`, "the app is unharmed")
}

var _ = node.RoleMember
