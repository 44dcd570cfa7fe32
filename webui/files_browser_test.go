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

// TestBrowserSendFile: a file chosen behind the composer's attach button
// is sent; both members see its card, and the other's node reads it.
func TestBrowserSendFile(t *testing.T) {
	alice, bob := startPerson(t, "alice"), startPerson(t, "bob")
	ctx := context.Background()
	g, err := alice.c.CreateGroup(ctx, "files", []string{alice.addr()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.c.JoinGroup(ctx, g.Invite, ""); err != nil {
		t.Fatal(err)
	}
	a := openPage(t, alice, 1280, 800)
	a.openChat(g.Group.ID)
	// The page builds the File itself (a test cannot drive the file
	// chooser) and hands it to the input as a user's choice would.
	a.eval(`(() => {
		const dt = new DataTransfer();
		dt.items.add(new File(['x'.repeat(70000)], 'plan.txt', { type: 'text/plain' }));
		const input = document.querySelector('.file-input');
		input.files = dt.files;
		input.dispatchEvent(new Event('change'));
		return true;
	})()`, nil)
	a.wait(`[...document.querySelectorAll('.msg.own .file-card')].some(c => c.textContent.includes('plan.txt'))`, "alice sees her file")
	b := openPage(t, bob, 1280, 800)
	b.openChat(g.Group.ID)
	b.wait(`[...document.querySelectorAll('.file-card')].some(c => c.textContent.includes('plan.txt') && c.textContent.includes('68.4 KiB'))`, "bob sees alice's file")
	a.screenshot("files-sent")
	msgs, err := bob.c.Messages(ctx, g.Group.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	var id string
	for _, m := range msgs {
		if m.File != nil && m.File.Name == "plan.txt" {
			id = m.ID
		}
	}
	s, err := bob.c.Download(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for {
		p, err := s.Next()
		if err != nil {
			t.Fatalf("bob's download: %v", err)
		}
		if p.Done {
			if p.File.Size != 70000 {
				t.Fatalf("bob's download: %+v", p)
			}
			break
		}
	}
	a.checkRequests()
}
