package groupstate

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"unicode"
	"unicode/utf8"

	"github.com/meshnode/meshnode/envelope"
)

// Kinds that reference an earlier message of the same group by its
// envelope ID (issue 18): a reply, a reaction, an edit and a delete.
//
// Bodies (after the payload's kind byte; the target is the envelope ID
// of the message referred to, which members learn when they open it):
//
//	reply:    32 target ‖ UTF-8 text (1..MaxTextLen bytes)
//	reaction: 32 target ‖ 1 op (0 remove, 1 add) ‖ 1 length E (1..MaxEmojiLen) ‖ E bytes UTF-8
//	edit:     32 target ‖ UTF-8 text (1..MaxTextLen bytes): the whole new text
//	delete:   32 target
//
// Who may do what (CheckRef): anyone who may write replies to and reacts
// to a message; only the author edits it; the author deletes it, and so
// does a manager of a managed group (moderation). The target must be a
// message people wrote for the group (text or reply): a direct, a profile
// or a control payload cannot be referenced, and neither can a message of
// another group — a member looks targets up among its group's messages
// only, so a reference to any other group's message is simply unknown.
//
// A delete is a display tombstone: members stop showing the text (and
// drop it and its edits from their own database), but hosts keep the
// envelope until their retention removes it, and a member who fetches it
// again can decrypt it (the delete arrives with it and is applied again).
//
// FoldRefs turns the references to one message into what is shown: the
// latest edit (by the author's order), whether it is deleted, and the
// reactions — per member and emoji the latest add or remove counts, so a
// reaction toggles and reordering or duplicates change nothing.
const (
	// KindReply: body is a RefReply.
	KindReply Kind = 7
	// KindReaction: body is a RefReaction (add or remove one emoji).
	KindReaction Kind = 8
	// KindEdit: body is a RefEdit (the author's new text).
	KindEdit Kind = 9
	// KindDelete: body is a RefDelete (display tombstone).
	KindDelete Kind = 10
)

// MaxEmojiLen bounds a reaction's text in bytes (one emoji with its
// modifiers and joiners; a short word in the worst case).
const MaxEmojiLen = 32

// IsRef reports whether payloads of kind k reference a message.
func (k Kind) IsRef() bool { return k >= KindReply && k <= KindDelete }

// Referable reports whether a message of kind k may be replied to,
// reacted to, edited or deleted: what members wrote for the whole group.
func (k Kind) Referable() bool { return k == KindText || k == KindReply || k == KindFile }

// Ref is a decoded reference body.
type Ref struct {
	Kind   Kind
	Target envelope.ID
	// Text: a reply's or an edit's text.
	Text string
	// Emoji and Add: a reaction.
	Emoji string
	Add   bool
}

// MarshalRef encodes a reference body after checking it.
func MarshalRef(r *Ref) ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	b := append([]byte(nil), r.Target[:]...)
	switch r.Kind {
	case KindReply, KindEdit:
		b = append(b, r.Text...)
	case KindReaction:
		op := byte(0)
		if r.Add {
			op = 1
		}
		b = append(b, op, byte(len(r.Emoji)))
		b = append(b, r.Emoji...)
	}
	return b, nil
}

// ParseRef decodes the body of a payload of a reference kind strictly.
func ParseRef(kind Kind, body []byte) (*Ref, error) {
	if !kind.IsRef() {
		return nil, fmt.Errorf("%w: %s is not a kind that references a message", ErrRefMalformed, kind)
	}
	if len(body) < len(envelope.ID{}) {
		return nil, fmt.Errorf("%w: %s body of %d bytes has no target", ErrRefMalformed, kind, len(body))
	}
	r := &Ref{Kind: kind}
	copy(r.Target[:], body)
	rest := body[len(envelope.ID{}):]
	switch kind {
	case KindReply, KindEdit:
		r.Text = string(rest)
	case KindReaction:
		if len(rest) < 2 || rest[0] > 1 || int(rest[1]) != len(rest)-2 {
			return nil, fmt.Errorf("%w: reaction body of %d bytes", ErrRefMalformed, len(body))
		}
		r.Add = rest[0] == 1
		r.Emoji = string(rest[2:])
	case KindDelete:
		if len(rest) != 0 {
			return nil, fmt.Errorf("%w: delete body of %d bytes, want %d", ErrRefMalformed, len(body), len(envelope.ID{}))
		}
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Ref) check() error {
	if r.Target == (envelope.ID{}) {
		return fmt.Errorf("%w: no target message", ErrRefMalformed)
	}
	switch r.Kind {
	case KindReply, KindEdit:
		if r.Text == "" {
			return fmt.Errorf("%w: an empty %s (delete the message instead)", ErrRefMalformed, r.Kind)
		}
		if !utf8.ValidString(r.Text) {
			return fmt.Errorf("%w: %s text is not valid UTF-8", ErrRefMalformed, r.Kind)
		}
		if err := CheckTextLen(r.Text); err != nil {
			return err
		}
	case KindReaction:
		return CheckEmoji(r.Emoji)
	case KindDelete:
	default:
		return fmt.Errorf("%w: %s is not a kind that references a message", ErrRefMalformed, r.Kind)
	}
	return nil
}

// CheckEmoji reports whether s is a valid reaction: 1..MaxEmojiLen bytes
// of UTF-8 without spaces, control or direction-override characters.
func CheckEmoji(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: an empty reaction", ErrRefMalformed)
	case len(s) > MaxEmojiLen:
		return fmt.Errorf("%w: a reaction of %d bytes; at most %d (one emoji)", ErrRefMalformed, len(s), MaxEmojiLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: a reaction that is not valid UTF-8", ErrRefMalformed)
	}
	for _, c := range s {
		if unicode.IsControl(c) || unicode.IsSpace(c) || isBidiControl(c) {
			return fmt.Errorf("%w: a reaction with the character %U", ErrRefMalformed, c)
		}
	}
	return nil
}

// RefTarget is what a member knows of a referenced message.
type RefTarget struct {
	Author [32]byte
	Kind   Kind
}

// CheckRef decides whether actor may post r about target. manager says
// whether actor manages the group (a managed group's role at the head
// its payload names; always false in an open group, which has no
// managers).
func CheckRef(r *Ref, actor [32]byte, manager bool, target RefTarget) error {
	if !target.Kind.Referable() {
		return fmt.Errorf("%w: a %s cannot be referenced by a %s", ErrRefTarget, target.Kind, r.Kind)
	}
	switch r.Kind {
	case KindEdit:
		if target.Kind == KindFile {
			return fmt.Errorf("%w: a file cannot be edited (delete it and send another)", ErrRefTarget)
		}
		if actor != target.Author {
			return fmt.Errorf("%w: only its author edits a message", ErrNotAuthor)
		}
	case KindDelete:
		if actor != target.Author && !manager {
			return fmt.Errorf("%w: only its author (or a manager of a managed group) deletes a message", ErrNotAuthor)
		}
	}
	return nil
}

// RefAction is one admitted reference to a message, as FoldRefs takes it.
type RefAction struct {
	Ref
	// Actor is the author of the referencing payload; Manager whether it
	// managed the group when it posted it.
	Actor   [32]byte
	Manager bool
	// Order and Seq place it among the actor's payloads (the display
	// order: order time, then sequence number).
	Order int64
	Seq   uint64
	// ID is the referencing payload's envelope ID.
	ID envelope.ID
}

func (a *RefAction) before(b *RefAction) bool {
	if c := cmp.Compare(a.Order, b.Order); c != 0 {
		return c < 0
	}
	if a.Seq != b.Seq {
		return a.Seq < b.Seq
	}
	return bytes.Compare(a.ID[:], b.ID[:]) < 0
}

// RefView is what the references to one message change in its display.
type RefView struct {
	// Edits are the author's edits in order; the last one's text is shown.
	Edits []RefAction
	// Deleted: an author's or manager's delete; Deleter is who.
	Deleted bool
	Deleter [32]byte
	// Reactions, by emoji in order of their first add.
	Reactions []Reaction
}

// Reaction is one emoji's reactions: the members whose latest reaction
// with it is an add.
type Reaction struct {
	Emoji  string
	Actors [][32]byte
}

// FoldRefs folds the admitted references to a message of target into
// what is shown. It applies CheckRef again (a reference admitted before
// its target was known was not checked then), so anything not allowed is
// left out whatever the caller stored; replies are not folded.
func FoldRefs(target RefTarget, actions []RefAction) RefView {
	sorted := slices.Clone(actions)
	slices.SortFunc(sorted, func(a, b RefAction) int {
		if a.before(&b) {
			return -1
		}
		if b.before(&a) {
			return 1
		}
		return 0
	})
	var v RefView
	type key struct {
		actor [32]byte
		emoji string
	}
	latest := map[key]bool{}
	var order []string
	for _, a := range sorted {
		if CheckRef(&a.Ref, a.Actor, a.Manager, target) != nil {
			continue
		}
		switch a.Kind {
		case KindEdit:
			v.Edits = append(v.Edits, a)
		case KindDelete:
			if !v.Deleted {
				v.Deleted, v.Deleter = true, a.Actor
			}
		case KindReaction:
			k := key{a.Actor, a.Emoji}
			if a.Add && !slices.Contains(order, a.Emoji) {
				order = append(order, a.Emoji)
			}
			latest[k] = a.Add
		}
	}
	for _, emoji := range order {
		r := Reaction{Emoji: emoji}
		for k, add := range latest {
			if add && k.emoji == emoji {
				r.Actors = append(r.Actors, k.actor)
			}
		}
		if len(r.Actors) == 0 {
			continue
		}
		slices.SortFunc(r.Actors, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
		v.Reactions = append(v.Reactions, r)
	}
	if v.Deleted {
		v.Edits = nil
	}
	return v
}
