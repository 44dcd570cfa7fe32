package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
)

// BenchmarkProcessIncoming is a member processing a page of 256 text
// messages of another author from its own store (admission: sequence
// record, replay and equivocation check, order time; the message and
// dedupe records; one member-database transaction). ns/op is per page.
func BenchmarkProcessIncoming(b *testing.B) {
	id, err := keymgmt.NewIdentity(keymgmt.SuiteX25519)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	params := DefaultParams(RoleMember)
	params.ProcessInterval, params.CatchUpInterval = time.Hour, time.Hour
	n, err := New(context.Background(), params, WithLogger(quiet), WithDataDir(filepath.Join(dir, "data")),
		WithIdentity(id, "alice"), WithMemberDB(filepath.Join(dir, "member"), bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Close() })
	ctx := context.Background()
	info, _, err := n.CreateGroup(ctx, "bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	n.member.mu.Lock()
	e, err := n.member.resolve(info.ID)
	var keys *keymgmt.EpochKeys
	if err == nil {
		keys, err = e.keysFor(0)
	}
	gid := e.g.ID
	n.member.mu.Unlock()
	if err != nil {
		b.Fatal(err)
	}
	_, bob, _ := ed25519.GenerateKey(rand.Reader)
	seq := uint64(0)
	var parent envelope.ID
	page := func() []*envelope.Envelope {
		out := make([]*envelope.Envelope, 0, processPage)
		for range processPage {
			seq++
			p := &groupstate.Payload{GroupID: gid, Seq: seq, Sent: time.Now().UnixMilli(), Kind: groupstate.KindText,
				Nick: "bob", Body: []byte(fmt.Sprintf("message %d", seq)), Parents: []envelope.ID{parent}}
			if seq == 1 {
				p.Parents = nil
			}
			if err := groupstate.SignPayload(p, bob); err != nil {
				b.Fatal(err)
			}
			env, err := groupstate.SealMessage(keys, p)
			if err != nil {
				b.Fatal(err)
			}
			parent = env.ID()
			out = append(out, env)
		}
		return out
	}
	n.processAll()
	for b.Loop() {
		b.StopTimer()
		for _, env := range page() {
			if _, err := n.Deliver(ctx, env, n.ID()); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		n.processAll()
	}
	b.StopTimer()
	if msgs, _ := n.Messages(info.ID, 0); len(msgs) < int(seq) {
		b.Fatalf("%d messages shown of %d", len(msgs), seq)
	}
}
