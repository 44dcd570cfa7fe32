package daemon

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/api"
	tu "github.com/meshnode/meshnode/internal/testutil"
)

// Issue 18, item 6: a direct message names its recipient by nick when
// exactly one other member has it; a nick two members share lists both
// with their fingerprints; an unknown nick says so.
func TestDirectByNick(t *testing.T) {
	leakCheck(t)
	alice, bob, carol := startMember(t, "alice"), startMember(t, "bob"), startMember(t, "carol")
	ctx := context.Background()
	created, err := alice.c.CreateGroup(ctx, "nicks", []string{alice.addr()})
	if err != nil {
		t.Fatal(err)
	}
	gid := created.Group.ID
	if _, err := bob.c.JoinGroup(ctx, created.Invite, "bob"); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 20*time.Second, func() bool { ms, _ := alice.c.Members(ctx, gid); return len(ms) == 2 }, "alice knows bob")
	if _, err := alice.c.SendDirect(ctx, gid, "bob", "psst, bob"); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 20*time.Second, func() bool { return slices.Contains(texts(t, bob.c, gid), "psst, bob") }, "bob reads the direct sent to his nick")
	if _, err := alice.c.SendDirect(ctx, gid, "Bob", "x"); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), `did you mean "bob"`) {
		t.Fatalf("a nick in the wrong case: %v", err)
	}
	// Carol takes the nick bob too.
	if _, err := carol.c.JoinGroup(ctx, created.Invite, "bob"); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 20*time.Second, func() bool { ms, _ := alice.c.Members(ctx, gid); return len(ms) == 3 }, "alice knows carol")
	_, err = alice.c.SendDirect(ctx, gid, "bob", "which bob?")
	if !errors.Is(err, api.ErrAmbiguousMember) || !strings.Contains(err.Error(), bob.fp) || !strings.Contains(err.Error(), carol.fp) {
		t.Fatalf("an ambiguous nick: %v", err)
	}
}
