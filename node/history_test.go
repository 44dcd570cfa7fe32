package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	tu "github.com/meshnode/meshnode/internal/testutil"
)

func pageTexts(p *MessagePage) []string {
	var out []string
	for _, m := range p.Messages {
		out = append(out, m.Text)
	}
	return out
}

// TestMessagesPage pages a history upward and back down, with a filter,
// and refuses malformed positions.
func TestMessagesPage(t *testing.T) {
	alice := newPerson(t, "alice")
	alice.start()
	ctx := context.Background()
	if _, _, err := alice.n.CreateGroup(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 23 {
		txt := fmt.Sprintf("m%02d", i)
		want = append(want, txt)
		if _, err := alice.n.Send(ctx, "g", txt); err != nil {
			t.Fatal(err)
		}
	}
	// Upward from the latest page.
	var got []string
	var oldest string
	q := PageQuery{Limit: 5}
	for {
		p, err := alice.n.MessagesPage("g", q)
		if err != nil {
			t.Fatal(err)
		}
		got = append(pageTexts(p), got...)
		if !p.More {
			oldest = p.Messages[0].Cursor
			break
		}
		if len(p.Messages) != 5 {
			t.Fatalf("a page with more to come has %d messages", len(p.Messages))
		}
		q.Before = p.Messages[0].Cursor
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged upward: %q", got)
	}
	// Own messages carry their delivery state, as in Messages.
	latest, err := alice.n.MessagesPage("g", PageQuery{Limit: 1})
	if err != nil || latest.Messages[0].Delivery == "" {
		t.Fatalf("no delivery state on an own message: %+v %v", latest, err)
	}
	if all, _ := alice.n.Messages("g", 1); all[0].Delivery != latest.Messages[0].Delivery {
		t.Fatalf("delivery %q in a page, %q in Messages", latest.Messages[0].Delivery, all[0].Delivery)
	}
	// Downward from the oldest.
	if first, err := alice.n.MessagesPage("g", PageQuery{Limit: 1, Before: oldest}); err != nil || len(first.Messages) != 0 || first.More {
		t.Fatalf("before the oldest: %+v %v", first, err)
	}
	got = []string{"m00"}
	q = PageQuery{Limit: 7, After: oldest}
	for {
		p, err := alice.n.MessagesPage("g", q)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, pageTexts(p)...)
		if !p.More {
			break
		}
		q.After = p.Messages[len(p.Messages)-1].Cursor
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged downward: %q", got)
	}
	// A filter leaves messages out without shortening pages.
	even := func(m *Message) bool { return m.Text[len(m.Text)-1]%2 == 1 }
	p, err := alice.n.MessagesPage("g", PageQuery{Limit: 3, Hide: even})
	if err != nil || !slices.Equal(pageTexts(p), []string{"m18", "m20", "m22"}) || !p.More {
		t.Fatalf("filtered page: %q %v %v", pageTexts(p), p.More, err)
	}
	for _, bad := range []PageQuery{
		{Limit: 0}, {Limit: MaxPageMessages + 1}, {Limit: 5, Before: "zz"}, {Limit: 5, After: "00"},
		{Limit: 5, Before: p.Messages[0].Cursor, After: p.Messages[0].Cursor},
	} {
		if _, err := alice.n.MessagesPage("g", bad); !errors.Is(err, ErrBadCursor) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	if _, err := alice.n.MessagesPage("nope", PageQuery{Limit: 5}); !errors.Is(err, ErrUnknownGroup) {
		t.Errorf("unknown group: %v", err)
	}
}

// TestReadMarkers: unread counts what others wrote after the marker, the
// marker only moves forward, survives a restart and goes with the group.
func TestReadMarkers(t *testing.T) {
	leakCheck(t)
	alice, bob := newPerson(t, "alice"), newPerson(t, "bob")
	alice.start()
	bob.start()
	ctx := context.Background()
	info, invite, err := alice.n.CreateGroup(ctx, "g", []string{hostAddr(alice.n)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.n.JoinGroup(ctx, invite, ""); err != nil {
		t.Fatal(err)
	}
	rs, err := bob.n.ReadState("g", nil)
	if err != nil || rs.Unread != 0 || rs.Cursor != "" {
		t.Fatalf("empty group: %+v %v", rs, err)
	}
	for i := range 4 {
		if _, err := alice.n.Send(ctx, "g", fmt.Sprintf("a%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bob.n.Send(ctx, "g", "own"); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 20*time.Second, func() bool { return len(texts(t, bob.n, "g")) == 5 }, "bob has every message")
	rs, err = bob.n.ReadState("g", nil)
	if err != nil || rs.Unread != 4 || rs.Last == nil {
		t.Fatalf("before reading: %+v %v", rs, err)
	}
	p, err := bob.n.MessagesPage("g", PageQuery{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	var second string
	for _, m := range p.Messages {
		if m.Text == "a1" {
			second = m.Cursor
		}
	}
	if rs, err = bob.n.MarkRead("g", second, nil); err != nil || rs.Unread != 2 || rs.Cursor != second {
		t.Fatalf("read up to a1: %+v %v", rs, err)
	}
	if rs, err = bob.n.MarkRead("g", p.Messages[0].Cursor, nil); err != nil || rs.Unread != 2 || rs.Cursor != second {
		t.Fatalf("the marker moved back: %+v %v", rs, err)
	}
	if _, err := bob.n.MarkRead("g", "xyz", nil); !errors.Is(err, ErrBadCursor) {
		t.Fatalf("malformed marker: %v", err)
	}
	bob.stop()
	bob.start()
	if rs, err = bob.n.ReadState(info.ID, nil); err != nil || rs.Unread != 2 || rs.Cursor != second {
		t.Fatalf("after a restart: %+v %v", rs, err)
	}
	if rs, err = bob.n.MarkRead("g", rs.Last.Cursor, nil); err != nil || rs.Unread != 0 {
		t.Fatalf("all read: %+v %v", rs, err)
	}
}

func TestVerifiedFingerprints(t *testing.T) {
	alice, bob := newPerson(t, "alice"), newPerson(t, "bob")
	alice.start()
	fp := bob.id.Fingerprint()
	if vs, err := alice.n.Verified(); err != nil || len(vs) != 0 {
		t.Fatalf("none yet: %v %v", vs, err)
	}
	// Typed loosely (upper case, no separators), stored canonically.
	loose := ""
	for _, r := range fp {
		if r != '-' && r != ' ' {
			loose += string(r)
		}
	}
	v, err := alice.n.SetVerified(upper(loose), true)
	if err != nil || v.Fingerprint != fp || v.Since.IsZero() {
		t.Fatalf("verify: %+v %v", v, err)
	}
	again, err := alice.n.SetVerified(fp, true)
	if err != nil || !again.Since.Equal(v.Since) {
		t.Fatalf("verify twice changed the date: %+v %v", again, err)
	}
	if _, err := alice.n.SetVerified("not a fingerprint", true); err == nil {
		t.Fatal("malformed fingerprint accepted")
	}
	alice.stop()
	alice.start()
	vs, err := alice.n.Verified()
	if err != nil || len(vs) != 1 || vs[0].Fingerprint != fp {
		t.Fatalf("after a restart: %+v %v", vs, err)
	}
	if _, err := alice.n.SetVerified(fp, false); err != nil {
		t.Fatal(err)
	}
	if vs, err := alice.n.Verified(); err != nil || len(vs) != 0 {
		t.Fatalf("after clearing: %v %v", vs, err)
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
