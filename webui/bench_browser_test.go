package webui_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/heapprofiler"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	tu "github.com/meshnode/meshnode/internal/testutil"
)

// benchMessages is the size of the benchmark's group history.
const benchMessages = 10000

// BenchmarkWebApp measures the web app in headless Chromium with the
// browser's performance API, against two real daemons on loopback:
//
//   - open_ms: a click on a group of 10,000 messages until its latest page
//     is on screen (median of 7 opens; target ≤ 300 ms);
//   - deliver_p50_ms / deliver_p95_ms: a message sent with Enter on one
//     page until it is on screen in the other member's page (target p50
//     ≤ 150 ms);
//   - heap_MB: the page's JavaScript heap after scrolling up through all
//     10,000 messages, after a garbage collection (target ≤ 50 MB).
//
// Run it with:
//
//	go test ./webui -run '^$' -bench BenchmarkWebApp -benchtime 1x
//
// Seeding the history takes a minute or two; the measures themselves
// take seconds.
func BenchmarkWebApp(b *testing.B) {
	alice, bob := startPerson(b, "alice"), startPerson(b, "bob")
	ctx := context.Background()
	created, err := alice.c.CreateGroup(ctx, "ten thousand", []string{alice.addr()})
	if err != nil {
		b.Fatal(err)
	}
	gid := created.Group.ID
	if _, err := bob.c.JoinGroup(ctx, created.Invite, ""); err != nil {
		b.Fatal(err)
	}
	seedStart := time.Now()
	// Both write, a few at a time, so the history alternates authors.
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for i, p := range []*person{alice, bob} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range benchMessages / 2 {
				text := fmt.Sprintf("message %d from %s: the quick brown fox jumps over the lazy dog", j, p.nick)
				if j%10 == 0 {
					text += "\nwith a second line, and a link https://example.org/" + fmt.Sprint(i*benchMessages+j)
				}
				if _, err := p.d.Node().Send(ctx, gid, text); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	tu.Eventually(b, 5*time.Minute, func() bool {
		g, err := bob.c.Group(ctx, gid)
		return err == nil && g.Messages >= benchMessages
	}, "bob has all the messages")
	b.Logf("seeded %d messages in %v", benchMessages, time.Since(seedStart).Round(time.Second))

	pa := openPage(b, alice, 1280, 800)
	pb := openPage(b, bob, 1280, 800)
	b.ResetTimer()

	// Opening: from the click to the latest page on screen.
	var opens []float64
	var parts []string
	for range 7 {
		pb.go2("#/node")
		pb.wait(`!document.querySelector('.conversation')`, "the chat closes")
		pb.openChat(gid)
		var o struct{ MS, Fetch, Render float64 }
		pb.eval(`meshnodePerf.opens[meshnodePerf.opens.length - 1]`, &o)
		opens = append(opens, o.MS)
		parts = append(parts, fmt.Sprintf("%.0f (fetch %.0f, render %.0f)", o.MS, o.Fetch, o.Render))
	}
	slices.Sort(opens)
	open := opens[len(opens)/2]

	// Delivery: Enter on alice's page until the text is on bob's.
	pa.openChat(gid)
	const sends = 40
	for i := range sends {
		text := fmt.Sprintf("latency probe %02d", i)
		pa.setValue(`.compose-input`, text)
		pa.do(chromedp.Focus(chromedp.CSS(`.compose-input`)), chromedp.KeyEvent("\r"))
		pb.wait(fmt.Sprintf(`meshnodePerf.rendered.some(r => r.text === %q)`, text), "the probe arrives")
		time.Sleep(100 * time.Millisecond)
	}
	var delays []float64
	var sent map[string]float64
	pa.eval(`Object.fromEntries(meshnodePerf.sent.filter(s => s.text.startsWith('latency probe')).map(s => [s.text, s.at]))`, &sent)
	var rendered map[string]float64
	pb.eval(`Object.fromEntries(meshnodePerf.rendered.filter(s => s.text.startsWith('latency probe')).map(s => [s.text, s.at]))`, &rendered)
	for text, at := range sent {
		if r, ok := rendered[text]; ok {
			delays = append(delays, r-at)
		}
	}
	if len(delays) != sends {
		b.Fatalf("%d of %d probes measured", len(delays), sends)
	}
	slices.Sort(delays)
	p50, p95 := delays[len(delays)/2], delays[len(delays)*95/100]

	// Heap: scroll up through the whole history, page by page.
	var pages int
	pb.evalWithin(10*time.Minute, `(async () => {
		const tl = document.querySelector('.timeline');
		const start = document.querySelector('.tl-start');
		let pages = 0;
		const deadline = Date.now() + 600000;
		while (start.hidden && Date.now() < deadline) {
			const first = tl.querySelector('.msg, .notice');
			tl.scrollTop = 0;
			tl.dispatchEvent(new Event('scroll'));
			// Wait until older messages came in above.
			for (let i = 0; i < 400 && tl.querySelector('.msg, .notice') === first && start.hidden; i++) {
				await new Promise(r => setTimeout(r, 10));
			}
			pages++;
		}
		return pages;
	})()`, &pages)
	var window int
	pb.eval(`document.querySelectorAll('.timeline .msg, .timeline .notice').length`, &window)
	var oldest string
	pb.eval(`document.querySelector('.timeline .msg .text').textContent`, &oldest)
	heap := heapAfterGC(b, pb)
	var perfHeap float64
	pb.eval(`performance.memory.usedJSHeapSize`, &perfHeap)
	var nodes int
	pb.eval(`document.getElementsByTagName('*').length`, &nodes)
	b.StopTimer()

	b.ReportMetric(open, "open_ms")
	b.ReportMetric(p50, "deliver_p50_ms")
	b.ReportMetric(p95, "deliver_p95_ms")
	b.ReportMetric(heap/(1<<20), "heap_MB")
	b.ReportMetric(float64(window), "window_msgs")
	b.Logf("opens: %s", strings.Join(parts, ", "))
	b.Logf("opens %.0f ms; delays p50 %.1f p95 %.1f ms; scrolled %d pages to %q; %d messages and %d elements in the page; heap %.1f MB (performance.memory %.1f MB)",
		opens, p50, p95, pages, oldest, window, nodes, heap/(1<<20), perfHeap/(1<<20))
	if oldest != "message 0 from alice: the quick brown fox jumps over the lazy dog\nwith a second line, and a link https://example.org/0" &&
		oldest != "message 0 from bob: the quick brown fox jumps over the lazy dog\nwith a second line, and a link https://example.org/10000" {
		b.Errorf("scrolling up did not reach the first message: %q", oldest)
	}
}

// heapAfterGC collects garbage in the page and returns its used
// JavaScript heap in bytes.
func heapAfterGC(tb testing.TB, pg *page) float64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(pg.ctx, 60*time.Second)
	defer cancel()
	var used float64
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for range 3 {
			if _, err := cdp.Call(ctx, t, heapprofiler.CollectGarbage, cdp.Empty{}); err != nil {
				return err
			}
		}
		r, err := cdp.Call(ctx, t, runtime.GetHeapUsage, cdp.Empty{})
		used = r.UsedSize
		return err
	}))
	if err != nil {
		tb.Fatal(err)
	}
	return used
}
