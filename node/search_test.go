package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
)

func searchTexts(t *testing.T, n *Node, q SearchQuery) []string {
	t.Helper()
	res, err := n.Search(q)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range res.Messages {
		out = append(out, m.Text)
	}
	return out
}

// Issue 18, item 4: search finds messages by word starts, in one group
// or all, newest first; an edited message by its new words only; a
// deleted one not at all; a query without a word is refused.
func TestSearch(t *testing.T) {
	leakCheck(t)
	alice := newPerson(t, "alice")
	alice.start()
	ctx := context.Background()
	g1, _, err := alice.n.CreateGroup(ctx, "club", nil)
	if err != nil {
		t.Fatal(err)
	}
	g2, _, err := alice.n.CreateGroup(ctx, "work", nil)
	if err != nil {
		t.Fatal(err)
	}
	send := func(g, text string) string {
		res, err := alice.n.Send(ctx, g, text)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // distinct sent times: the order is by time
		return res.ID
	}
	send(g1.ID, "Meeting on Tuesday at the café")
	typo := send(g1.ID, "the meetnig moved")
	gone := send(g1.ID, "secret meeting plans")
	send(g2.ID, "Team meeting notes")
	send(g2.ID, "nothing to see")
	if _, _, err := alice.n.Edit(ctx, typo, "the meeting moved to Wednesday"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := alice.n.Delete(ctx, gone); err != nil {
		t.Fatal(err)
	}
	if got := searchTexts(t, alice.n, SearchQuery{Text: "MEET"}); !slices.Equal(got, []string{"the meeting moved to Wednesday", "Team meeting notes", "Meeting on Tuesday at the café"}) &&
		!slices.Equal(got, []string{"Team meeting notes", "the meeting moved to Wednesday", "Meeting on Tuesday at the café"}) {
		t.Fatalf("meet in all groups: %q", got)
	}
	if got := searchTexts(t, alice.n, SearchQuery{Text: "meeting wed", Group: "club"}); !slices.Equal(got, []string{"the meeting moved to Wednesday"}) {
		t.Fatalf("two words in club: %q", got)
	}
	if got := searchTexts(t, alice.n, SearchQuery{Text: "meetnig"}); len(got) != 0 {
		t.Fatalf("the edited-away word: %q", got)
	}
	if got := searchTexts(t, alice.n, SearchQuery{Text: "secret"}); len(got) != 0 {
		t.Fatalf("a deleted message: %q", got)
	}
	if got := searchTexts(t, alice.n, SearchQuery{Text: "café"}); len(got) != 1 {
		t.Fatalf("a word with an accent: %q", got)
	}
	if _, err := alice.n.Search(SearchQuery{Text: "!! a"}); !errors.Is(err, ErrBadQuery) {
		t.Fatalf("a query without a word: %v", err)
	}
	// The deleted message's words are gone from the index itself.
	m := alice.n.member
	gid, _ := groupstate.ParseGroupID(g1.ID)
	n, err := m.db.count(gkey(pfxSearch, gid, []byte("secret")))
	if err != nil || n != 0 {
		t.Fatalf("%d index entries of a deleted message's word (%v)", n, err)
	}
	// An index built later (messages stored before it existed).
	err = m.db.db.Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: gkey(pfxSearch, gid), PrefetchValues: false})
		defer it.Close()
		var keys [][]byte
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := searchTexts(t, alice.n, SearchQuery{Text: "tuesday", Group: "club"}); len(got) != 1 {
		t.Fatalf("after re-indexing: %q", got)
	}
}

// BenchmarkSearch: a group of 100,000 messages (hello, then ten words
// of a vocabulary of 2,000; zebra in every 10,000th) in an encrypted
// member database on disk: a word in every message, one in 500, one in
// 10,000, and two words together. Issue 18 asks for results within
// 100 ms over 100,000 messages.
func BenchmarkSearch(b *testing.B) {
	id, err := keymgmt.NewIdentity(keymgmt.SuiteX25519)
	if err != nil {
		b.Fatal(err)
	}
	db, err := openMemberDB(filepath.Join(b.TempDir(), "member"), bytes.Repeat([]byte{7}, 32), false, 8<<20)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	m := &member{id: id, db: db, groups: map[groupstate.GroupID]*groupEntry{}}
	g := groupstate.GroupID{1}
	const total = 100_000
	vocab := make([]string, 2000)
	for i := range vocab {
		vocab[i] = fmt.Sprintf("w%03dword", i)
	}
	start := time.Now()
	for base := 0; base < total; base += 200 {
		err := db.db.Update(func(txn *badger.Txn) error {
			for i := base; i < base+200; i++ {
				text := "hello "
				for j := range 10 {
					text += vocab[(i*7+j*131)%len(vocab)] + " "
				}
				if i%10000 == 0 {
					text += "zebra"
				}
				var eid envelope.ID
				eid[0], eid[1], eid[2] = byte(i>>16), byte(i>>8), byte(i)
				msg := &Message{ID: eid.String(), Kind: "text", Text: text, Seq: uint64(i + 1), Sent: time.UnixMilli(int64(1e12 + i))}
				if err := markSeenTxn(txn, g, eid, int64(1e12+i), msg); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := db.db.Update(func(txn *badger.Txn) error { return txn.Set(gkey(pfxSearch, g, searchDoneMark), []byte{1}) }); err != nil {
		b.Fatal(err)
	}
	b.Logf("indexed %d messages in %v", total, time.Since(start))
	for _, q := range []string{"hello", "w042word", "zebra", "w042 w173", "hello zebra"} {
		b.Run(q, func(b *testing.B) {
			for b.Loop() {
				res := &SearchResult{}
				if _, err := m.searchGroup(g, words(q), 50, nil, res); err != nil {
					b.Fatal(err)
				}
				if len(res.Messages) == 0 {
					b.Fatal("nothing found")
				}
			}
		})
	}
}
