// Package testutil holds helpers shared by meshnode's tests.
package testutil

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/meshnode/meshnode/envelope"
)

// Eventually polls cond every 10 ms until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, what string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: "+what, append([]any{timeout}, args...)...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WriteKey returns a fresh epoch write key.
func WriteKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Mailbox returns the mailbox of a write key.
func Mailbox(k ed25519.PrivateKey) envelope.MailboxID {
	return envelope.MailboxFor(k.Public().(ed25519.PublicKey))
}

// Envelope seals size bytes of random "ciphertext" under k.
func Envelope(t testing.TB, k ed25519.PrivateKey, size int) *envelope.Envelope {
	t.Helper()
	nonce := make([]byte, envelope.NonceSize)
	rand.Read(nonce)
	ct := make([]byte, size)
	rand.Read(ct)
	e, err := envelope.Seal(k, nonce, ct, 0)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
