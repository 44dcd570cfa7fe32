package keymgmt

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

func TestWrapUnwrapRoundTrip(t *testing.T) {
	s, err := NewEpochSecrets()
	if err != nil {
		t.Fatal(err)
	}
	scope, info := []byte("group|epoch"), []byte("group|epoch|head")
	// 150 recipients so the parallel path runs with more than one worker
	// where GOMAXPROCS allows; a post-quantum and a read-only member too.
	var ids []*Identity
	var rs []RotationRecipient
	for i := range 150 {
		suite := SuiteX25519
		if i == 7 {
			suite = SuitePQ
		}
		id := newID(t, suite)
		ids = append(ids, id)
		rs = append(rs, RotationRecipient{Identity: id.Public(), ReadOnly: i%5 == 0})
	}
	wrapped, err := WrapEpochSecrets(s, rs, scope, info)
	if err != nil {
		t.Fatal(err)
	}
	if len(wrapped) != len(rs) {
		t.Fatalf("%d wrapped copies for %d recipients", len(wrapped), len(rs))
	}
	if !slices.IsSortedFunc(wrapped, CompareWrapped) {
		t.Fatal("wrapped copies are not in canonical order")
	}
	for i, id := range ids {
		got, err := id.UnwrapEpochSecrets(wrapped, scope, info)
		if err != nil {
			t.Fatalf("recipient %d: %v", i, err)
		}
		readOnly := i%5 == 0
		if got.Read != s.Read || !bytes.Equal(got.WPub, s.WPub) || (got.Write == nil) != readOnly {
			t.Fatalf("recipient %d (read-only %v) got wrong secrets (write present: %v)", i, readOnly, got.Write != nil)
		}
		if !readOnly && *got.Write != *s.Write {
			t.Fatalf("recipient %d got a wrong write secret", i)
		}
		w := wrapped[slices.IndexFunc(wrapped, func(w WrappedSecrets) bool { return w.Slot == RecipientSlot(scope, id.pub.SignPub) })]
		if len(w.Sealed) != WrappedSecretsSize(id.Suite(), readOnly) {
			t.Fatalf("recipient %d: sealed %d bytes, WrappedSecretsSize says %d", i, len(w.Sealed), WrappedSecretsSize(id.Suite(), readOnly))
		}
	}
}

func TestUnwrapRejects(t *testing.T) {
	s, _ := NewEpochSecrets()
	alice, bob := newID(t, SuiteX25519), newID(t, SuiteX25519)
	scope, info := []byte("scope"), []byte("info")
	wrapped, err := WrapEpochSecrets(s, []RotationRecipient{{Identity: alice.Public()}}, scope, info)
	if err != nil {
		t.Fatal(err)
	}
	tampered := slices.Clone(wrapped)
	tampered[0].Sealed = slices.Clone(tampered[0].Sealed)
	tampered[0].Sealed[40] ^= 1
	// Bob's copy moved into Alice's slot: it is sealed to Bob, so it does
	// not open for Alice.
	forBob, _ := WrapEpochSecrets(s, []RotationRecipient{{Identity: bob.Public()}}, scope, info)
	moved := []WrappedSecrets{{Slot: wrapped[0].Slot, Sealed: forBob[0].Sealed}}
	tests := []struct {
		name    string
		id      *Identity
		wrapped []WrappedSecrets
		scope   []byte
		info    []byte
		want    error
	}{
		{"not a recipient", bob, wrapped, scope, info, ErrNotRecipient},
		{"other scope", alice, wrapped, []byte("scopf"), info, ErrNotRecipient},
		{"empty list", alice, nil, scope, info, ErrNotRecipient},
		{"other info", alice, wrapped, scope, []byte("infp"), ErrDecrypt},
		{"tampered", alice, tampered, scope, info, ErrDecrypt},
		{"copy for another member", alice, moved, scope, info, ErrDecrypt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.id.UnwrapEpochSecrets(tc.wrapped, tc.scope, tc.info)
			if !errors.Is(err, tc.want) || got != nil {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	// A wrapped copy never opens as a SealEpochSecrets blob or vice versa.
	if _, err := alice.OpenEpochSecrets(append(slices.Clone(info), alice.pub.SignPub...), wrapped[0].Sealed); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("wrapped copy opened as SealEpochSecrets: %v", err)
	}
}

func TestUnwrapSlotCollision(t *testing.T) {
	// Two entries share Alice's slot (a collision, or a decoy); the one
	// that opens wins.
	s, _ := NewEpochSecrets()
	alice, bob := newID(t, SuiteX25519), newID(t, SuiteX25519)
	scope, info := []byte("scope"), []byte("info")
	mine, _ := WrapEpochSecrets(s, []RotationRecipient{{Identity: alice.Public()}}, scope, info)
	other, _ := WrapEpochSecrets(s, []RotationRecipient{{Identity: bob.Public()}}, scope, info)
	list := []WrappedSecrets{{Slot: mine[0].Slot, Sealed: other[0].Sealed}, mine[0]}
	got, err := alice.UnwrapEpochSecrets(list, scope, info)
	if err != nil || got.Read != s.Read {
		t.Fatalf("collision: %v", err)
	}
}

func TestWrapRejects(t *testing.T) {
	s, _ := NewEpochSecrets()
	alice := newID(t, SuiteX25519)
	bad := alice.Public()
	bad.HPKEPub = bad.HPKEPub[:5]
	tests := []struct {
		name string
		s    *EpochSecrets
		rs   []RotationRecipient
		want error
	}{
		{"nil secrets", nil, []RotationRecipient{{Identity: alice.Public()}}, ErrInvalidKey},
		{"nil identity", s, []RotationRecipient{{}}, ErrInvalidParams},
		{"bad identity", s, []RotationRecipient{{Identity: bad}}, ErrInvalidKey},
		{"duplicate", s, []RotationRecipient{{Identity: alice.Public()}, {Identity: alice.Public(), ReadOnly: true}}, ErrInvalidParams},
		{"writer from read-only secrets", s.ReadOnly(), []RotationRecipient{{Identity: alice.Public()}}, ErrInvalidKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := WrapEpochSecrets(tc.s, tc.rs, nil, nil)
			if !errors.Is(err, tc.want) || got != nil {
				t.Fatalf("got %d copies, %v; want %v", len(got), err, tc.want)
			}
		})
	}
	// Read-only secrets can still be wrapped for read-only members.
	if _, err := WrapEpochSecrets(s.ReadOnly(), []RotationRecipient{{Identity: alice.Public(), ReadOnly: true}}, nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestRecipientSlotScope(t *testing.T) {
	alice := newID(t, SuiteX25519)
	a := RecipientSlot([]byte("g|1"), alice.pub.SignPub)
	if a != RecipientSlot([]byte("g|1"), alice.pub.SignPub) {
		t.Fatal("slot is not deterministic")
	}
	if a == RecipientSlot([]byte("g|2"), alice.pub.SignPub) {
		t.Fatal("slot does not depend on the scope")
	}
	// The scope length is encoded, so moving a byte between scope and key
	// changes the slot.
	k := alice.pub.SignPub
	if RecipientSlot([]byte("ab"), k) == RecipientSlot([]byte("a"), append([]byte("b"), k...)) {
		t.Fatal("scope and key boundary is ambiguous")
	}
}
