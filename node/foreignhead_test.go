package node

import (
	"context"
	"testing"
	"time"

	"github.com/meshnode/meshnode/groupstate"
	tu "github.com/meshnode/meshnode/internal/testutil"
)

// Issue 13, item 4: a member can no longer frame the manager. A payload
// naming a state head nobody holds is held (and listed as held) while its
// epoch is current, across a restart; when the epoch closes without that
// head it is refused as its author's fault — never reported as a split,
// which needs two events the manager signed.
func TestForeignHeadIsAuthorsFault(t *testing.T) {
	leakCheck(t)
	_, _, gid, alice, bob, carol := threeMembers(t, groupstate.DefaultPolicy())
	ctx := context.Background()
	bogus := groupstate.EventID{0xb0, 0x60}
	env := postRawAt(t, carol, gid, 0, bogus, groupstate.KindText, []byte("under a head nobody holds"))
	held := func(p *person) bool {
		rs, err := p.n.GroupRejections(gid, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Envelope == env.ID() && r.Kind == RejectionHeld && r.Author == carol.id.Fingerprint() {
				return true
			}
		}
		return false
	}
	tu.Eventually(t, 20*time.Second, func() bool { return held(bob) }, "bob holds carol's payload and lists it")
	if contains(texts(t, bob.n, gid), "under a head nobody holds") {
		t.Fatal("bob shows a payload whose head he does not hold")
	}

	bob.stop()
	bob.startManaged(nil)
	if !held(bob) {
		t.Fatal("the held payload is gone after a restart")
	}

	// The rotation closes epoch 0 without the claimed head: carol's fault.
	if _, err := alice.n.Rotate(ctx, gid); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*person{alice, bob} {
		tu.Eventually(t, 20*time.Second, func() bool {
			rs, _ := p.n.GroupRejections(gid, 0)
			for _, r := range rs {
				if r.Envelope == env.ID() && r.Kind == RejectionRefused && r.Reason == ReasonForeignHead && r.Author == carol.id.Fingerprint() {
					return true
				}
			}
			return false
		}, "%s refuses carol's payload as her fault", p.nick)
		if s, _ := p.n.Splits(gid); len(s) != 0 {
			t.Fatalf("%s reports a split without the manager's signature: %+v", p.nick, s)
		}
		for _, msg := range messagesOf(t, p.n, gid) {
			if msg.Kind == KindSplit || msg.Text == "under a head nobody holds" {
				t.Fatalf("%s shows %+v", p.nick, msg)
			}
		}
		if held(p) {
			t.Fatalf("%s still holds the refused payload", p.nick)
		}
	}
}
