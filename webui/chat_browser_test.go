package webui_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/meshnode/meshnode/api"
	tu "github.com/meshnode/meshnode/internal/testutil"
)

// TestBrowserChat: two people chat through two pages. Alice creates a
// group in her page (invite as text and QR code), Bob joins in his by
// pasting the invite, they write to each other (Enter sends, Shift+Enter
// is a new line) and see it live, with per-message state, unread counts
// and the read marker; a private message goes to one member only.
func TestBrowserChat(t *testing.T) {
	alice, bob := startPerson(t, "alice"), startPerson(t, "bob")
	carol := startPerson(t, "carol")
	ctx := context.Background()
	a := openPage(t, alice, 1280, 800)
	b := openPage(t, bob, 1280, 800)

	// Alice creates a group hosted by her own node.
	a.click(`.head-actions .icon-btn.accent`)
	a.typeIn(`dialog .field input[type=text]`, "Book club")
	a.setValue(`dialog textarea`, alice.addr())
	a.click(`dialog .modal-actions .btn.primary`)
	a.wait(`!!document.querySelector('dialog img.qr') && document.querySelector('dialog img.qr').complete && document.querySelector('dialog img.qr').naturalWidth > 0`,
		"the invite's QR code shows")
	invite := a.str(`document.querySelector('dialog textarea.mono').value`)
	if !strings.HasPrefix(invite, "meshnode-invite-v1.") {
		t.Fatalf("invite %q", invite)
	}
	a.click(`dialog .modal-actions .btn.primary`) // Done
	gs, err := alice.c.Groups(ctx)
	if err != nil || len(gs) != 1 {
		t.Fatalf("alice's groups: %+v %v", gs, err)
	}
	gid := gs[0].ID
	a.wait(fmt.Sprintf(`location.hash === '#/chat/%s' && !!document.querySelector('.compose-input')`, gid), "alice's new chat opens")

	// Bob joins by pasting the invite; carol joins through the CLI's API.
	b.click(`.head-actions .icon-btn:not(.accent)`)
	b.setValue(`dialog textarea`, invite)
	b.click(`dialog .modal-actions .btn.primary`)
	b.wait(fmt.Sprintf(`location.hash === '#/chat/%s' && !!document.querySelector('.compose-input')`, gid), "bob's chat opens after joining")
	if _, err := carol.c.JoinGroup(ctx, invite, ""); err != nil {
		t.Fatal(err)
	}

	// Enter sends.
	a.typeIn(`.compose-input`, "Hello Bob\r")
	b.wait(`[...document.querySelectorAll('.timeline .msg .text')].some(e => e.textContent === 'Hello Bob')`, "bob sees alice's message live")
	a.wait(`[...document.querySelectorAll('.msg.own .msg-state')].some(e => e.textContent.includes('Stored by 1 host'))`, "alice's message is stored by her host")
	if a.str(`document.querySelector('.compose-input').value`) != "" {
		t.Error("the composer kept the sent text")
	}

	// Shift+Enter is a new line; Enter sends both lines.
	b.typeIn(`.compose-input`, "line one")
	b.do(chromedp.KeyEvent("\r", chromedp.KeyModifiers(chromedp.ModifierShift)))
	b.do(chromedp.KeyEvent("line two\r"))
	a.wait(`[...document.querySelectorAll('.timeline .msg .text')].some(e => e.textContent === 'line one\nline two')`, "alice sees bob's two lines")

	// Unread counts: bob looks elsewhere while alice writes twice.
	b.go2("#/node")
	b.wait(`!!document.querySelector('.page .stats')`, "bob's node view shows")
	b.wait(`[...document.querySelectorAll('.page .row')].some(e => e.textContent.includes('Book club') && e.textContent.includes('reachable') && e.textContent.includes('Last catch-up'))`,
		"bob's node view shows the group's host reachable and its catch-up")
	a.typeIn(`.compose-input`, "are you there?\r")
	a.typeIn(`.compose-input`, "hello?\r")
	b.go2("#/chats")
	b.wait(fmt.Sprintf(`(document.querySelector('.chat[data-group="%s"] .unread') || {}).textContent === '2'`, gid), "bob's list counts two unread")
	b.wait(fmt.Sprintf(`document.querySelector('.chat[data-group="%s"] .chat-preview').textContent === 'alice: hello?'`, gid), "the list shows the latest message")
	b.openChat(gid)
	b.wait(`[...document.querySelectorAll('.timeline .unread-line')].length === 1`, "the new-messages line shows")
	tu.Eventually(t, 20*time.Second, func() bool {
		rs, err := bob.c.ReadState(ctx, gid)
		return err == nil && rs.Unread == 0
	}, "opening the chat moves bob's read marker")
	b.wait(fmt.Sprintf(`!document.querySelector('.chat[data-group="%s"] .unread')`, gid), "the unread count goes")

	// A private message, written from the members panel.
	tu.Eventually(t, 20*time.Second, func() bool {
		ms, err := bob.c.Members(ctx, gid)
		return err == nil && len(ms) == 3
	}, "bob knows the three members")
	b.eval(`document.querySelector('.conversation').__reload = 1`, nil)
	b.openChat(gid) // reload the members
	if b.str(`document.querySelector('.details') && !document.querySelector('.details').hidden ? 'open' : 'closed'`) != "open" {
		b.click(`.conv-actions .icon-btn:last-child`)
	}
	b.wait(`document.querySelectorAll('.member-list .member').length === 3`, "bob's panel lists three members")
	b.eval(`[...document.querySelectorAll('.member-list .member')].find(e => e.textContent.includes('alice')).click()`, nil)
	b.wait(`!!document.querySelector('dialog .fp-block')`, "alice's fingerprint shows")
	if got := b.str(`[...document.querySelectorAll('dialog .fp-block span')].map(e => e.textContent).join('-')`); got != alice.fp {
		t.Fatalf("fingerprint shown %q, want %q", got, alice.fp)
	}
	b.eval(`[...document.querySelectorAll('dialog .modal-actions .btn')].find(e => e.textContent === 'Message privately').click()`, nil)
	b.wait(`!document.querySelector('.direct-bar').hidden`, "the composer writes privately")
	b.typeIn(`.compose-input`, "just for you, alice\r")
	a.wait(`[...document.querySelectorAll('.msg.direct .text')].some(e => e.textContent === 'just for you, alice')`, "alice sees the private message")
	if !strings.Contains(a.str(`[...document.querySelectorAll('.msg.direct')].pop().textContent`), "Private message to") {
		t.Error("alice's page does not mark the message as private")
	}
	b.wait(`[...document.querySelectorAll('.msg.own.direct .msg-private')].some(e => e.textContent.includes('Private to alice'))`, "bob's page marks it private to alice")
	tu.Eventually(t, 20*time.Second, func() bool {
		msgs, err := carol.c.Messages(ctx, gid, 0)
		if err != nil {
			return false
		}
		n := 0
		for _, m := range msgs {
			if m.Kind == api.KindText {
				n++
			}
			if strings.Contains(m.Text, "just for you") {
				t.Fatal("carol can read the private message")
			}
		}
		return n >= 4
	}, "carol has the group's messages")

	// Verified: bob marks alice's fingerprint; the mark shows by her
	// messages.
	b.eval(`[...document.querySelectorAll('.member-list .member')].find(e => e.textContent.includes('alice')).click()`, nil)
	b.eval(`[...document.querySelectorAll('dialog .modal-actions .btn')].find(e => e.textContent === 'Mark as verified').click()`, nil)
	b.wait(`document.querySelectorAll('.timeline .badge-verified').length > 0`, "alice's messages carry the verified mark")
	if vs, err := bob.c.Verified(ctx); err != nil || len(vs) != 1 || vs[0].Fingerprint != alice.fp {
		t.Fatalf("bob's verified marks: %+v %v", vs, err)
	}

	// Bob leaves; the chat goes from his list.
	b.eval(`[...document.querySelectorAll('.detail-actions .action')].find(e => e.textContent === 'Leave group').click()`, nil)
	b.click(`dialog .modal-actions .btn.danger`)
	b.wait(fmt.Sprintf(`location.hash === '#/chats' && !document.querySelector('.chat[data-group="%s"]')`, gid), "the group leaves bob's list")
	if gs, err := bob.c.Groups(ctx); err != nil || len(gs) != 0 {
		t.Fatalf("bob's groups after leaving: %+v %v", gs, err)
	}
	a.checkRequests()
	b.checkRequests()
}
