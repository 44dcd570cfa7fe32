package webui_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/meshnode/meshnode/api"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/node"
)

// TestBrowserScreenshots takes the pictures of the main views, at
// desktop and phone width, light and dark. With
// MESHNODE_SCREENSHOTS=docs/screenshots they are the README's pictures:
//
//	MESHNODE_SCREENSHOTS=$PWD/docs/screenshots go test ./webui -run TestBrowserScreenshots
func TestBrowserScreenshots(t *testing.T) {
	host := startPerson(t, "community host", func(p *node.Params) { p.HostPolicy = node.PolicyOpen; p.Directory.Serve = true })
	dir := func(p *node.Params) { p.Contacts.DirectoryHosts = []string{host.addr()} }
	alice, bob, carol := startPerson(t, "Alice", dir), startPerson(t, "Bob", dir), startPerson(t, "Carol Ng", dir)
	ctx := context.Background()

	// A group with a conversation.
	club, err := alice.c.CreateGroup(ctx, "Book club", []string{host.addr(), alice.addr()})
	if err != nil {
		t.Fatal(err)
	}
	gid := club.Group.ID
	for _, p := range []*person{bob, carol} {
		if _, err := p.c.JoinGroup(ctx, club.Invite, ""); err != nil {
			t.Fatal(err)
		}
	}
	say := func(p *person, text string) {
		t.Helper()
		if _, err := p.c.Send(ctx, gid, text); err != nil {
			t.Fatal(err)
		}
		time.Sleep(15 * time.Millisecond) // distinct send times, in order
	}
	say(carol, "Has everyone finished chapter 12?")
	say(bob, "Almost! The part about the lighthouse keeper got me 🙂")
	say(bob, "Should we meet on Thursday instead of Friday?")
	say(alice, "Thursday works for me.")
	say(alice, "I'll bring the annotated copy. Notes are at https://example.org/notes/chapter-12")
	say(carol, "Thursday it is. Same café, 7 pm?\nI can book the table by the window.")
	tu.Eventually(t, 30*time.Second, func() bool {
		ms, err := alice.c.Members(ctx, gid)
		return err == nil && len(ms) == 3
	}, "alice knows every member")
	if _, err := bob.c.SendDirect(ctx, gid, alice.fp, "Psst — it's Carol's birthday on Thursday. Cake?"); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 30*time.Second, func() bool {
		ms, err := alice.c.Messages(ctx, gid, 0)
		return err == nil && len(ms) >= 7
	}, "alice has the conversation")
	if _, err := alice.c.SetVerified(ctx, carol.fp, true); err != nil {
		t.Fatal(err)
	}

	// A managed group, and a contact.
	staff, err := alice.c.CreateManagedGroup(ctx, &api.CreateManagedRequest{Name: "Organisers", Hosts: []string{host.addr()}})
	if err != nil {
		t.Fatal(err)
	}
	kp, err := bob.c.NewKeyPackage(ctx, &api.NewKeyPackageRequest{Hosts: []string{host.addr()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.AddMember(ctx, staff.Group.ID, &api.AddMemberRequest{KeyPackage: kp.KeyPackage, Role: "write"}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.Send(ctx, staff.Group.ID, "Venue confirmed for the reading night."); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.c.AddAlias(ctx, "carol-reads", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.RequestContact(ctx, "carol-reads"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.c.AddAlias(ctx, "bob-b", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.c.RequestContact(ctx, "bob-b"); err != nil {
		t.Fatal(err)
	}
	// Something unread in another chat.
	if _, err := alice.c.AddAlias(ctx, "alice", nil); err != nil {
		t.Fatal(err)
	}

	for _, theme := range []string{"light", "dark"} {
		a := openPage(t, alice, 1360, 860)
		a.eval(fmt.Sprintf(`localStorage.setItem('meshnode.prefs', JSON.stringify({theme: %q, details: true})); true`, theme), nil)
		a.do(chromedp.Reload())
		a = reopen(t, a)
		a.openChat(gid)
		a.wait(`document.querySelectorAll('.timeline .msg').length >= 7 && document.querySelectorAll('.member-list .member').length === 3`, "the conversation shows")
		a.typeIn(`.compose-input`, "Cake is a great idea")
		a.screenshot("desktop-chat-" + theme)
		if theme == "dark" {
			continue
		}
		a.eval(`document.querySelector('.compose-input').value = ''; true`, nil)
		a.click(`.conv-actions .icon-btn:first-child`) // invite
		a.wait(`!!document.querySelector('dialog img.qr') && document.querySelector('dialog img.qr').naturalWidth > 0`, "the QR code shows")
		a.screenshot("desktop-invite")
		a.do(chromedp.KeyEvent("\x1b"))
		a.go2("#/contacts")
		a.wait(`!!document.querySelector('.page .card')`, "contacts show")
		a.screenshot("desktop-contacts")
		a.go2("#/node")
		a.wait(`!!document.querySelector('.page .stats')`, "the node shows")
		a.screenshot("desktop-node")
	}

	c := openPage(t, carol, 390, 844)
	c.wait(`document.querySelectorAll('.chat').length >= 1`, "carol's chats show")
	c.screenshot("phone-chats")
	c.openChat(gid)
	c.wait(`document.querySelectorAll('.timeline .msg').length >= 6`, "carol's conversation shows")
	c.screenshot("phone-chat")
	b := openPage(t, bob, 390, 844)
	b.go2("#/contacts")
	b.wait(`document.querySelectorAll('.page .row').length >= 1`, "bob's contacts show")
	b.screenshot("phone-contacts")
}

// reopen waits for a reloaded page to be ready again.
func reopen(t *testing.T, pg *page) *page {
	t.Helper()
	pg.wait(`document.body.dataset.ready === 'true'`, "the app restarts")
	return pg
}
