package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/groupstate"
	tu "github.com/meshnode/meshnode/internal/testutil"
)

// A payload naming a state head the member does not hold is kept as a
// claim and checked again as the chain grows; the claim survives a
// restart, so the split it reveals when the epoch closes without that head
// is still reported.
func TestHeadClaimSurvivesRestart(t *testing.T) {
	_, _, gid, alice, bob, carol := threeMembers(t, groupstate.DefaultPolicy())
	ctx := context.Background()
	bogus := groupstate.EventID{0xb0, 0x60}
	postRawAt(t, carol, gid, 0, bogus, groupstate.KindText, []byte("under a head nobody holds"))
	waitText(t, bob, gid, "under a head nobody holds")
	bob.n.member.mu.Lock()
	claims := len(entry(t, bob, gid).claims)
	bob.n.member.mu.Unlock()
	if claims != 1 {
		t.Fatalf("bob keeps %d head claims, want 1", claims)
	}
	if s, _ := bob.n.Splits(gid); len(s) != 0 {
		t.Fatalf("split reported before the epoch closed: %+v", s)
	}

	bob.stop()
	bob.startManaged(nil)
	bob.n.member.mu.Lock()
	claims = len(entry(t, bob, gid).claims)
	bob.n.member.mu.Unlock()
	if claims != 1 {
		t.Fatalf("bob keeps %d head claims after a restart, want 1", claims)
	}

	// The rotation closes epoch 0 without the claimed head: a split.
	if _, err := alice.n.Rotate(ctx, gid); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 20*time.Second, func() bool {
		s, err := bob.n.Splits(gid)
		return err == nil && len(s) == 1 && s[0].Head == bogus.String() && strings.Contains(s[0].Reason, "split")
	}, "bob reports the split after restarting")
	bob.n.member.mu.Lock()
	claims = len(entry(t, bob, gid).claims)
	bob.n.member.mu.Unlock()
	if claims != 0 {
		t.Fatalf("a resolved claim is still kept: %d", claims)
	}
	var left int
	if err := bob.n.member.db.scan(gkey(pfxClaim, entry(t, bob, gid).g.ID), func(_, _ []byte) error { left++; return nil }); err != nil || left != 0 {
		t.Fatalf("%d claim records left in the member DB (%v)", left, err)
	}
}
