package webui_test

// The harness of the browser tests: real member daemons on loopback, and
// real headless Chromium (Debian's chromium) driven with chromedp. Every
// page gets a browser context of its own (its own cookies), like two
// people on two machines.
//
// Without Chromium the tests skip, except under CI (CI=true), where they
// fail: CI must not pass without having run them (.ci/run installs the
// browser).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/daemon"
	"github.com/meshnode/meshnode/keymgmt"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/store"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// cheapKDF keeps Argon2id fast in tests; never for real keystores.
var cheapKDF = keymgmt.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

const testPass = "correct horse battery staple"

// person is a member daemon with its API client.
type person struct {
	nick string
	d    *daemon.Daemon
	c    *api.Client
	fp   string
}

func (p *person) addr() string { return p.d.Node().Addrs()[0].String() }

// startPerson starts a member daemon (in-memory host store, encrypted
// member database on disk) whose node processes its store often.
func startPerson(t testing.TB, nick string, edit ...func(*node.Params)) *person {
	t.Helper()
	ip := daemon.DefaultInitParams()
	ip.Nick = nick
	ip.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	ip.KDF = cheapKDF
	res, err := daemon.Init(filepath.Join(t.TempDir(), "home"), ip, []byte(testPass))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := res.Home.Config()
	if err != nil {
		t.Fatal(err)
	}
	params := func(p *node.Params) {
		p.Store = store.InMemoryParams()
		p.ProcessInterval = 200 * time.Millisecond
		p.ManageInterval = 300 * time.Millisecond
		for _, e := range edit {
			e(p)
		}
	}
	d, err := daemon.Start(context.Background(), res.Home, cfg, func() ([]byte, error) { return []byte(testPass), nil },
		daemon.WithLogger(quiet), daemon.WithNodeParams(params))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	c, err := res.Home.Client(api.WithTimeout(30 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &person{nick: nick, d: d, c: c, fp: res.Fingerprint}
}

// The browser is started once for the package and shared by the tests.
var (
	browserOnce sync.Once
	browserCtx  context.Context
	browserErr  error
	browserStop func()
)

// chromiumPath finds the browser: $MESHNODE_CHROMIUM, or chromium on PATH.
func chromiumPath() (string, error) {
	if p := os.Getenv("MESHNODE_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no chromium on PATH (apt-get install -y chromium, or set MESHNODE_CHROMIUM)")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if browserStop != nil {
		browserStop()
	}
	os.Exit(code)
}

// browser returns the shared browser, starting it on first use. A
// browser that cannot start skips the test, or fails it under CI.
func browser(t testing.TB) context.Context {
	t.Helper()
	browserOnce.Do(func() {
		path, err := chromiumPath()
		if err != nil {
			browserErr = err
			return
		}
		dir, err := os.MkdirTemp("", "meshnode-chromium-")
		if err != nil {
			browserErr = err
			return
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(path),
			chromedp.UserDataDir(dir),
			chromedp.NoSandbox,
			chromedp.DisableGPU,
			chromedp.Flag("disable-quic", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("enable-precise-memory-info", true),
			// A name of the attacker's that resolves to this machine: the
			// DNS-rebinding test opens the app under it.
			chromedp.Flag("host-resolver-rules", "MAP rebind.test 127.0.0.1"),
			chromedp.WindowSize(1280, 800),
		)
		alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancel := chromedp.NewContext(alloc)
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[int]("1")); err != nil {
			cancel()
			cancelAlloc()
			os.RemoveAll(dir)
			browserErr = fmt.Errorf("starting %s: %w", path, err)
			return
		}
		browserCtx = ctx
		browserStop = func() {
			cancel()
			cancelAlloc()
			os.RemoveAll(dir)
		}
	})
	if browserErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("browser tests need Chromium under CI: %v", browserErr)
		}
		t.Skipf("no browser: %v", browserErr)
	}
	return browserCtx
}

// page is one browser tab of one person, in a browser context of its own.
type page struct {
	t    testing.TB
	ctx  context.Context
	p    *person
	base string

	mu       sync.Mutex
	requests []string
	console  []string
}

// openPage logs a new browser context into p's web app, at the given
// window size.
func openPage(t testing.TB, p *person, width, height int64) *page {
	t.Helper()
	return openPageOpt(t, p, width, height, false)
}

func openPageOpt(t testing.TB, p *person, width, height int64, noWait bool) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser(t), chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	pg := &page{t: t, ctx: ctx, p: p, base: p.d.UIURL()}
	// Every request the page makes is recorded: nothing may leave the
	// machine, nor go anywhere but the node.
	if err := chromedp.Listen(ctx, func(ev any) {
		pg.mu.Lock()
		defer pg.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			pg.requests = append(pg.requests, e.Request.URL)
		case *network.EventResponseReceived:
			if e.Response.Status >= 400 {
				pg.console = append(pg.console, fmt.Sprintf("response %d %s", e.Response.Status, e.Response.URL))
			}
		case *network.EventLoadingFailed:
			pg.console = append(pg.console, fmt.Sprintf("failed %s %s %s", e.RequestID, e.ErrorText, e.BlockedReason))
		case *runtime.EventConsoleAPICalled:
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			pg.console = append(pg.console, string(e.Type)+": "+strings.Join(parts, " "))
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			pg.console = append(pg.console, fmt.Sprintf("exception: %s (%s:%d)", msg, d.URL, d.LineNumber))
		}
	}); err != nil {
		t.Fatal(err)
	}
	pg.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, runtime.Enable, cdp.Empty{})
		return err
	}), chromedp.EmulateViewport(width, height))
	l, err := p.c.UILogin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pg.do(chromedp.Navigate(l.URL))
	if noWait {
		return pg
	}
	pg.wait(`document.body.dataset.ready === 'true'`, "the app starts")
	return pg
}

func openPageNoWait(t testing.TB, p *person) *page { return openPageOpt(t, p, 1280, 800, true) }

func (pg *page) do(steps ...chromedp.Action[chromedp.Void]) {
	pg.t.Helper()
	ctx, cancel := context.WithTimeout(pg.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		pg.t.Fatalf("%s's page: %v", pg.p.nick, err)
	}
}

// eval runs a JavaScript expression and decodes its value into out.
func (pg *page) eval(expr string, out any) {
	pg.t.Helper()
	pg.evalWithin(30*time.Second, expr, out)
}

// evalWithin is eval with a time limit of its own.
func (pg *page) evalWithin(limit time.Duration, expr string, out any) {
	pg.t.Helper()
	ctx, cancel := context.WithTimeout(pg.ctx, limit)
	defer cancel()
	b, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, func(p *runtime.EvaluateParams) { p.AwaitPromise = ptrTrue() }))
	if err != nil {
		pg.t.Fatalf("%s's page: %s: %v", pg.p.nick, expr, err)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			pg.t.Fatalf("%s's page: %s: decoding %s: %v", pg.p.nick, expr, b, err)
		}
	}
}

func ptrTrue() *bool { b := true; return &b }

func (pg *page) str(expr string) string {
	pg.t.Helper()
	var s string
	pg.eval(expr, &s)
	return s
}

// wait polls a JavaScript condition until it holds.
func (pg *page) wait(cond, what string) {
	pg.t.Helper()
	ctx, cancel := context.WithTimeout(pg.ctx, 45*time.Second)
	defer cancel()
	var err error
	for {
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(50*time.Millisecond)))
		// A navigation (the page reloads itself) ends the poll: poll the
		// new document.
		if err == nil || ctx.Err() != nil || !(strings.Contains(err.Error(), "navigated or closed") || strings.Contains(err.Error(), "context was destroyed") || strings.Contains(err.Error(), "Cannot find context")) {
			break
		}
	}
	if err != nil {
		pg.mu.Lock()
		logs := strings.Join(pg.console, "\n  ")
		pg.mu.Unlock()
		shot := filepath.Join(os.TempDir(), fmt.Sprintf("meshnode-fail-%s-%d.png", pg.p.nick, time.Now().UnixNano()))
		sctx, scancel := context.WithTimeout(pg.ctx, 10*time.Second)
		if b, err := chromedp.Run(sctx, chromedp.CaptureScreenshot()); err == nil {
			_ = os.WriteFile(shot, b, 0o644)
		}
		scancel()
		pg.t.Fatalf("%s's page: waiting until %s (%s): %v\nscreenshot: %s\nconsole:\n  %s", pg.p.nick, what, cond, err, shot, logs)
	}
}

func (pg *page) click(sel string) {
	pg.t.Helper()
	pg.do(chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

// typeIn focuses a field and types text as key events ("\r" is Enter).
func (pg *page) typeIn(sel, text string) {
	pg.t.Helper()
	pg.do(chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Focus(chromedp.CSS(sel)), chromedp.KeyEvent(text))
}

// setValue sets a field's value at once (long texts).
func (pg *page) setValue(sel, text string) {
	pg.t.Helper()
	b, _ := json.Marshal(text)
	pg.eval(fmt.Sprintf(`(() => { const el = document.querySelector(%q); el.value = %s; el.dispatchEvent(new Event('input')); return true })()`, sel, b), nil)
}

func (pg *page) go2(hash string) {
	pg.t.Helper()
	pg.eval(fmt.Sprintf(`location.hash = %q`, hash), nil)
}

// openChat opens a chat from the list by clicking it.
func (pg *page) openChat(groupID string) {
	pg.t.Helper()
	pg.go2("#/chats")
	sel := fmt.Sprintf(`.chat[data-group=%q]`, groupID)
	pg.wait(fmt.Sprintf(`!!document.querySelector(%q)`, sel), "the chat is listed")
	pg.click(sel)
	pg.wait(`!!document.querySelector('.timeline[data-state=ready]')`, "the chat opens")
}

// texts are the texts of the messages shown in the open chat.
func (pg *page) texts() []string {
	var out []string
	pg.eval(`[...document.querySelectorAll('.timeline .msg .text')].map(e => e.textContent)`, &out)
	return out
}

// screenshot saves the viewport as NAME.png in $MESHNODE_SCREENSHOTS (the
// README's pictures) or in the test's temporary directory.
func (pg *page) screenshot(name string) {
	pg.t.Helper()
	dir := os.Getenv("MESHNODE_SCREENSHOTS")
	if dir == "" {
		dir = pg.t.TempDir()
	}
	ctx, cancel := context.WithTimeout(pg.ctx, 30*time.Second)
	defer cancel()
	b, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		pg.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), b, 0o644); err != nil {
		pg.t.Fatal(err)
	}
}

// checkRequests fails if the page asked anything of anyone but its node.
func (pg *page) checkRequests() {
	pg.t.Helper()
	pg.mu.Lock()
	defer pg.mu.Unlock()
	base, _ := url.Parse(pg.base)
	for _, r := range pg.requests {
		u, err := url.Parse(r)
		if err != nil || u.Host != base.Host || u.Scheme != "http" {
			pg.t.Errorf("%s's page requested %q (only %s is allowed)", pg.p.nick, r, pg.base)
		}
	}
	if len(pg.requests) == 0 {
		pg.t.Error("no request was recorded: the check checked nothing")
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
