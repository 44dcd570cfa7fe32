package contacts

import (
	"errors"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/keymgmt"
)

func testStore(t *testing.T) *Store {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return NewStore(db)
}

func testSecret(t *testing.T, name string, bits uint8) SecretRec {
	t.Helper()
	pkg, sec, err := keymgmt.NewConnPackage(keymgmt.NameAlias, nil, keymgmt.SuiteX25519, [32]byte{1}, bits, time.Now(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := sec.MarshalPrivate()
	if err != nil {
		t.Fatal(err)
	}
	return SecretRec{Kind: keymgmt.NameAlias, Name: name, Secret: priv, Mailbox: pkg.Mailbox().String(), ProofBits: bits}
}

func secretBits(t *testing.T, s *Store) map[string][]uint8 {
	t.Helper()
	out := map[string][]uint8{}
	err := s.scan(Key(KeySecret), func(_, v []byte) error {
		sr, _, err := DecodeSecretRec(v)
		if err != nil {
			return err
		}
		out[sr.Name] = append(out[sr.Name], sr.ProofBits)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestStore: the records round-trip through their namespace; raising a
// name's proof of work touches its weaker secrets only; deleting a name
// takes its secrets with it.
func TestStore(t *testing.T) {
	s := testStore(t)
	if rec, err := s.Name("bob-1"); rec != nil || err != nil {
		t.Fatalf("no name yet: %v %v", rec, err)
	}
	bob := &NameRec{Kind: keymgmt.NameAlias, Name: "bob-1", Created: time.Now().UTC()}
	carol := &NameRec{Kind: keymgmt.NameAlias, Name: "carol-1", Created: time.Now().UTC()}
	for _, r := range []*NameRec{bob, carol} {
		if err := s.PutName(r); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.Name("bob-1"); err != nil || got.Name != "bob-1" {
		t.Fatalf("name: %+v %v", got, err)
	}
	if all, err := s.Names(); err != nil || len(all) != 2 {
		t.Fatalf("names: %d %v", len(all), err)
	}

	if err := s.PutSecrets([]SecretRec{testSecret(t, "bob-1", 0), testSecret(t, "bob-1", 12), testSecret(t, "carol-1", 0)}); err != nil {
		t.Fatal(err)
	}
	if err := s.RaiseProofBits(bob, 8); err != nil {
		t.Fatal(err)
	}
	got := secretBits(t, s)
	if len(got["bob-1"]) != 2 || got["bob-1"][0]+got["bob-1"][1] != 20 || got["carol-1"][0] != 0 {
		t.Fatalf("after raising bob's to 8: %v", got)
	}
	if err := s.DeleteName(bob); err != nil {
		t.Fatal(err)
	}
	if got := secretBits(t, s); len(got["bob-1"]) != 0 || len(got["carol-1"]) != 1 {
		t.Fatalf("after deleting bob's name: %v", got)
	}
	if rec, _ := s.Name("bob-1"); rec != nil {
		t.Fatal("bob's name kept")
	}

	gid := testGroupID(3)
	if s.IsContactGroup(gid) {
		t.Fatal("a contact before any")
	}
	if err := s.PutContact(&ContactRec{Group: gid.String(), Via: "bob-1"}); err != nil {
		t.Fatal(err)
	}
	if cs, err := s.Contacts(); err != nil || len(cs) != 1 || !s.IsContactGroup(gid) {
		t.Fatalf("contacts: %v %v", cs, err)
	}
	if err := s.PutContact(&ContactRec{Group: "nope"}); err == nil {
		t.Fatal("a contact without a group ID written")
	}

	if _, err := s.Request("abc"); !errors.Is(err, ErrUnknownRequest) {
		t.Fatalf("unknown request: %v", err)
	}
	if rs, err := s.Requests(); err != nil || len(rs) != 0 {
		t.Fatalf("requests: %v %v", rs, err)
	}

	now := time.Now().UTC()
	for i, id := range []string{"bbbbbbbbbbbbbbbb", "aaaaaaaaaaaaaaaa"} {
		rec := &PendingAddRec{ID: id, Group: gid.String(), Contact: gid.String(), Role: "read", Queued: now.Add(time.Duration(i) * time.Second)}
		if err := s.PutQueuedAdd(rec); err != nil {
			t.Fatal(err)
		}
	}
	adds, err := s.QueuedAdds()
	if err != nil || len(adds) != 2 || adds[0].ID != "bbbbbbbbbbbbbbbb" {
		t.Fatalf("queued adds, oldest first: %+v %v", adds, err)
	}
	if err := s.DeleteQueuedAdd("bbbbbbbbbbbbbbbb"); err != nil {
		t.Fatal(err)
	}
	if adds, _ := s.QueuedAdds(); len(adds) != 1 {
		t.Fatalf("after a delete: %+v", adds)
	}
}

// TestStorePrune: old requests and the cursors of dead mailboxes go;
// recent requests and live cursors stay.
func TestStorePrune(t *testing.T) {
	s := testStore(t)
	now := time.Now()
	age := time.Hour
	for id, received := range map[string]time.Time{"old": now.Add(-2 * age), "new": now.Add(-age / 2)} {
		if err := s.putJSON(Key(KeyRequest, []byte(id)), &RequestRec{ID: id, Received: received}); err != nil {
			t.Fatal(err)
		}
	}
	for _, mb := range []string{"live", "dead"} {
		if err := s.PutCursor("host", mb, []byte("c-"+mb)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Prune(now, age, map[string]bool{"live": true}); err != nil {
		t.Fatal(err)
	}
	if rs, err := s.Requests(); err != nil || len(rs) != 1 || rs[0].ID != "new" {
		t.Fatalf("requests after pruning: %+v %v", rs, err)
	}
	if c, err := s.Cursor("host", "live"); err != nil || string(c) != "c-live" {
		t.Fatalf("live cursor: %q %v", c, err)
	}
	if c, err := s.Cursor("host", "dead"); err != nil || c != nil {
		t.Fatalf("dead cursor kept: %q %v", c, err)
	}
}
