package hostsync

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/meshnode/meshnode/envelope"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/reconcile"
	"github.com/meshnode/meshnode/store"
)

// StoreSet and Snapshot hold the same IDs (live and tombstoned) and give
// the same fingerprints and ranges for any bounds.
func TestStoreSetMatchesSnapshot(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	st := newStore(t, store.WithClock(clock.now))
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	put(t, st, seal(t, k, 60, 200)...)
	clock.advance(2 * time.Hour)
	put(t, st, seal(t, k, 140, 200)...)
	if err := st.SetPolicy(m, store.MailboxPolicy{MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if n, err := st.EnforceRetention(context.Background()); err != nil || n != 60 {
		t.Fatalf("retention removed %d (%v), want 60", n, err)
	}
	all, _ := ids(t, st, m)
	snap, err := Snapshot(st, m)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Len() != 200 || len(all) != 200 {
		t.Fatalf("snapshot holds %d, store knows %d; want 200 with tombstones", snap.Len(), len(all))
	}
	ss := NewStoreSet(st, m)
	bounds := []reconcile.Bound{reconcile.Lowest(), reconcile.Infinity()}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		bounds = append(bounds, reconcile.BoundOf(all[r.IntN(len(all))]))
	}
	for _, lo := range bounds {
		for _, hi := range bounds {
			f1, n1, err1 := ss.Fingerprint(lo, hi)
			f2, n2, err2 := snap.Fingerprint(lo, hi)
			if err1 != nil || err2 != nil || f1 != f2 || n1 != n2 {
				t.Fatalf("[%v, %v): store %d IDs, snapshot %d (%v, %v)", lo, hi, n1, n2, err1, err2)
			}
			var got []envelope.ID
			if err := ss.Range(lo, hi, func(id envelope.ID) bool { got = append(got, id); return len(got) < 7 }); err != nil {
				t.Fatal(err)
			}
			if len(got) != min(n2, 7) {
				t.Fatalf("[%v, %v): Range gave %d IDs, want %d", lo, hi, len(got), min(n2, 7))
			}
		}
	}
}

// The cache serves the same snapshot while the mailbox is unchanged, a
// new one after a Put, and reads a mailbox over its limit from the store.
func TestSetCache(t *testing.T) {
	st := newStore(t)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	put(t, st, seal(t, k, 10, 200)...)
	c := newSetCache(st, 15)
	s1, err := c.get(m)
	if err != nil {
		t.Fatal(err)
	}
	if s2, _ := c.get(m); s2 != s1 {
		t.Fatal("unchanged mailbox: snapshot rebuilt")
	}
	put(t, st, seal(t, k, 3, 200)...)
	s3, _ := c.get(m)
	if s3 == s1 || s3.(*reconcile.MemSet).Len() != 13 {
		t.Fatal("snapshot not refreshed after a Put")
	}
	put(t, st, seal(t, k, 3, 200)...)
	if s4, _ := c.get(m); s4 != NewStoreSet(st, m) {
		t.Fatalf("mailbox over the cache limit got %T, want a StoreSet", s4)
	}
}
