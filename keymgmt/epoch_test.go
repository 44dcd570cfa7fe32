package keymgmt

import (
	"crypto/ed25519"
	"errors"
	"testing"
)

func TestEpochDerive(t *testing.T) {
	s, err := NewEpochSecrets()
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Derive()
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.ReadOnly().Derive()
	if err != nil {
		t.Fatal(err)
	}
	if !w.CanWrite() || r.CanWrite() {
		t.Fatal("write capability wrong")
	}
	if w.ReadKey != r.ReadKey || w.Mailbox != r.Mailbox || !w.WritePub.Equal(r.WritePub) {
		t.Fatal("reader and writer disagree")
	}
	if w.ReadKey == *s.Write || w.ReadKey == s.Read {
		t.Fatal("derived key equals a secret")
	}
	s2, _ := NewEpochSecrets()
	k2, _ := s2.Derive()
	if k2.Mailbox == w.Mailbox || k2.ReadKey == w.ReadKey {
		t.Fatal("two epochs share keys")
	}
	// A WPub that does not match the write secret is refused.
	bad := *s
	bad.WPub = k2.WritePub
	if _, err := bad.Derive(); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("mismatched WPub: %v", err)
	}
	if _, err := (&EpochSecrets{WPub: ed25519.PublicKey{1, 2}}).Derive(); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("short WPub: %v", err)
	}
}
