package groupstate

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/envelope"
)

func TestRefRoundTrip(t *testing.T) {
	target := envelope.ID{9, 9, 9}
	for _, r := range []*Ref{
		{Kind: KindReply, Target: target, Text: "yes, me too"},
		{Kind: KindEdit, Target: target, Text: "fixed the typo"},
		{Kind: KindReaction, Target: target, Emoji: "👍", Add: true},
		{Kind: KindReaction, Target: target, Emoji: "👩‍👩‍👧", Add: false},
		{Kind: KindDelete, Target: target},
	} {
		b, err := MarshalRef(r)
		if err != nil {
			t.Fatalf("%s: %v", r.Kind, err)
		}
		got, err := ParseRef(r.Kind, b)
		if err != nil {
			t.Fatalf("%s: %v", r.Kind, err)
		}
		if *got != *r {
			t.Fatalf("%s: got %+v, want %+v", r.Kind, got, r)
		}
		// Inside a signed payload, through its strict parser.
		g, _ := testGroup(t)
		p := textPayload(g, "")
		p.Kind, p.Body = r.Kind, b
		if err := SignPayload(p, testAuthor(t)); err != nil {
			t.Fatal(err)
		}
		enc, err := MarshalPayload(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParsePayload(enc); err != nil {
			t.Fatalf("%s payload: %v", r.Kind, err)
		}
	}
}

func TestRefBadInput(t *testing.T) {
	target := envelope.ID{1}
	good, _ := MarshalRef(&Ref{Kind: KindReaction, Target: target, Emoji: "👍", Add: true})
	for _, tc := range []struct {
		name string
		kind Kind
		body []byte
	}{
		{"not a ref kind", KindText, good},
		{"no target", KindDelete, target[:31]},
		{"zero target", KindDelete, make([]byte, 32)},
		{"delete with trailing bytes", KindDelete, append(target[:], 0)},
		{"empty reply", KindReply, target[:]},
		{"empty edit", KindEdit, target[:]},
		{"edit not UTF-8", KindEdit, append(target[:], 0xff, 0xfe)},
		{"reaction op 2", KindReaction, append(target[:], 2, 1, 'x')},
		{"reaction length short", KindReaction, append(target[:], 1, 5, 'x')},
		{"reaction length long", KindReaction, append(target[:], 1, 0, 'x')},
		{"reaction empty", KindReaction, append(target[:], 1, 0)},
		{"reaction with a space", KindReaction, append(target[:], 1, 3, 'a', ' ', 'b')},
		{"reaction with a control", KindReaction, append(target[:], 1, 1, '\n')},
		{"reaction bidi override", KindReaction, append(append(target[:], 1, 3), "\u202e"...)},
		{"reaction too long", KindReaction, append(append(target[:], 1, 33), strings.Repeat("x", 33)...)},
		{"reaction truncated", KindReaction, append(target[:], 1)},
	} {
		if _, err := ParseRef(tc.kind, tc.body); !errors.Is(err, ErrRefMalformed) {
			t.Errorf("%s: %v, want ErrRefMalformed", tc.name, err)
		}
	}
	long := strings.Repeat("a", MaxTextLen+1)
	if _, err := MarshalRef(&Ref{Kind: KindReply, Target: target, Text: long}); !errors.Is(err, ErrTooLong) {
		t.Fatalf("a reply over MaxTextLen: %v", err)
	}
}

func TestCheckRef(t *testing.T) {
	alice, bob := [32]byte{1}, [32]byte{2}
	text := RefTarget{Author: alice, Kind: KindText}
	target := envelope.ID{7}
	for _, tc := range []struct {
		name    string
		ref     Ref
		actor   [32]byte
		manager bool
		target  RefTarget
		want    error
	}{
		{"author edits", Ref{Kind: KindEdit, Target: target, Text: "x"}, alice, false, text, nil},
		{"other edits", Ref{Kind: KindEdit, Target: target, Text: "x"}, bob, false, text, ErrNotAuthor},
		{"manager edits", Ref{Kind: KindEdit, Target: target, Text: "x"}, bob, true, text, ErrNotAuthor},
		{"author deletes", Ref{Kind: KindDelete, Target: target}, alice, false, text, nil},
		{"other deletes", Ref{Kind: KindDelete, Target: target}, bob, false, text, ErrNotAuthor},
		{"manager deletes", Ref{Kind: KindDelete, Target: target}, bob, true, text, nil},
		{"anyone reacts", Ref{Kind: KindReaction, Target: target, Emoji: "x", Add: true}, bob, false, text, nil},
		{"anyone replies", Ref{Kind: KindReply, Target: target, Text: "x"}, bob, false, text, nil},
		{"reply to a reply", Ref{Kind: KindReply, Target: target, Text: "x"}, bob, false, RefTarget{alice, KindReply}, nil},
		{"react to a direct", Ref{Kind: KindReaction, Target: target, Emoji: "x", Add: true}, bob, false, RefTarget{alice, KindDirect}, ErrRefTarget},
		{"edit a profile", Ref{Kind: KindEdit, Target: target, Text: "x"}, alice, false, RefTarget{alice, KindProfile}, ErrRefTarget},
		{"delete a state event", Ref{Kind: KindDelete, Target: target}, alice, true, RefTarget{alice, KindStateEvent}, ErrRefTarget},
	} {
		err := CheckRef(&tc.ref, tc.actor, tc.manager, tc.target)
		if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestFoldRefs(t *testing.T) {
	alice, bob, carol := [32]byte{1}, [32]byte{2}, [32]byte{3}
	target := RefTarget{Author: alice, Kind: KindText}
	tid := envelope.ID{7}
	act := func(kind Kind, actor [32]byte, order int64, f func(*RefAction)) RefAction {
		a := RefAction{Ref: Ref{Kind: kind, Target: tid}, Actor: actor, Order: order, Seq: uint64(order), ID: envelope.ID{byte(order)}}
		if f != nil {
			f(&a)
		}
		return a
	}
	edit := func(actor [32]byte, order int64, text string) RefAction {
		return act(KindEdit, actor, order, func(a *RefAction) { a.Text = text })
	}
	react := func(actor [32]byte, order int64, emoji string, add bool) RefAction {
		return act(KindReaction, actor, order, func(a *RefAction) { a.Emoji, a.Add = emoji, add })
	}
	// Given in any order, the author's edits count in their order and a
	// forged edit by bob counts nowhere.
	v := FoldRefs(target, []RefAction{edit(alice, 3, "third"), edit(bob, 9, "forged"), edit(alice, 1, "first"), edit(alice, 2, "second")})
	if len(v.Edits) != 3 || v.Edits[2].Text != "third" || v.Deleted {
		t.Fatalf("edits: %+v", v)
	}
	// Reactions toggle: bob adds and removes 👍, carol adds it twice,
	// alice adds 🎉 and removes it before adding again.
	v = FoldRefs(target, []RefAction{
		react(bob, 1, "👍", true), react(carol, 2, "👍", true), react(bob, 3, "👍", false), react(carol, 4, "👍", true),
		react(alice, 5, "🎉", false), react(alice, 6, "🎉", true), react(bob, 7, "❤️", true), react(bob, 8, "❤️", false),
	})
	if len(v.Reactions) != 2 || v.Reactions[0].Emoji != "👍" || len(v.Reactions[0].Actors) != 1 || v.Reactions[0].Actors[0] != carol ||
		v.Reactions[1].Emoji != "🎉" || len(v.Reactions[1].Actors) != 1 {
		t.Fatalf("reactions: %+v", v.Reactions)
	}
	// Deletes: bob's is ignored, a manager's counts, and a deleted
	// message keeps no edits.
	v = FoldRefs(target, []RefAction{act(KindDelete, bob, 1, nil), edit(alice, 2, "x")})
	if v.Deleted || len(v.Edits) != 1 {
		t.Fatalf("bob's delete: %+v", v)
	}
	v = FoldRefs(target, []RefAction{act(KindDelete, bob, 1, func(a *RefAction) { a.Manager = true }), edit(alice, 2, "x")})
	if !v.Deleted || v.Deleter != bob || len(v.Edits) != 0 {
		t.Fatalf("manager's delete: %+v", v)
	}
	// Nothing refers to a direct.
	v = FoldRefs(RefTarget{Author: alice, Kind: KindDirect}, []RefAction{react(bob, 1, "👍", true), act(KindDelete, alice, 2, nil)})
	if v.Deleted || len(v.Reactions) != 0 {
		t.Fatalf("refs to a direct: %+v", v)
	}
}

func FuzzParseRef(f *testing.F) {
	target := envelope.ID{1, 2, 3}
	for _, r := range []*Ref{
		{Kind: KindReply, Target: target, Text: "hi"},
		{Kind: KindEdit, Target: target, Text: "hello"},
		{Kind: KindReaction, Target: target, Emoji: "👍", Add: true},
		{Kind: KindDelete, Target: target},
	} {
		b, _ := MarshalRef(r)
		f.Add(byte(r.Kind), b)
	}
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		r, err := ParseRef(Kind(kind), data)
		if err != nil {
			return
		}
		out, err := MarshalRef(r)
		if err != nil {
			t.Fatalf("parsed reference does not encode: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatal("non-canonical reference accepted")
		}
	})
}
