package webui_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
)

// msgSel selects the timeline item of a message by ID.
func msgSel(id string) string { return fmt.Sprintf(`.timeline li[data-id=%q]`, id) }

// TestBrowserRepliesReactionsEdits: issue 18, item 1 in the web app.
// Bob replies to alice's message and reacts to it from its action bar;
// alice sees both live, edits her message from the composer and deletes
// it after a confirmation; bob sees the edit (marked, and in his reply's
// quote) and the tombstone live. Bob is offered neither edit nor delete
// on alice's message.
func TestBrowserRepliesReactionsEdits(t *testing.T) {
	alice, bob := startPerson(t, "alice"), startPerson(t, "bob")
	ctx := context.Background()
	g, err := alice.c.CreateGroup(ctx, "lunch", []string{alice.addr()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.c.JoinGroup(ctx, g.Invite, ""); err != nil {
		t.Fatal(err)
	}
	gid := g.Group.ID
	sent, err := alice.c.Send(ctx, gid, "lunch at noon?")
	if err != nil {
		t.Fatal(err)
	}
	id := sent.ID
	a, b := openPage(t, alice, 1280, 800), openPage(t, bob, 1280, 800)
	a.openChat(gid)
	b.openChat(gid)
	sel := msgSel(id)
	b.wait(fmt.Sprintf(`!!document.querySelector(%q)`, sel), "bob sees alice's message")

	// Bob: no edit or delete on alice's message; reply and react.
	var n int
	b.eval(fmt.Sprintf(`document.querySelectorAll(%q).length`, sel+` .msg-actions [aria-label=Edit], `+sel+` .msg-actions [aria-label=Delete]`), &n)
	if n != 0 {
		t.Fatal("bob is offered to edit or delete alice's message")
	}
	b.eval(fmt.Sprintf(`document.querySelector(%q).click(), true`, sel+` .msg-actions [aria-label=Reply]`), nil)
	b.wait(`!document.querySelector('.ref-bar').hidden && document.querySelector('.ref-bar').textContent.includes('Replying to')`, "the composer answers alice")
	// The action bar shows on hover or focus: picture it with the reply
	// bar above the composer.
	var at []float64
	b.eval(fmt.Sprintf(`(() => { const r = document.querySelector(%q).getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2] })()`, sel+` .bubble`), &at)
	b.do(chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, at[0], at[1]))
	b.wait(fmt.Sprintf(`getComputedStyle(document.querySelector(%q)).display === 'flex'`, sel+` .msg-actions`), "the action bar shows on hover")
	b.screenshot("refs-actions")
	b.typeIn(`.compose-input`, "yes, see you there\r")
	b.wait(`[...document.querySelectorAll('.msg.own .quote')].some(q => q.textContent.includes('lunch at noon?'))`, "bob's reply quotes alice")
	b.eval(fmt.Sprintf(`document.querySelector(%q).click(), true`, sel+` .msg-actions [aria-label="React with 👍"]`), nil)
	b.wait(fmt.Sprintf(`(document.querySelector(%q) || {}).getAttribute?.('aria-pressed') === 'true'`, sel+` .reaction`), "bob's reaction shows as his")

	// Alice sees both, then edits from the composer.
	a.wait(`[...document.querySelectorAll('.msg:not(.own) .quote')].some(q => q.textContent.includes('lunch at noon?'))`, "alice sees bob's reply with its quote")
	a.wait(fmt.Sprintf(`(document.querySelector(%q) || {}).textContent === '👍1'`, sel+` .reaction`), "alice sees bob's reaction")
	a.eval(fmt.Sprintf(`document.querySelector(%q).click(), true`, sel+` .msg-actions [aria-label=Edit]`), nil)
	a.wait(`document.querySelector('.compose-input').value === 'lunch at noon?'`, "the composer holds the text to edit")
	a.setValue(`.compose-input`, "lunch at one?")
	a.typeIn(`.compose-input`, "\r")
	a.wait(fmt.Sprintf(`document.querySelector(%q).textContent.includes('lunch at one?') && !!document.querySelector(%q)`, sel+` .text`, sel+` .edited`), "alice's message shows edited")
	b.wait(fmt.Sprintf(`document.querySelector(%q).textContent.includes('lunch at one?') && !!document.querySelector(%q)`, sel+` .text`, sel+` .edited`), "bob sees the edit live")
	b.wait(`[...document.querySelectorAll('.msg.own .quote')].some(q => q.textContent.includes('lunch at one?'))`, "bob's quote follows the edit")
	a.screenshot("refs-alice")
	b.screenshot("refs-bob")

	// Alice deletes, after confirming.
	a.eval(fmt.Sprintf(`document.querySelector(%q).click(), true`, sel+` .msg-actions [aria-label=Delete]`), nil)
	a.wait(`!!document.querySelector('dialog[open]')`, "a confirmation")
	a.eval(`[...document.querySelectorAll('dialog[open] button')].find(x => x.textContent === 'Delete').click(), true`, nil)
	for _, pg := range []*page{a, b} {
		pg.wait(fmt.Sprintf(`!!document.querySelector(%q) && !document.querySelector(%q).textContent.includes('lunch at')`, sel+` .tombstone`, sel), "the message shows as deleted")
	}
	b.wait(`[...document.querySelectorAll('.msg.own .quote')].some(q => q.textContent.includes('a deleted message'))`, "bob's quote says deleted")
	b.screenshot("refs-deleted")
	m, err := bob.c.Message(ctx, id)
	if err != nil || !m.Deleted || m.Text != "" {
		t.Fatalf("bob's node: %+v %v", m, err)
	}
	a.checkRequests()
	b.checkRequests()
}
