package contacts

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
)

// testGroupID is a fixed, valid group ID.
func testGroupID(b byte) groupstate.GroupID {
	var g groupstate.GroupID
	for i := range g {
		g[i] = b
	}
	return g
}

func testContactRecords(t testing.TB) map[string][]byte {
	t.Helper()
	gid := testGroupID(1)
	pkg, sec, err := keymgmt.NewConnPackage(keymgmt.NameAlias, nil, keymgmt.SuiteX25519, [32]byte{1}, 0, time.Now(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := sec.MarshalPrivate()
	if err != nil {
		t.Fatal(err)
	}
	enc := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return map[string][]byte{
		"name": enc(&NameRec{Kind: keymgmt.NameAlias, Name: "bob-1", Mailboxes: []MailboxRec{{Seed: make([]byte, 32)}}, ProofBits: 16}),
		"secret": enc(&SecretRec{Kind: keymgmt.NameAlias, Name: "bob-1", Secret: priv, Mailbox: pkg.Mailbox().String(),
			Created: pkg.Created, Expires: pkg.Expires, ProofBits: 8}),
		"request": enc(&RequestRec{ID: "abc", Nick: "alice"}),
		"contact": enc(&ContactRec{Group: gid.String(), Via: "bob-1"}),
		"offer":   enc(&OfferRec{Hash: "00", Replaced: []ReplacedOffer{{Hash: "01"}}}),
		"add":     enc(&PendingAddRec{ID: "0011223344556677", Group: gid.String(), Contact: gid.String(), Role: "write"}),
	}
}

// decodeContactRecord runs the decoder of kind.
func decodeContactRecord(kind string, b []byte) error {
	var err error
	switch kind {
	case "name":
		_, err = DecodeNameRec(b)
	case "secret":
		_, _, err = DecodeSecretRec(b)
	case "request":
		_, err = DecodeRequestRec(b)
	case "contact":
		_, err = DecodeContactRec(b)
	case "offer":
		_, err = DecodeOfferRec(b)
	case "add":
		_, err = DecodePendingAdd(b)
	}
	return err
}

// TestContactRecordRejects: every decoder of the contact records accepts
// its valid record and returns ErrCorrupt for damaged ones.
func TestContactRecordRejects(t *testing.T) {
	good := testContactRecords(t)
	for kind, b := range good {
		if err := decodeContactRecord(kind, b); err != nil {
			t.Fatalf("valid %s record: %v", kind, err)
		}
	}
	for _, tc := range []struct{ kind, rec string }{
		{"name", `{`},
		{"name", `{"kind":3,"name":"bob-1"}`},
		{"name", `{"kind":1,"name":"Bob"}`},
		{"name", `{"kind":1,"name":"x"}`},
		{"name", `{"kind":2,"name":"bob-1"}`},
		{"name", `{"kind":1,"name":"bob-1","proof_bits":33}`},
		{"name", `{"kind":1,"name":"bob-1","mailboxes":[{"seed":"AAAA"}]}`},
		{"name", `{"kind":1,"name":"bob-1","hosts":["/ip4/1.2.3.4/tcp/1"]}`},
		{"secret", `{"kind":1,"name":"bob-1"}`},
		{"secret", `{"secret":"AQ=="}`},
		{"request", `[]`},
		{"request", `{"nick":"x"}`},
		{"contact", `{"group":"nope"}`},
		{"offer", `{"replaced":[{},{},{},{},{}]}`},
		{"add", `{"id":"0011223344556677","group":"x"}`},
		{"add", `{"id":"00","group":"` + testGroupID(2).String() + `","contact":"` + testGroupID(2).String() + `","role":"write"}`},
		{"add", `{"id":"0011223344556677","group":"` + testGroupID(2).String() + `","contact":"` + testGroupID(2).String() + `","role":"boss"}`},
	} {
		if err := decodeContactRecord(tc.kind, []byte(tc.rec)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s %s: %v, want ErrCorrupt", tc.kind, tc.rec, err)
		}
	}
}

// FuzzContactRecords feeds arbitrary bytes to every decoder of the
// contact records: a value or ErrCorrupt, never a panic.
func FuzzContactRecords(f *testing.F) {
	for _, b := range testContactRecords(f) {
		f.Add(b)
	}
	f.Add([]byte("null"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, kind := range []string{"name", "secret", "request", "contact", "offer", "add"} {
			if err := decodeContactRecord(kind, b); err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s: %v is not ErrCorrupt", kind, err)
			}
		}
		if rec, err := DecodeNameRec(b); err == nil {
			for _, mb := range rec.Mailboxes {
				_ = keymgmt.RequestMailbox(mb.MailboxSeed())
			}
		}
	})
}
