package webui_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
)

// TestBrowserFiles: a file message shows as a card with its name, type
// and size; Download has the node fetch and check it, and the page then
// reads the checked bytes from the node.
func TestBrowserFiles(t *testing.T) {
	alice, bob := startPerson(t, "alice"), startPerson(t, "bob")
	ctx := context.Background()
	g, err := alice.c.CreateGroup(ctx, "files", []string{alice.addr()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.c.JoinGroup(ctx, g.Invite, ""); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 9000)
	res, err := alice.c.SendFile(ctx, g.Group.ID, "minutes.txt", "text/plain", bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	b := openPage(t, bob, 1280, 800)
	b.openChat(g.Group.ID)
	sel := msgSel(res.ID)
	b.wait(fmt.Sprintf(`(document.querySelector(%q) || {textContent: ''}).textContent.includes('minutes.txt') && document.querySelector(%q).textContent.includes('140.6 KiB')`, sel+` .file-card`, sel+` .file-card`), "bob sees the file card")
	b.screenshot("files-card")
	// Download: the node fetches and checks; the anchor's navigation is
	// a download the headless browser drops, so the test reads the bytes
	// the same way.
	b.eval(fmt.Sprintf(`document.querySelector(%q).click(), true`, sel+` .file-get`), nil)
	b.wait(fmt.Sprintf(`document.querySelector(%q).textContent === 'Checked'`, sel+` .file-status`), "the download is checked")
	var n int
	b.eval(fmt.Sprintf(`fetch('/v1/messages/%s/file').then(r => r.arrayBuffer()).then(a => a.byteLength)`, res.ID), &n)
	if n != len(data) {
		t.Fatalf("the page read %d bytes, want %d", n, len(data))
	}
	b.checkRequests()
}
