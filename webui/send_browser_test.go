package webui_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

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

	// A group whose only host cannot be reached: the node keeps the
	// message and keeps trying (its outbox); the page says so, also after
	// a reload, from the listing.
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	nobody, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	away, err := alice.c.CreateGroup(ctx, "host away", []string{"/ip4/127.0.0.1/tcp/1/p2p/" + nobody.String()})
	if err != nil {
		t.Fatal(err)
	}
	a.openChat(away.Group.ID)
	a.typeIn(`.compose-input`, "kept until a host takes it\r")
	a.wait(`[...document.querySelectorAll('.msg.own .msg-state.warn')].some(e => e.textContent.includes('Waiting for a host'))`, "the message waits for a host")
	a.do(chromedp.Reload())
	a.wait(`document.body.dataset.ready === 'true'`, "the app restarts")
	a.openChat(away.Group.ID)
	a.wait(`[...document.querySelectorAll('.msg.own .msg-state.warn')].some(e => e.textContent.includes('Waiting for a host'))`, "after a reload it still waits")
	msgID := a.str(`[...document.querySelectorAll(".msg.own")].pop().dataset.id`)
	ob, err := alice.c.Outbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range ob {
		found = found || e.ID == msgID && e.State == api.DeliveryPending
	}
	if !found {
		t.Fatalf("message %s is not pending in the outbox: %+v", msgID, ob)
	}
}
