package groupstate

import (
	"errors"
	"testing"
)

// An open group's sequence space is the author's key for a zero
// membership and a hash of author and membership otherwise: two
// memberships of one author, or one membership of two authors, never
// share a space, and an equivocation needs one membership.
func TestOpenSeqSpace(t *testing.T) {
	g, _ := testGroup(t)
	alice, bob := testAuthor(t), testAuthor(t)
	m1, err := NewOpenMembership()
	if err != nil {
		t.Fatal(err)
	}
	m2, _ := NewOpenMembership()
	if m1 == m2 || m1 == ([32]byte{}) {
		t.Fatal("memberships repeat or are zero")
	}
	sign := func(key []byte, ms [32]byte, text string) *Payload {
		p := textPayload(g, text)
		p.StateHead = ms
		if err := SignPayload(p, key); err != nil {
			t.Fatal(err)
		}
		return p
	}
	legacy := sign(alice, [32]byte{}, "old node")
	if OpenSeqSpace(legacy) != legacy.Author {
		t.Fatal("a zero membership is not the author's key")
	}
	a1, a2, b1 := sign(alice, m1, "first life"), sign(alice, m2, "second life"), sign(bob, m1, "bob")
	spaces := map[[32]byte]bool{}
	for _, p := range []*Payload{legacy, a1, a2, b1} {
		spaces[OpenSeqSpace(p)] = true
	}
	if len(spaces) != 4 {
		t.Fatalf("%d spaces for four memberships", len(spaces))
	}
	if OpenSeqSpace(a1) != OpenSeqSpace(sign(alice, m1, "again")) {
		t.Fatal("one membership, two spaces")
	}
	e, err := NewEquivocation(a1, a2)
	if err != nil {
		t.Fatal(err) // stateless: it looks like one
	}
	if err := e.SameOpenMembership(); !errors.Is(err, ErrEquivocationMalformed) {
		t.Fatalf("two memberships: %v", err)
	}
	e, err = NewEquivocation(a1, sign(alice, m1, "first life, other text"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SameOpenMembership(); err != nil {
		t.Fatal(err)
	}
}
