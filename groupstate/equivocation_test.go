package groupstate

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestEquivocationEvidence(t *testing.T) {
	g, keys := testGroup(t)
	alice, bob := testAuthor(t), testAuthor(t)
	a := signedText(t, g, alice, "to bob")
	b := signedText(t, g, alice, "to carol")
	e, err := NewEquivocation(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if e.Author() != a.Author || e.Seq() != 1 {
		t.Fatal("author or seq")
	}
	enc, err := MarshalEquivocation(e)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseEquivocation(enc)
	if err != nil {
		t.Fatal(err)
	}
	if back.A.Digest() != e.A.Digest() || back.B.Digest() != e.B.Digest() {
		t.Fatal("round trip changed the evidence")
	}
	// Either order makes the same evidence.
	e2, err := NewEquivocation(b, a)
	if err != nil {
		t.Fatal(err)
	}
	enc2, _ := MarshalEquivocation(e2)
	if !bytes.Equal(enc, enc2) {
		t.Fatal("two encodings of one pair")
	}

	// Forged evidence accuses no one.
	resealed := *a // the same message (in another envelope: another nonce and padding)
	forgedSig := signedText(t, g, alice, "forged")
	forgedSig.Signature[3] ^= 1
	otherSeq := signedText(t, g, alice, "seq 2")
	otherSeq.Seq = 2
	if err := SignPayload(otherSeq, alice); err != nil {
		t.Fatal(err)
	}
	otherAuthor := signedText(t, g, bob, "bob")
	g2, _ := testGroup(t)
	otherGroup := signedText(t, g2, alice, "elsewhere")
	for name, pair := range map[string][2]*Payload{
		"the same message twice": {a, &resealed},
		"a bad signature":        {a, forgedSig},
		"two sequence numbers":   {a, otherSeq},
		"two authors":            {a, otherAuthor},
		"two groups":             {a, otherGroup},
	} {
		if _, err := NewEquivocation(pair[0], pair[1]); !errors.Is(err, ErrEquivocationMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The same message sealed twice: two envelopes, one digest.
	env1, err := SealMessage(keys, a)
	if err != nil {
		t.Fatal(err)
	}
	env2, err := SealMessage(keys, a)
	if err != nil {
		t.Fatal(err)
	}
	p1, err1 := OpenMessage(keys, g.ID, g.Epoch, env1)
	p2, err2 := OpenMessage(keys, g.ID, g.Epoch, env2)
	if err1 != nil || err2 != nil || env1.ID() == env2.ID() || p1.Digest() != p2.Digest() {
		t.Fatalf("re-sealed copies: %v %v", err1, err2)
	}
	// Evidence bytes with a flipped signature bit do not parse.
	bad := bytes.Clone(enc)
	bad[len(bad)-1] ^= 1
	if _, err := ParseEquivocation(bad); !errors.Is(err, ErrEquivocationMalformed) {
		t.Fatalf("tampered evidence: %v", err)
	}
	if _, err := ParseEquivocation(enc[:len(enc)-1]); err == nil {
		t.Fatal("truncated evidence parsed")
	}
}

// In a managed group two payloads with one number of a member who left
// and was added again belong to two memberships: no evidence.
func TestEquivocationMemberships(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	bob := newPerson(t, "bob")
	m.add(t, bob, RoleWrite)
	h1 := m.c.Head()
	m.append(t, m.boss, &Event{Kind: EventRemove, Target: bob.key(), Seen: &SeenSet{Upto: 1}})
	bob.kp = keyPackageAt(t, bob.id, "bob", t0.Add(-time.Hour), t0.Add(24*time.Hour))
	m.add(t, bob, RoleWrite)
	h2 := m.c.Head()
	first := m.payloadBy(t, bob, 0, h1, 1, KindText, "first life")
	again := m.payloadBy(t, bob, 0, h2, 1, KindText, "second life")
	twice := m.payloadBy(t, bob, 0, h2, 1, KindText, "second life, other text")
	e, err := NewEquivocation(first, again)
	if err != nil {
		t.Fatal(err) // stateless: looks like one
	}
	if err := e.SameMembership(m.c); !errors.Is(err, ErrEquivocationMalformed) {
		t.Fatalf("two memberships: %v", err)
	}
	e, err = NewEquivocation(again, twice)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SameMembership(m.c); err != nil {
		t.Fatal(err)
	}
	unknown := m.payloadBy(t, bob, 0, EventID{9}, 1, KindText, "?")
	e, _ = NewEquivocation(again, unknown)
	if err := e.SameMembership(m.c); !errors.Is(err, ErrUnknownHead) {
		t.Fatalf("unknown head: %v", err)
	}
}

func FuzzParseEquivocation(f *testing.F) {
	g, err := NewGroup("fuzz", nil)
	if err != nil {
		f.Fatal(err)
	}
	author := testAuthor(f)
	e, err := NewEquivocation(signedText(f, g, author, "a"), signedText(f, g, author, "b"))
	if err != nil {
		f.Fatal(err)
	}
	good, err := MarshalEquivocation(e)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseEquivocation(data)
		if err != nil {
			return
		}
		if e.A.Author != e.B.Author || e.A.Seq != e.B.Seq || e.A.Digest() == e.B.Digest() {
			t.Fatal("accepted evidence that proves nothing")
		}
		out, err := MarshalEquivocation(e)
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("accepted evidence does not re-encode canonically: %v", err)
		}
	})
}
