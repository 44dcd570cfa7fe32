package groupstate

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/keymgmt"
)

func TestSealOpenRoundTrip(t *testing.T) {
	g, k := testGroup(t)
	author := testAuthor(t)
	for _, n := range []int{0, 1, 400, 1024, 5000, 20000, MaxBodyLen(5, 2)} {
		p := signedText(t, g, author, strings.Repeat("x", n))
		env, err := SealMessage(k, p)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if env.Mailbox() != k.Mailbox {
			t.Fatal("envelope not in the epoch mailbox")
		}
		want, _ := bucketFor(p.encodedLen())
		if len(env.Ciphertext) != want+16 {
			t.Fatalf("%d-byte text: ciphertext %d bytes, want bucket %d + 16", n, len(env.Ciphertext), want)
		}
		// Decode from bytes as a receiver would.
		env2, err := envelope.Open(env.Bytes(), 0, &k.Mailbox)
		if err != nil {
			t.Fatal(err)
		}
		q, err := OpenMessage(k, g.ID, g.Epoch, env2)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if q.Seq != p.Seq || string(q.Body) != string(p.Body) || q.Author != p.Author || q.Signature != p.Signature {
			t.Fatal("payload changed in transit")
		}
	}
	// A read-only member opens too.
	ro, err := g.Secrets[g.Epoch].ReadOnly().Derive()
	if err != nil {
		t.Fatal(err)
	}
	env, _ := SealMessage(k, signedText(t, g, author, "hi"))
	if _, err := OpenMessage(ro, g.ID, g.Epoch, env); err != nil {
		t.Fatalf("read-only member: %v", err)
	}
	// Two seals of one payload differ (random nonce).
	p := signedText(t, g, author, "same")
	e1, _ := SealMessage(k, p)
	e2, _ := SealMessage(k, p)
	if bytes.Equal(e1.Nonce, e2.Nonce) || e1.ID() == e2.ID() {
		t.Fatal("nonce reused")
	}
}

func TestSealMessageRejects(t *testing.T) {
	g, k := testGroup(t)
	author := testAuthor(t)
	ro, _ := g.Secrets[g.Epoch].ReadOnly().Derive()
	long := textPayload(g, "")
	long.Body = make([]byte, MaxBodyLen(len(long.Nick), len(long.Parents))+1)
	forged := signedText(t, g, author, "hello")
	forged.Body = []byte("HELLO")
	tests := []struct {
		name string
		keys *keymgmt.EpochKeys
		p    *Payload
		want error
	}{
		{"read-only keys", ro, signedText(t, g, author, "hi"), ErrCannotWrite},
		{"nil keys", nil, signedText(t, g, author, "hi"), ErrCannotWrite},
		{"unsigned", k, textPayload(g, "hi"), ErrNotSigned},
		{"bad author signature", k, forged, ErrAuthorSignature},
		{"oversize text", k, long, ErrTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := SealMessage(tt.keys, tt.p); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// resign rebuilds an envelope from (possibly altered) parts, signing it with
// the write key, so the test reaches the checks after the write signature.
func resign(t *testing.T, k *keymgmt.EpochKeys, nonce, ct []byte) *envelope.Envelope {
	t.Helper()
	e, err := envelope.Seal(k.WritePriv, nonce, ct, 0)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 1
	return c
}

func TestOpenMessageRejects(t *testing.T) {
	g, k := testGroup(t)
	author := testAuthor(t)
	good, err := SealMessage(k, signedText(t, g, author, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	// Keys of another epoch (another mailbox).
	other, _ := keymgmt.NewEpochSecrets()
	ok, _ := other.Derive()
	// Same mailbox, another read key.
	wrongRead := *k
	rand.Read(wrongRead.ReadKey[:])

	// The ciphertext moved to another mailbox by a writer of that mailbox:
	// it verifies there, but the AAD binds the original WPub.
	moved, _ := envelope.Seal(ok.WritePriv, good.Nonce, good.Ciphertext, 0)
	movedKeys := *ok
	movedKeys.ReadKey = k.ReadKey

	// A payload of another group and of another epoch, sealed correctly in
	// this mailbox by a member of both.
	g2, _ := testGroup(t)
	wrongGroup, _ := SealMessage(k, signedText(t, g2, author, "elsewhere"))
	pEpoch := textPayload(g, "later")
	pEpoch.Epoch = 1
	if err := SignPayload(pEpoch, author); err != nil {
		t.Fatal(err)
	}
	wrongEpoch, _ := SealMessage(k, pEpoch)

	// Hostile plaintexts a writer could encrypt.
	signed := signedText(t, g, author, "hello")
	unsignedBytes := signed.marshal()
	clear(unsignedBytes[len(unsignedBytes)-64:])
	badSig := signed.marshal()
	badSig[len(badSig)-1] ^= 1
	kindBytes := signed.marshal()
	kindBytes[97+1+64+8] = 42
	nonZeroPad := padRaw(t, signed.marshal())
	nonZeroPad[len(nonZeroPad)-1] = 1
	bigBucket := make([]byte, 2048)
	copy(bigBucket, padRaw(t, signed.marshal())[:4+len(signed.marshal())])
	oddSize := append(padRaw(t, signed.marshal()), 0)

	tests := []struct {
		name  string
		keys  *keymgmt.EpochKeys
		group GroupID
		epoch uint64
		env   *envelope.Envelope
		want  error
	}{
		{"other epoch's mailbox", ok, g.ID, 0, good, ErrWrongMailbox},
		{"tampered ciphertext, unsigned", k, g.ID, 0, mustDecode(t, flip(good.Bytes(), envelope.HeaderSize+3)), ErrEnvelopeSignature},
		{"tampered ciphertext", k, g.ID, 0, resign(t, k, good.Nonce, flip(good.Ciphertext, 3)), ErrDecrypt},
		{"tampered tag", k, g.ID, 0, resign(t, k, good.Nonce, flip(good.Ciphertext, len(good.Ciphertext)-1)), ErrDecrypt},
		{"tampered nonce", k, g.ID, 0, resign(t, k, flip(good.Nonce, 0), good.Ciphertext), ErrDecrypt},
		{"tampered header (moved mailbox)", &movedKeys, g.ID, 0, moved, ErrDecrypt},
		{"wrong read key", &wrongRead, g.ID, 0, good, ErrDecrypt},
		{"truncated ciphertext", k, g.ID, 0, resign(t, k, good.Nonce, good.Ciphertext[:len(good.Ciphertext)-16]), ErrPadding},
		{"tiny ciphertext", k, g.ID, 0, resign(t, k, good.Nonce, good.Ciphertext[:5]), ErrPadding},
		{"wrong group", k, g.ID, 0, wrongGroup, ErrWrongGroup},
		{"wrong epoch", k, g.ID, 0, wrongEpoch, ErrWrongEpoch},
		{"expected other epoch", k, g.ID, 1, good, ErrWrongEpoch},
		{"unsigned payload", k, g.ID, 0, sealRaw(t, k, padRaw(t, unsignedBytes)), ErrNotSigned},
		{"bad author signature", k, g.ID, 0, sealRaw(t, k, padRaw(t, badSig)), ErrAuthorSignature},
		{"unknown kind", k, g.ID, 0, sealRaw(t, k, padRaw(t, kindBytes)), ErrUnknownKind},
		{"garbage payload", k, g.ID, 0, sealRaw(t, k, padRaw(t, []byte("not a payload"))), ErrPayloadMalformed},
		{"non-zero padding", k, g.ID, 0, sealRaw(t, k, nonZeroPad), ErrPadding},
		{"larger bucket than needed", k, g.ID, 0, sealRaw(t, k, bigBucket), ErrPadding},
		{"not a bucket size", k, g.ID, 0, sealRaw(t, k, oddSize), ErrPadding},
		{"nil envelope", k, g.ID, 0, nil, ErrDecrypt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := OpenMessage(tt.keys, tt.group, tt.epoch, tt.env)
			if !errors.Is(err, tt.want) || p != nil {
				t.Fatalf("got %v (payload %v), want %v", err, p != nil, tt.want)
			}
		})
	}
	// The good envelope still opens: nothing above altered it.
	if _, err := OpenMessage(k, g.ID, 0, good); err != nil {
		t.Fatal(err)
	}
}

func mustDecode(t *testing.T, b []byte) *envelope.Envelope {
	t.Helper()
	e, err := envelope.Decode(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func benchSetup(b *testing.B) (*Group, *keymgmt.EpochKeys, *Payload) {
	g, k := testGroup(b)
	p := textPayload(g, strings.Repeat("a", 1024))
	if err := SignPayload(p, testAuthor(b)); err != nil {
		b.Fatal(err)
	}
	return g, k, p
}

func BenchmarkSealMessage1KiB(b *testing.B) {
	_, k, p := benchSetup(b)
	b.SetBytes(int64(len(p.Body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SealMessage(k, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenMessage1KiB(b *testing.B) {
	g, k, p := benchSetup(b)
	env, err := SealMessage(k, p)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(p.Body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := OpenMessage(k, g.ID, g.Epoch, env); err != nil {
			b.Fatal(err)
		}
	}
}
