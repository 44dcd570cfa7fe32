package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/api"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/node"
)

// member is a running member daemon with its client.
type member struct {
	d  *Daemon
	c  *api.Client
	fp string
}

// startMember starts a member daemon with a nickname whose node processes
// its store often (the default period is for real use).
func startMember(t *testing.T, nick string, opts ...Option) *member {
	t.Helper()
	p := DefaultInitParams()
	p.Nick = nick
	p.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	p.KDF = cheapKDF
	res, err := Init(filepath.Join(t.TempDir(), "home"), p, []byte(testPass))
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]Option{WithNodeParams(func(p *node.Params) {
		inMemory(p)
		p.ProcessInterval = 200 * time.Millisecond
	})}, opts...)
	d := startDaemon(t, res.Home, nil, opts...)
	return &member{d: d, c: client(t, res.Home), fp: res.Fingerprint}
}

func (m *member) addr() string { return m.d.Node().Addrs()[0].String() }

// texts are the texts of a group's text and direct messages, in order.
func texts(t *testing.T, c *api.Client, group string) []string {
	t.Helper()
	msgs, err := c.Messages(context.Background(), group, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		if m.Kind == api.KindText || m.Kind == api.KindDirect {
			out = append(out, m.Text)
		}
	}
	return out
}

// TestGroupTypesMirrorNode: the api types must carry the node's fields
// with the same JSON names (struct conversion checks the fields at compile
// time but ignores tags).
func TestGroupTypesMirrorNode(t *testing.T) {
	for _, pair := range [][2]any{
		{node.GroupInfo{}, api.GroupInfo{}},
		{node.MemberInfo{}, api.MemberInfo{}},
		{node.SendResult{}, api.SendResult{}},
		{node.CatchUpResult{}, api.CatchUpResult{}},
		{node.Gap{}, api.Gap{}},
	} {
		n, a := reflect.TypeOf(pair[0]), reflect.TypeOf(pair[1])
		if n.NumField() != a.NumField() {
			t.Errorf("%v has %d fields, %v has %d", n, n.NumField(), a, a.NumField())
			continue
		}
		for i := range n.NumField() {
			nf, af := n.Field(i), a.Field(i)
			if nf.Name != af.Name || nf.Tag.Get("json") != af.Tag.Get("json") {
				t.Errorf("%v.%s `%s` vs %v.%s `%s`", n, nf.Name, nf.Tag, a, af.Name, af.Tag)
			}
		}
	}
	// A message's stored fields reach the API under the same names
	// (apiMessage copies them; the view is the API's own).
	n, a := reflect.TypeOf(node.Message{}), reflect.TypeOf(api.Message{})
	for i := range n.NumField() {
		nf := n.Field(i)
		if nf.Tag.Get("json") == "-" {
			continue
		}
		af, ok := a.FieldByName(nf.Name)
		if !ok || af.Tag.Get("json") != nf.Tag.Get("json") {
			t.Errorf("node.Message.%s `%s` has no twin in api.Message", nf.Name, nf.Tag)
		}
	}
	if node.KindGap != api.KindGap {
		t.Errorf("gap kind %q vs %q", node.KindGap, api.KindGap)
	}
}

func TestGroupConversationOverAPI(t *testing.T) {
	leakCheck(t)
	alice, bob := startMember(t, "alice"), startMember(t, "bob")
	ctx := context.Background()

	// Alice's own node is the group's host: bob reaches her directly.
	created, err := alice.c.CreateGroup(ctx, "book club", []string{alice.addr()})
	if err != nil {
		t.Fatal(err)
	}
	g := created.Group
	if g.Name != "book club" || g.ID == "" || !g.CanWrite || !slices.Equal(g.Hosts, []string{alice.addr()}) ||
		!strings.HasPrefix(created.Invite, "meshnode-invite-v1.") {
		t.Fatalf("created %+v", created)
	}
	invite, err := alice.c.Invite(ctx, g.ID)
	if err != nil || !strings.HasPrefix(invite, "meshnode-invite-v1.") {
		t.Fatalf("invite %q, %v", invite, err)
	}

	// Alice follows before anything is said.
	follow, err := alice.c.MessageStream(ctx, "book club", 0, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { follow.Close() })

	joined, err := bob.c.JoinGroup(ctx, " "+invite+"\n", "bobby")
	if err != nil {
		t.Fatal(err)
	}
	if joined.ID != g.ID || joined.Nick != "bobby" || joined.Name != "book club" {
		t.Fatalf("joined %+v", joined)
	}
	if _, err := bob.c.JoinGroup(ctx, invite, ""); !errors.Is(err, api.ErrAlreadyMember) || !errors.Is(err, api.ErrConflict) {
		t.Fatalf("second join: %v", err)
	}

	sent, err := alice.c.Send(ctx, "book club", "hello from alice")
	if err != nil {
		t.Fatal(err)
	}
	if sent.ID == "" || !slices.Equal(sent.StoredBy, []string{alice.d.Node().ID().String()}) {
		t.Fatalf("alice's send %+v", sent)
	}
	// Bob's node relays to the group's host, alice's node, which stores it.
	nextMilli() // the node orders messages by their millisecond timestamp
	sent, err = bob.c.Send(ctx, g.ID, "hi, bob here")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sent.StoredBy, []string{alice.d.Node().ID().String()}) {
		t.Fatalf("bob's send %+v", sent)
	}
	want := []string{"hello from alice", "hi, bob here"}
	for _, m := range []*member{alice, bob} {
		tu.Eventually(t, 20*time.Second, func() bool { return len(texts(t, m.c, g.ID)) == 2 }, "both messages shown")
		msgs, err := m.c.Messages(ctx, g.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, msg := range msgs {
			got = append(got, msg.Text)
			if !msg.Verified || msg.Group != g.ID || msg.Kind != api.KindText || msg.Sent.IsZero() {
				t.Errorf("message %+v", msg)
			}
			if msg.Text == "hi, bob here" && (msg.Author != bob.fp || msg.Nick != "bobby") {
				t.Errorf("bob's message attributed to %s/%s", msg.Nick, msg.Author)
			}
			if msg.Text == "hello from alice" && msg.Author != alice.fp {
				t.Errorf("alice's message attributed to %s", msg.Author)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("messages %q", got)
		}
	}
	if last, err := alice.c.Messages(ctx, g.ID, 1); err != nil || len(last) != 1 || last[0].Text != "hi, bob here" {
		t.Errorf("limit 1: %+v, %v", last, err)
	}

	// The stream gave alice both, in the order her node saw them.
	for _, w := range want {
		m, err := follow.Next()
		if err != nil {
			t.Fatal(err)
		}
		if m.Text != w || m.Group != g.ID {
			t.Fatalf("followed %+v, want %q", m, w)
		}
	}

	tu.Eventually(t, 20*time.Second, func() bool {
		ms, err := alice.c.Members(ctx, g.ID)
		return err == nil && len(ms) == 2
	}, "alice knows bob's profile")
	ms, _ := alice.c.Members(ctx, g.ID)
	for _, m := range ms {
		if (m.Self && m.Fingerprint != alice.fp) || (!m.Self && (m.Fingerprint != bob.fp || m.Nick != "bobby")) {
			t.Errorf("member %+v", m)
		}
	}

	// A direct message: bob reads it, marked as direct to him.
	nextMilli()
	if _, err := alice.c.SendDirect(ctx, g.ID, strings.ToUpper(bob.fp), "psst, bob"); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 20*time.Second, func() bool { return slices.Contains(texts(t, bob.c, g.ID), "psst, bob") }, "bob reads the direct")
	msgs, _ := bob.c.Messages(ctx, g.ID, 1)
	if msgs[0].Kind != api.KindDirect || msgs[0].To != bob.fp || msgs[0].Author != alice.fp {
		t.Errorf("direct %+v", msgs[0])
	}
	if m, err := follow.Next(); err != nil || m.Text != "psst, bob" || m.Kind != api.KindDirect {
		t.Errorf("followed direct %+v, %v", m, err)
	}

	res, err := bob.c.CatchUp(ctx, "book club")
	if err != nil {
		t.Fatal(err)
	}
	if res.Group != g.ID || res.Hosts < 1 || len(res.Failed) != 0 || len(res.Gaps) != 0 {
		t.Errorf("catch-up %+v", res)
	}
	if got := texts(t, bob.c, g.ID); len(got) != 3 {
		t.Errorf("after a catch-up bob shows %q", got)
	}

	list, err := bob.c.Groups(ctx)
	if err != nil || len(list) != 1 || list[0].ID != g.ID || list[0].Members != 2 || list[0].Messages != 3 {
		t.Errorf("bob's groups %+v, %v", list, err)
	}
	follow.Close()
}

func TestGroupAPIErrors(t *testing.T) {
	alice := startMember(t, "alice")
	ctx := context.Background()
	created, err := alice.c.CreateGroup(ctx, "ops", nil)
	if err != nil {
		t.Fatal(err)
	}
	if created.Group.Hosts == nil {
		t.Error("hosts is null in JSON")
	}
	// A second group of the same name makes the name ambiguous; its ID
	// still works. A name with a slash and spaces is one path segment.
	dup, err := alice.c.CreateGroup(ctx, "ops", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.CreateGroup(ctx, "a/b c%d", nil); err != nil {
		t.Fatal(err)
	}
	if g, err := alice.c.Group(ctx, "a/b c%d"); err != nil || g.Name != "a/b c%d" {
		t.Errorf("group by a name with a slash: %+v, %v", g, err)
	}
	if _, err := alice.c.Send(ctx, dup.Group.ID, "by ID"); err != nil {
		t.Errorf("send by ID: %v", err)
	}
	other := startMember(t, "other")

	for _, tc := range []struct {
		name     string
		call     func() error
		want     []error
		contains string
	}{
		{"unknown group", func() error { _, err := alice.c.Send(ctx, "nope", "x"); return err },
			[]error{api.ErrUnknownGroup, api.ErrNotFound}, "meshnode group list"},
		{"unknown group, messages", func() error { _, err := alice.c.Messages(ctx, "nope", 0); return err },
			[]error{api.ErrUnknownGroup}, "group list"},
		{"unknown group, stream", func() error { _, err := alice.c.MessageStream(ctx, "nope", 0, true); return err },
			[]error{api.ErrUnknownGroup}, "group list"},
		{"unknown group, invite", func() error { _, err := alice.c.Invite(ctx, "nope"); return err },
			[]error{api.ErrUnknownGroup}, "group list"},
		{"unknown group, members", func() error { _, err := alice.c.Members(ctx, "nope"); return err },
			[]error{api.ErrUnknownGroup}, "group list"},
		{"unknown group, catch-up", func() error { _, err := alice.c.CatchUp(ctx, "nope"); return err },
			[]error{api.ErrUnknownGroup}, "group list"},
		{"ambiguous name", func() error { _, err := alice.c.Send(ctx, "ops", "x"); return err },
			[]error{api.ErrAmbiguousGroup, api.ErrConflict}, "group ID"},
		{"malformed invite", func() error { _, err := other.c.JoinGroup(ctx, "meshnode-invite-v1.garbage", ""); return err },
			[]error{api.ErrBadInvite, api.ErrBadRequest}, "ask"},
		{"not an invite", func() error { _, err := other.c.JoinGroup(ctx, "hello", ""); return err },
			[]error{api.ErrBadInvite}, "meshnode-invite-v1."},
		{"truncated invite", func() error {
			_, err := other.c.JoinGroup(ctx, created.Invite[:len(created.Invite)-3], "")
			return err
		}, []error{api.ErrBadInvite}, "invite"},
		{"direct to an unknown member", func() error {
			_, err := alice.c.SendDirect(ctx, dup.Group.ID, other.fp, "x")
			return err
		}, []error{api.ErrUnknownMember, api.ErrNotFound}, other.fp},
		{"direct to a malformed fingerprint", func() error {
			_, err := alice.c.SendDirect(ctx, dup.Group.ID, "abcd-1234", "x")
			return err
		}, []error{api.ErrBadRequest}, "group members"},
		{"oversize text", func() error { _, err := alice.c.Send(ctx, dup.Group.ID, strings.Repeat("x", 70000)); return err },
			[]error{api.ErrBadRequest}, "at most"},
		{"text over the body limit", func() error {
			_, err := alice.c.Send(ctx, dup.Group.ID, strings.Repeat("x", api.MaxRequestBody))
			return err
		}, []error{api.ErrTooLarge}, "bytes"},
		{"empty text", func() error { _, err := alice.c.Send(ctx, dup.Group.ID, ""); return err },
			[]error{api.ErrBadRequest}, "empty"},
		{"bad host", func() error { _, err := alice.c.CreateGroup(ctx, "g", []string{"/ip4/127.0.0.1/tcp/1"}); return err },
			[]error{api.ErrBadRequest}, "/p2p/"},
		{"empty group name", func() error { _, err := alice.c.CreateGroup(ctx, "", nil); return err },
			[]error{api.ErrBadRequest}, "group name"},
		{"unknown field", func() error {
			return alice.c.Do(ctx, http.MethodPost, api.PathGroups, map[string]any{"name": "x", "color": "red"}, nil)
		}, []error{api.ErrBadRequest}, "color"},
		{"negative limit", func() error {
			return alice.c.Do(ctx, http.MethodGet, api.GroupPath(api.PathGroupMessages, "ops")+"?limit=-1", nil, nil)
		}, []error{api.ErrBadRequest}, "limit"},
		{"bad follow", func() error {
			return alice.c.Do(ctx, http.MethodGet, api.GroupPath(api.PathGroupStream, dup.Group.ID)+"?follow=maybe", nil, nil)
		}, []error{api.ErrBadRequest}, "follow"},
		{"wrong method", func() error {
			return alice.c.Do(ctx, http.MethodDelete, api.GroupPath(api.PathGroupMessages, "ops"), nil, nil)
		}, []error{api.ErrMethodNotAllowed}, "GET, POST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("got %v, want %v", err, w)
				}
			}
			if err == nil || !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %v does not mention %q", err, tc.contains)
			}
		})
	}
	// Nothing of the failed calls was stored.
	if got := texts(t, alice.c, dup.Group.ID); !slices.Equal(got, []string{"by ID"}) {
		t.Errorf("messages after the failures: %q", got)
	}
}

func TestMessageStream(t *testing.T) {
	leakCheck(t)
	// A buffer of one message makes the node drop messages for the
	// stream whenever the handler is busy, so the resync is exercised.
	alice := startMember(t, "alice", func(c *config) error { c.followBuffer = 1; c.heartbeat = 20 * time.Millisecond; return nil })
	ctx := context.Background()
	created, err := alice.c.CreateGroup(ctx, "g", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.CreateGroup(ctx, "elsewhere", nil); err != nil {
		t.Fatal(err)
	}
	gid := created.Group.ID
	for i := range 5 {
		// The node orders messages by their millisecond timestamp; give
		// each its own.
		nextMilli()
		if _, err := alice.c.Send(ctx, gid, fmt.Sprintf("old %d", i)); err != nil {
			t.Fatal(err)
		}
	}

	// Without follow: the listing, then the end.
	read := func(s *api.Stream[api.Message], n int) []string {
		t.Helper()
		var out []string
		for range n {
			m, err := s.Next()
			if err != nil {
				t.Fatalf("after %q: %v", out, err)
			}
			out = append(out, m.Text)
		}
		return out
	}
	s, err := alice.c.MessageStream(ctx, "g", 2, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := read(s, 2); !slices.Equal(got, []string{"old 3", "old 4"}) {
		t.Errorf("limit 2: %q", got)
	}
	if _, err := s.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("stream without follow did not end: %v", err)
	}

	// With follow and a limit: the latest one, then every new message of
	// the group exactly once, none of the other group's, none of the
	// older history.
	// Bounded, so that a stream that loses messages fails the test
	// instead of hanging it.
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	t.Cleanup(cancel)
	s, err = alice.c.MessageStream(sctx, "g", 1, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var want []string
	for i := range 50 {
		txt := fmt.Sprintf("new %02d", i)
		want = append(want, txt)
		if _, err := alice.d.Node().Send(ctx, gid, txt); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.d.Node().Send(ctx, "elsewhere", "noise"); err != nil {
			t.Fatal(err)
		}
	}
	got := read(s, 51)
	if got[0] != "old 4" {
		t.Errorf("first item %q, want the latest old message", got[0])
	}
	slices.Sort(got[1:]) // a resync sends in sending order, after newer ones
	if !slices.Equal(got[1:], want) {
		t.Errorf("followed %q", got)
	}
	// Nothing more: the next item is a later message, not a duplicate.
	if _, err := alice.c.Send(ctx, gid, "last"); err != nil {
		t.Fatal(err)
	}
	if m, err := s.Next(); err != nil || m.Text != "last" {
		t.Errorf("after the burst: %+v, %v", m, err)
	}

	// Shutdown ends the stream.
	if err := alice.d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(); err == nil {
		t.Error("stream went on after shutdown")
	}
}

// nextMilli returns once the wall clock has moved to the next millisecond.
func nextMilli() {
	now := time.Now().UnixMilli()
	for time.Now().UnixMilli() == now {
		runtime.Gosched()
	}
}

// BenchmarkGroupAPI measures one send (POST .../messages, a group with no
// hosts: sign, seal, store, answer) and one listing of the latest 50 of a
// group's 1000 messages over loopback TCP.
func BenchmarkGroupAPI(b *testing.B) {
	res := initHome(b, node.RoleMember)
	d := startDaemon(b, res.Home, nil)
	c := client(b, res.Home)
	ctx := context.Background()
	text := strings.Repeat("x", 200)
	b.Run("send", func(b *testing.B) {
		created, err := c.CreateGroup(ctx, "send", nil)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Send(ctx, created.Group.ID, text); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("list50of1000", func(b *testing.B) {
		created, err := c.CreateGroup(ctx, "list", nil)
		if err != nil {
			b.Fatal(err)
		}
		for range 1000 {
			if _, err := d.Node().Send(ctx, created.Group.ID, text); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Messages(ctx, created.Group.ID, 50); err != nil {
				b.Fatal(err)
			}
		}
	})
}
