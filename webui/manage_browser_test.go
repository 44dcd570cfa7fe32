package webui_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/meshnode/meshnode/api"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/node"
)

// TestBrowserManagedGroup: Alice creates a managed group in her page,
// adds Bob by his key package, and removes him; both pages show it: the
// member list, the notices inline, Bob's composer closed.
func TestBrowserManagedGroup(t *testing.T) {
	alice, bob := startPerson(t, "alice"), startPerson(t, "bob")
	ctx := context.Background()
	a := openPage(t, alice, 1280, 800)
	b := openPage(t, bob, 1280, 800)

	// Created in the page: managed, from-join history, hosted by alice.
	a.click(`.head-actions .icon-btn.accent`)
	a.typeIn(`dialog .field input[type=text]`, "Staff")
	a.click(`dialog input[value=managed]`)
	a.setValue(`dialog textarea`, alice.addr())
	a.eval(`document.querySelector('dialog fieldset.sub select').value = 'from-join'; true`, nil)
	a.click(`dialog .modal-actions .btn.primary`)
	a.wait(`location.hash.startsWith('#/chat/') && !!document.querySelector('.compose-input')`, "the managed group opens")
	gs, err := alice.c.Groups(ctx)
	if err != nil || len(gs) != 1 || !gs[0].Managed || gs[0].History != "from-join" || gs[0].Role != "manage" {
		t.Fatalf("alice's groups: %+v %v", gs, err)
	}
	gid := gs[0].ID

	// Bob's key package, from his page.
	b.click(`.head-actions .icon-btn:not(.accent)`) // join
	b.eval(`[...document.querySelectorAll('dialog .btn')].find(e => e.textContent === 'Get my key package').click()`, nil)
	b.wait(`document.querySelectorAll('dialog').length === 1 && document.querySelector('dialog h2').textContent === 'My key package'`, "the key package dialog opens")
	b.setValue(`dialog textarea:not(.mono)`, alice.addr())
	b.click(`dialog .modal-actions .btn.primary`)
	b.wait(`!document.querySelector('dialog textarea.mono').hidden && document.querySelector('dialog textarea.mono').value.length > 0`, "bob's key package shows")
	kp := b.str(`document.querySelector('dialog textarea.mono').value`)
	b.click(`dialog .modal-head .icon-btn`)

	// Alice adds him from the details panel.
	if a.str(`document.querySelector('.details').hidden ? 'closed' : 'open'`) == "closed" {
		a.click(`.conv-actions .icon-btn:last-child`)
	}
	a.eval(`[...document.querySelectorAll('.detail-actions .action')].find(e => e.textContent === 'Add a member').click()`, nil)
	a.setValue(`dialog textarea.mono`, kp)
	a.click(`dialog .modal-actions .btn.primary`)
	a.wait(`document.querySelectorAll('.member-list .member').length === 2`, "alice's page lists bob")
	a.wait(`[...document.querySelectorAll('.timeline .notice')].some(e => e.textContent.includes('bob'))`, "the add shows inline")
	tu.Eventually(t, 40*time.Second, func() bool { _, err := bob.c.Group(ctx, gid); return err == nil }, "bob's node joins")
	b.wait(fmt.Sprintf(`!!document.querySelector('.chat[data-group="%s"]')`, gid), "the group appears in bob's list")
	b.openChat(gid)

	// They talk; then alice changes bob's role and removes him.
	b.typeIn(`.compose-input`, "thanks for adding me\r")
	a.wait(`[...document.querySelectorAll('.timeline .msg .text')].some(e => e.textContent === 'thanks for adding me')`, "alice reads bob")
	a.eval(`[...document.querySelectorAll('.member-list .member')].find(e => e.textContent.includes('bob')).click()`, nil)
	a.eval(`document.querySelector('dialog select').value = 'read'; true`, nil)
	a.eval(`[...document.querySelectorAll('dialog .btn')].find(e => e.textContent === 'Change role').click()`, nil)
	tu.Eventually(t, 30*time.Second, func() bool {
		g, err := bob.c.Group(ctx, gid)
		return err == nil && g.Role == "read"
	}, "bob becomes a reader")
	b.wait(`document.querySelector('.compose-input').disabled`, "bob's composer closes for a reader")

	a.wait(`document.querySelectorAll('dialog').length === 0`, "the role dialog closes")
	a.eval(`[...document.querySelectorAll('.member-list .member')].find(e => e.textContent.includes('bob')).click()`, nil)
	a.eval(`[...document.querySelectorAll('dialog .btn')].find(e => e.textContent === 'Remove from group').click()`, nil)
	a.wait(`document.querySelectorAll('dialog').length === 1 && document.querySelector('dialog h2').textContent.startsWith('Remove')`, "the removal asks for confirmation")
	a.click(`dialog .modal-actions .btn.danger`)
	a.wait(`document.querySelectorAll('.member-list .member').length === 1`, "alice's page no longer lists bob")
	tu.Eventually(t, 30*time.Second, func() bool {
		g, err := bob.c.Group(ctx, gid)
		return err == nil && g.Removed
	}, "bob learns he was removed")
	b.wait(`document.querySelector('.compose-note') && !document.querySelector('.compose-note').hidden && document.querySelector('.compose-note').textContent.includes('removed')`, "bob's page says he was removed")
	b.wait(`[...document.querySelectorAll('.conv-sub .chip')].some(e => e.textContent === 'removed')`, "bob's header says removed")

	// Rotation and policy from alice's panel.
	before, err := alice.c.Group(ctx, gid)
	if err != nil {
		t.Fatal(err)
	}
	a.wait(`document.querySelectorAll('dialog').length === 0`, "the dialogs close")
	a.eval(`[...document.querySelectorAll('.detail-actions .action')].find(e => e.textContent === 'Rotate keys now').click()`, nil)
	a.click(`dialog .modal-actions .btn.primary`)
	tu.Eventually(t, 30*time.Second, func() bool {
		g, err := alice.c.Group(ctx, gid)
		return err == nil && g.Epoch > before.Epoch
	}, "the keys rotate")
	a.wait(`document.querySelectorAll('dialog').length === 0`, "the rotation dialog closes")
	a.eval(`[...document.querySelectorAll('.detail-actions .action')].find(e => e.textContent === 'Policy').click()`, nil)
	a.wait(`document.querySelectorAll('dialog input').length === 2`, "the policy dialog opens")
	a.setValue(`dialog input[type=number]`, "500")
	a.click(`dialog .modal-actions .btn.primary`)
	tu.Eventually(t, 30*time.Second, func() bool {
		p, err := alice.c.Policy(ctx, gid)
		return err == nil && p.RotateAfter == 500 && p.History == "from-join"
	}, "the policy changes")
	// Alice's node hosts the group: her node view says what it stores.
	a.go2("#/node")
	a.wait(`[...document.querySelectorAll('.page .card h2')].some(e => e.textContent === 'Hosting') && document.querySelector('.page').textContent.includes('Mailboxes')`,
		"alice's node view shows what it hosts")
	a.checkRequests()
	b.checkRequests()
}

// TestBrowserContactRequest: Bob publishes an alias in his page, Alice
// asks for him by it in hers, Bob sees the request in quarantine (nick
// and fingerprint only) and accepts it; both then chat.
func TestBrowserContactRequest(t *testing.T) {
	host := startPerson(t, "directory", func(p *node.Params) { p.HostPolicy = node.PolicyOpen; p.Directory.Serve = true })
	dir := func(p *node.Params) { p.Contacts.DirectoryHosts = []string{host.addr()} }
	alice, bob := startPerson(t, "alice", dir), startPerson(t, "bob", dir)
	a := openPage(t, alice, 1280, 800)
	b := openPage(t, bob, 1280, 800)

	b.go2("#/contacts")
	b.wait(`!!document.querySelector('input[aria-label="New alias"]')`, "bob's contacts show")
	b.typeIn(`input[aria-label="New alias"]`, "bob-reads\r")
	b.wait(`[...document.querySelectorAll('.row bdi.mono')].some(e => e.textContent === 'bob-reads')`, "bob's alias is listed")

	a.go2("#/contacts")
	a.wait(`!!document.querySelector('input[aria-label="Alias to ask"]')`, "alice's contacts show")
	a.typeIn(`input[aria-label="Alias to ask"]`, "bob-reads\r")
	a.wait(`[...document.querySelectorAll('.row')].some(e => e.textContent.includes('bob-reads') && e.textContent.includes('pending'))`, "alice's request is pending")

	// Bob checks for requests until hers arrives.
	deadline := time.Now().Add(40 * time.Second)
	for {
		b.click(`.page-head .icon-btn:last-child`) // refresh
		var n int
		b.eval(`new Promise(r => setTimeout(() => r([...document.querySelectorAll('.row')].filter(e => e.textContent.includes('via bob-reads')).length), 800))`, &n)
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the request never reached bob's quarantine")
		}
	}
	req := b.str(`[...document.querySelectorAll('.row')].find(e => e.textContent.includes('via bob-reads')).textContent`)
	if !contains([]string{req}, req) || !containsAll(req, "alice", alice.fp, "Accept", "Reject") {
		t.Fatalf("the quarantined request shows %q", req)
	}
	b.eval(`[...document.querySelectorAll('.row')].find(e => e.textContent.includes('via bob-reads')).querySelector('.btn.primary').click()`, nil)
	b.wait(`[...document.querySelectorAll('.row')].some(e => e.textContent.includes('alice') && e.textContent.includes('connected'))`, "bob's page lists alice as a contact")

	// The connection is a chat on both sides.
	var cs []api.Contact
	tu.Eventually(t, 40*time.Second, func() bool {
		var err error
		cs, err = alice.c.Contacts(context.Background())
		return err == nil && len(cs) == 1 && cs[0].State == "connected"
	}, "alice's side connects")
	a.go2("#/chats")
	a.go2("#/contacts")
	a.wait(`[...document.querySelectorAll('.row')].some(e => e.textContent.includes('connected'))`, "alice's page shows the contact connected")
	a.eval(`[...document.querySelectorAll('.row a.btn')].find(e => e.textContent === 'Chat').click()`, nil)
	a.wait(`!!document.querySelector('.compose-input') && !document.querySelector('.compose-input').disabled`, "alice's chat with bob opens")
	if title := a.str(`document.querySelector('.conv-title h2').textContent`); title != "bob" {
		t.Errorf("the contact chat is titled %q", title)
	}
	a.typeIn(`.compose-input`, "hi bob, it's alice\r")
	b.go2("#/chat/" + cs[0].Group)
	b.wait(`[...document.querySelectorAll('.timeline .msg .text')].some(e => e.textContent === "hi bob, it's alice")`, "bob reads alice in their chat")
	a.checkRequests()
	b.checkRequests()
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		found := false
		for i := 0; i+len(p) <= len(s); i++ {
			if s[i:i+len(p)] == p {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
