package groupstate

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/keymgmt"
	"golang.org/x/crypto/chacha20poly1305"
)

// testGroup returns a fresh group and its current keys.
func testGroup(t testing.TB) (*Group, *keymgmt.EpochKeys) {
	t.Helper()
	g, err := NewGroup("test group", []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWtest"})
	if err != nil {
		t.Fatal(err)
	}
	k, err := g.CurrentKeys()
	if err != nil {
		t.Fatal(err)
	}
	return g, k
}

// testAuthor returns a fresh Ed25519 identity key.
func testAuthor(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// textPayload returns an unsigned text payload for g's current epoch.
func textPayload(g *Group, text string) *Payload {
	return &Payload{
		GroupID: g.ID,
		Epoch:   g.Epoch,
		Seq:     1,
		Parents: []envelope.ID{{1}, {2}},
		Sent:    1700000000000,
		Kind:    KindText,
		Nick:    "alice",
		Body:    []byte(text),
	}
}

// signedText returns a signed text payload.
func signedText(t testing.TB, g *Group, author ed25519.PrivateKey, text string) *Payload {
	t.Helper()
	p := textPayload(g, text)
	if err := SignPayload(p, author); err != nil {
		t.Fatal(err)
	}
	return p
}

// sealRaw encrypts an arbitrary padded plaintext the way SealMessage does
// but without any of its checks, to build hostile envelopes.
func sealRaw(t testing.TB, keys *keymgmt.EpochKeys, padded []byte) *envelope.Envelope {
	t.Helper()
	aead, err := chacha20poly1305.NewX(keys.ReadKey[:])
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	rand.Read(nonce)
	ct := aead.Seal(nil, nonce, padded, envelope.HeaderAAD(keys.WritePub, nonce, len(padded)+aead.Overhead()))
	env, err := envelope.Seal(keys.WritePriv, nonce, ct, 0)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// padRaw pads without the length check, for hostile plaintexts.
func padRaw(t testing.TB, payload []byte) []byte {
	t.Helper()
	b, err := pad(payload, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
