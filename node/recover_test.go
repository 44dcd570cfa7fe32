package node

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/keymgmt"
)

// A node that crashed after storing its own envelope and before recording
// it gets the envelope back in its first pass after the restart; a send
// made right after the restart waits for that pass instead of taking the
// envelope's sequence number again (which would make the stored message a
// "replay" and lose it).
func TestSendAfterCrashWaitsForRecovery(t *testing.T) {
	leakCheck(t)
	alice := newPerson(t, "alice")
	alice.start()
	ctx := context.Background()
	info, _, err := alice.n.CreateGroup(ctx, "notes", nil)
	if err != nil {
		t.Fatal(err)
	}
	// What Send leaves behind when the node dies between storing the
	// envelope and recording it: the envelope in the own store only.
	m := alice.n.member
	m.mu.Lock()
	e := entry(t, alice, info.ID)
	p, err := m.buildPayload(e, groupstate.KindText, []byte("stored before the crash"), time.Now())
	var env *envelope.Envelope
	if err == nil {
		var keys *keymgmt.EpochKeys
		if keys, err = e.keysFor(e.g.Epoch); err == nil {
			env, err = groupstate.SealMessage(keys, p)
		}
	}
	m.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.n.Store().Put(ctx, env); err != nil {
		t.Fatal(err)
	}
	alice.stop()

	alice.start()
	if _, err := alice.n.Send(ctx, info.ID, "sent after the restart"); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 10*time.Second, func() bool {
		txts := texts(t, alice.n, info.ID)
		return contains(txts, "stored before the crash") && contains(txts, "sent after the restart")
	}, "alice shows both messages")
	msgs, err := alice.n.Messages(info.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	seqs := map[uint64]string{}
	for _, msg := range msgs {
		if prev, dup := seqs[msg.Seq]; dup {
			t.Fatalf("%q and %q share sequence %d", prev, msg.Text, msg.Seq)
		}
		seqs[msg.Seq] = msg.Text
	}
}

// BenchmarkProcessAllIdle is one processing pass of a member in 10 groups
// with nothing new: the member loop does one every ProcessInterval.
func BenchmarkProcessAllIdle(b *testing.B) {
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
	for g := range 10 {
		info, _, err := n.CreateGroup(ctx, fmt.Sprintf("g%d", g), nil)
		if err != nil {
			b.Fatal(err)
		}
		for i := range 20 {
			if _, err := n.Send(ctx, info.ID, fmt.Sprintf("message %d", i)); err != nil {
				b.Fatal(err)
			}
		}
	}
	n.processAll()
	for b.Loop() {
		n.processAll()
	}
}
