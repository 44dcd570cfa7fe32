package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/groupstate"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/keymgmt"
	"github.com/meshnode/meshnode/store"
)

// One limit, stated once: a text of groupstate.MaxTextLen bytes goes out
// in the worst case (the longest nick, a full set of causal parents, a
// direct message sealed to the largest key suite), and one byte more is
// refused with the limit in the error, for group and direct messages.
func TestMessageTextLimit(t *testing.T) {
	leakCheck(t)
	alice := newPerson(t, strings.Repeat("a", groupstate.MaxNameLen))
	bob := newPerson(t, "bob")
	var err error
	if bob.id, err = keymgmt.NewIdentity(keymgmt.SuitePQ); err != nil {
		t.Fatal(err)
	}
	alice.start()
	bob.start()
	ctx := context.Background()
	_, invite, err := alice.n.CreateGroup(ctx, "limits", nil)
	if err != nil {
		t.Fatal(err)
	}
	connect(t, bob.n, alice.n)
	if _, err := bob.n.JoinGroup(ctx, invite, ""); err != nil {
		t.Fatal(err)
	}
	// Bob's profile (his HPKE key) reaches alice; her own messages give
	// her a full set of parents.
	waitMembers(t, alice.n, "limits", 2)
	for i := range groupstate.MaxParents {
		if _, err := alice.n.Send(ctx, "limits", fmt.Sprint("filler ", i)); err != nil {
			t.Fatal(err)
		}
	}

	longest := strings.Repeat("é", groupstate.MaxTextLen/2) + strings.Repeat("x", groupstate.MaxTextLen%2)
	if len(longest) != groupstate.MaxTextLen {
		t.Fatalf("test text of %d bytes", len(longest))
	}
	if _, err := alice.n.Send(ctx, "limits", longest); err != nil {
		t.Fatalf("a group message of MaxTextLen bytes: %v", err)
	}
	if _, err := alice.n.SendDirect(ctx, "limits", bob.id.Fingerprint(), longest); err != nil {
		t.Fatalf("a direct message of MaxTextLen bytes to a post-quantum identity: %v", err)
	}
	// A node whose databases are in memory (the simulator's) sends it too.
	carol := newPerson(t, "carol")
	carol.tweak = func(p *Params) { p.Store = store.InMemoryParams() }
	carol.start()
	if _, _, err := carol.n.CreateGroup(ctx, "mine", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.n.Send(ctx, "mine", longest); err != nil {
		t.Fatalf("a message of MaxTextLen bytes from a node in memory: %v", err)
	}
	for name, send := range map[string]func(string) error{
		"group":  func(s string) error { _, err := alice.n.Send(ctx, "limits", s); return err },
		"direct": func(s string) error { _, err := alice.n.SendDirect(ctx, "limits", bob.id.Fingerprint(), s); return err },
	} {
		err := send(longest + "x")
		if !errors.Is(err, groupstate.ErrTooLong) || !strings.Contains(err.Error(), fmt.Sprint(groupstate.MaxTextLen)) {
			t.Errorf("%s message one byte over the limit: %v, want ErrTooLong stating %d", name, err, groupstate.MaxTextLen)
		}
	}
}

func waitMembers(t *testing.T, n *Node, group string, want int) {
	t.Helper()
	tu.Eventually(t, 20*time.Second, func() bool {
		ms, err := n.Members(group)
		return err == nil && len(ms) >= want
	}, "%d members in %s", want, group)
}
