package webui_test

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"

	"github.com/meshnode/meshnode/api"
)

// TestBrowserSendFailsAndRetries: a send the daemon refuses shows as
// failed, with the daemon's reason and a retry; the retry sends it once.
func TestBrowserSendFailsAndRetries(t *testing.T) {
	alice := startPerson(t, "alice")
	ctx := context.Background()
	g, err := alice.c.CreateGroup(ctx, "g", []string{alice.addr()})
	if err != nil {
		t.Fatal(err)
	}
	a := openPage(t, alice, 1280, 800)
	a.openChat(g.Group.ID)

	// The browser answers the first send itself, as a daemon that is
	// shutting down would.
	paused := make(chan fetch.RequestID, 4)
	if err := chromedp.Listen(a.ctx, func(ev any) {
		if e, ok := ev.(*fetch.EventRequestPaused); ok {
			paused <- e.RequestID
		}
	}); err != nil {
		t.Fatal(err)
	}
	call := func(fn func(ctx context.Context, tg *chromedp.Target) error) {
		t.Helper()
		cctx, cancel := context.WithTimeout(a.ctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(cctx, chromedp.Func(fn)); err != nil {
			t.Fatal(err)
		}
	}
	call(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*/messages", RequestStage: fetch.RequestStageRequest}}})
		return err
	})
	a.typeIn(`.compose-input`, "will this arrive?\r")
	var id fetch.RequestID
	select {
	case id = <-paused:
	case <-time.After(20 * time.Second):
		t.Fatal("the send was not intercepted")
	}
	a.wait(`[...document.querySelectorAll('.msg-state.sending')].length === 1`, "the message shows as sending")
	call(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, fetch.FulfillRequest, fetch.FulfillRequestParams{
			RequestID: id, ResponseCode: 503,
			ResponseHeaders: []*fetch.HeaderEntry{{Name: "Content-Type", Value: api.ContentTypeJSON}},
			Body:            []byte(`{"error":"the node is shutting down","code":"unavailable"}`),
		})
		if err != nil {
			return err
		}
		_, err = cdp.Call(ctx, tg, fetch.Disable, cdp.Empty{})
		return err
	})
	a.wait(`[...document.querySelectorAll('.msg-state.failed')].some(e => e.textContent.includes('the node is shutting down') && e.textContent.includes('Retry'))`,
		"the failure shows with its reason and a retry")
	if msgs, _ := alice.c.Messages(ctx, g.Group.ID, 0); len(msgs) != 0 {
		t.Fatalf("the refused send reached the node: %+v", msgs)
	}
	a.eval(`[...document.querySelectorAll('.msg-state.failed button')].find(e => e.textContent === 'Retry').click()`, nil)
	a.wait(`[...document.querySelectorAll('.msg.own .msg-state')].some(e => e.textContent.includes('Stored by 1 host')) && !document.querySelector('.msg-state.failed')`,
		"the retry is stored")
	a.wait(`document.querySelectorAll('.msg.own').length === 1`, "the message shows once")
	msgs, err := alice.c.Messages(ctx, g.Group.ID, 0)
	if err != nil || len(msgs) != 1 || msgs[0].Text != "will this arrive?" {
		t.Fatalf("after the retry: %+v %v", msgs, err)
	}
}
