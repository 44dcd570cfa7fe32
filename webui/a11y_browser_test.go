package webui_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestBrowserNotificationsKeyboardLabels: a desktop notification for a
// message that arrives while the tab is hidden (only once turned on);
// keyboard shortcuts; every control has a name a screen reader can say;
// logging out ends the session.
func TestBrowserNotificationsKeyboardLabels(t *testing.T) {
	alice, bob := startPerson(t, "alice"), startPerson(t, "bob")
	ctx := context.Background()
	first, err := alice.c.CreateGroup(ctx, "first", []string{alice.addr()})
	if err != nil {
		t.Fatal(err)
	}
	second, err := alice.c.CreateGroup(ctx, "second", []string{alice.addr()})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{first.Invite, second.Invite} {
		if _, err := bob.c.JoinGroup(ctx, g, ""); err != nil {
			t.Fatal(err)
		}
	}
	b := openPage(t, bob, 1280, 800)

	// The Notification API is stubbed to record what the page shows; the
	// tab is made hidden.
	b.eval(`window.__notes = [];
		window.Notification = class { constructor(title, o) { window.__notes.push(title + ' | ' + o.body); } close() {} };
		window.Notification.permission = 'granted';
		window.__hidden = false;
		Object.defineProperty(document, 'visibilityState', {get: () => window.__hidden ? 'hidden' : 'visible'});
		true`, nil)
	b.eval(`window.__hidden = true; true`, nil)
	if _, err := alice.c.Send(ctx, first.Group.ID, "not yet"); err != nil {
		t.Fatal(err)
	}
	b.wait(fmt.Sprintf(`(document.querySelector('.chat[data-group="%s"] .unread') || {}).textContent === '1'`, first.Group.ID), "the message arrives")
	var notes []string
	b.eval(`window.__notes`, &notes)
	if len(notes) != 0 {
		t.Fatalf("notifications before they were turned on: %q", notes)
	}
	// Turned on in Settings (permission already granted).
	b.eval(`window.__hidden = false; true`, nil)
	b.click(`.rail-btn[aria-label=Settings]`)
	b.click(`dialog .field.check input[type=checkbox]`)
	b.do(chromedp.KeyEvent("\x1b"))
	b.eval(`window.__hidden = true; true`, nil)
	if _, err := alice.c.Send(ctx, first.Group.ID, "now you hear me"); err != nil {
		t.Fatal(err)
	}
	b.wait(`window.__notes.length === 1`, "a notification shows")
	b.eval(`window.__notes`, &notes)
	if notes[0] != "first | alice: now you hear me" {
		t.Errorf("notification %q", notes)
	}
	// Visible again: no notification, the page itself shows it.
	b.eval(`window.__hidden = false; true`, nil)
	if _, err := alice.c.Send(ctx, first.Group.ID, "seen in the page"); err != nil {
		t.Fatal(err)
	}
	b.wait(fmt.Sprintf(`(document.querySelector('.chat[data-group="%s"] .chat-preview') || {}).textContent === 'alice: seen in the page'`, first.Group.ID), "the page shows it")
	b.eval(`window.__notes`, &notes)
	if len(notes) != 1 {
		t.Errorf("notifications while visible: %q", notes)
	}

	// Keyboard: Ctrl+K goes to the search, Alt+↓ through the chats,
	// typing in the open chat and Enter sends.
	b.do(chromedp.KeyEvent("k", chromedp.KeyModifiers(chromedp.ModifierCtrl)))
	if got := b.str(`document.activeElement.getAttribute('aria-label')`); got != "Search chats" {
		t.Errorf("Ctrl+K focused %q", got)
	}
	b.do(chromedp.KeyEvent(kb.ArrowDown, chromedp.KeyModifiers(chromedp.ModifierAlt)))
	b.wait(`location.hash.startsWith('#/chat/') && !!document.querySelector('.timeline[data-state=ready]')`, "Alt+Down opens a chat")
	opened := b.str(`location.hash`)
	b.do(chromedp.KeyEvent(kb.ArrowDown, chromedp.KeyModifiers(chromedp.ModifierAlt)))
	b.wait(fmt.Sprintf(`location.hash !== %q && !!document.querySelector('.timeline[data-state=ready]')`, opened), "Alt+Down again opens the next chat")

	// Every control has a name; every field a label.
	var unnamed []string
	b.eval(`(() => {
		const name = (e) => (e.getAttribute('aria-label') || e.textContent || e.title || '').trim() ||
			(e.id && document.querySelector('label[for="' + e.id + '"]') ? 'label' : '') || (e.closest('label') ? 'label' : '');
		return [...document.querySelectorAll('button, a[href], input, textarea, select, [role=img]')]
			.filter(e => !name(e)).map(e => e.outerHTML.slice(0, 120));
	})()`, &unnamed)
	if len(unnamed) != 0 {
		t.Errorf("controls without an accessible name: %q", unnamed)
	}
	var landmarks []string
	b.eval(`[...document.querySelectorAll('main, nav[aria-label], aside[aria-label], [role=log]')].map(e => e.tagName + ':' + (e.getAttribute('aria-label') || ''))`, &landmarks)
	if len(landmarks) < 4 {
		t.Errorf("landmarks %q", landmarks)
	}

	// Log out: the session ends, the page says how to log in again.
	b.click(`.rail-btn[aria-label=Settings]`)
	b.eval(`[...document.querySelectorAll('dialog .btn')].find(e => e.textContent === 'Log out').click()`, nil)
	b.wait(`document.body.dataset.ready === 'login' && document.body.textContent.includes('meshnode ui --open')`, "the page shows how to log in")
	var status int
	b.eval(`fetch('/v1/groups').then(r => r.status)`, &status)
	if status != 401 {
		t.Errorf("after logging out the API answers %d", status)
	}
	b.checkRequests()
}
