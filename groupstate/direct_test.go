package groupstate

import (
	"bytes"
	"errors"
	"testing"

	"github.com/meshnode/meshnode/keymgmt"
)

func TestDirect(t *testing.T) {
	alice, bob, carol := newPerson(t, "alice"), newPerson(t, "bob"), newPerson(t, "carol")
	g, other := GroupID{1}, GroupID{2}
	text := []byte("for bob only")
	body, err := SealDirect(g, bob.id.Public(), alice.id.SigningKey(), text)
	if err != nil {
		t.Fatal(err)
	}
	to, err := DirectRecipient(body)
	if err != nil || !to.Equal(bob.id.SigningKey()) {
		t.Fatalf("recipient %x %v", to, err)
	}
	if got, err := OpenDirect(bob.id, g, alice.id.SigningKey(), body); err != nil || !bytes.Equal(got, text) {
		t.Fatalf("bob opens %q %v", got, err)
	}
	// The seal binds group, recipient and author.
	for name, open := range map[string]func() ([]byte, error){
		"another group":  func() ([]byte, error) { return OpenDirect(bob.id, other, alice.id.SigningKey(), body) },
		"another author": func() ([]byte, error) { return OpenDirect(bob.id, g, carol.id.SigningKey(), body) },
		"another member": func() ([]byte, error) { return OpenDirect(carol.id, g, alice.id.SigningKey(), body) },
		"readdressed": func() ([]byte, error) {
			b := append(append([]byte(nil), carol.id.SigningKey()...), body[32:]...)
			return OpenDirect(carol.id, g, alice.id.SigningKey(), b)
		},
		"tampered": func() ([]byte, error) {
			b := bytes.Clone(body)
			b[len(b)-1] ^= 1
			return OpenDirect(bob.id, g, alice.id.SigningKey(), b)
		},
	} {
		if got, err := open(); !errors.Is(err, keymgmt.ErrDecrypt) {
			t.Errorf("%s: %q %v, want ErrDecrypt", name, got, err)
		}
	}
	for _, n := range []int{0, 1, 31} {
		if _, err := DirectRecipient(body[:n]); !errors.Is(err, ErrDirectMalformed) {
			t.Errorf("body of %d bytes: %v", n, err)
		}
		if _, err := OpenDirect(bob.id, g, alice.id.SigningKey(), body[:n]); !errors.Is(err, ErrDirectMalformed) {
			t.Errorf("open a body of %d bytes: %v", n, err)
		}
	}
	if _, err := SealDirect(g, &keymgmt.PublicIdentity{}, alice.id.SigningKey(), text); !errors.Is(err, ErrDirectMalformed) {
		t.Errorf("seal to no one: %v", err)
	}
}

// FuzzOpenDirect: any body a member may send is an error or opens, never
// a panic.
func FuzzOpenDirect(f *testing.F) {
	alice, bob := newPerson(f, "alice"), newPerson(f, "bob")
	body, err := SealDirect(GroupID{1}, bob.id.Public(), alice.id.SigningKey(), []byte("hi"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(body)
	f.Add(body[:32])
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := DirectRecipient(b); err != nil {
			if !errors.Is(err, ErrDirectMalformed) {
				t.Fatalf("recipient: %v", err)
			}
			return
		}
		if _, err := OpenDirect(bob.id, GroupID{1}, alice.id.SigningKey(), b); err != nil && !errors.Is(err, keymgmt.ErrDecrypt) {
			t.Fatalf("open: %v", err)
		}
	})
}
