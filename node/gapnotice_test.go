package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	tu "github.com/meshnode/meshnode/internal/testutil"
)

// A gap notice is resolved when its messages turn up after it was written:
// filled in part, it says what is still missing; filled, it goes.
func TestGapNoticeResolvedWhenFilled(t *testing.T) {
	leakCheck(t)
	host := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen})
	alice, bob := newPerson(t, "alice"), newPerson(t, "bob")
	alice.start()
	ctx := context.Background()
	_, invite, err := alice.n.CreateGroup(ctx, "g", []string{hostAddr(host)})
	if err != nil {
		t.Fatal(err)
	}
	inv, _ := groupstate.ParseInvite(invite)
	g := inv.Group()
	keys, _ := g.Keys(g.Epoch)
	ms := openMembership(t, alice, g.ID.String())
	alice.stop()
	// Alice's profile was her message 1; her messages 2 to 6 are sealed
	// now and reach the host one after another, 3 to 5 late.
	envs := map[uint64]*envelope.Envelope{}
	for seq := uint64(2); seq <= 6; seq++ {
		p := &groupstate.Payload{GroupID: g.ID, Epoch: g.Epoch, Seq: seq, Sent: time.Now().UnixMilli(), Kind: groupstate.KindText,
			Nick: "alice", Body: []byte(fmt.Sprint("m", seq))}
		p.StateHead = ms // her membership: what her node would write
		if err := groupstate.SignPayloadAs(p, alice.id); err != nil {
			t.Fatal(err)
		}
		if envs[seq], err = groupstate.SealMessage(keys, p); err != nil {
			t.Fatal(err)
		}
	}
	relay := func(seqs ...uint64) {
		t.Helper()
		for _, s := range seqs {
			if err := host.RelayMessageToGroup(ctx, keys.Mailbox, envs[s]); err != nil {
				t.Fatal(err)
			}
		}
	}
	notices := func() []string {
		msgs, err := bob.n.Messages("g", 0)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range msgs {
			if m.Kind == KindGap {
				out = append(out, m.Text)
			}
		}
		return out
	}
	relay(2, 6)
	bob.start()
	if _, err := bob.n.JoinGroup(ctx, invite, ""); err != nil {
		t.Fatal(err)
	}
	res, err := bob.n.CatchUp(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Gaps) != 1 || res.Gaps[0].First != 3 || res.Gaps[0].Last != 5 {
		t.Fatalf("gaps %+v, want alice's 3-5", res.Gaps)
	}
	if n := notices(); len(n) != 1 || !strings.Contains(n[0], "3 message(s)") {
		t.Fatalf("notices %q", n)
	}

	// Message 4 turns up: the notice now says 3 and 5.
	relay(4)
	tu.Eventually(t, 20*time.Second, func() bool {
		n := notices()
		return len(n) == 1 && strings.Contains(n[0], "2 message(s)") && strings.Contains(n[0], "numbers 3, 5")
	}, "the notice to name the two still missing (it says %q)", notices())

	// 3 and 5 turn up: no notice is left, and no gap.
	relay(3, 5)
	waitTexts(t, bob.n, "g", 5)
	tu.Eventually(t, 20*time.Second, func() bool { return len(notices()) == 0 }, "the filled gap's notice to go (left: %q)", notices())
	if res, err := bob.n.CatchUp(ctx, "g"); err != nil || len(res.Gaps) != 0 || len(notices()) != 0 {
		t.Fatalf("after the gap filled: gaps %+v, notices %q, %v", res.Gaps, notices(), err)
	}
	// The records of the notice went with it.
	var left int
	bob.n.member.db.scan(gkey(pfxNotice, g.ID), func(_, _ []byte) error { left++; return nil })
	if left != 0 {
		t.Fatalf("%d notice records left", left)
	}
}

func FuzzNoticeRecord(f *testing.F) {
	var g groupstate.GroupID
	f.Add(encodeNoticeRec(5, 3, messageKey(g, 1, 3, envelope.ID{})))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		last, missing, mk, err := decodeNoticeRec(g, b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if string(encodeNoticeRec(last, missing, mk)) != string(b) {
			t.Fatal("re-encoding differs")
		}
	})
}
