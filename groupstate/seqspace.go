package groupstate

import (
	"crypto/rand"
	"fmt"

	"github.com/meshnode/meshnode/keymgmt"
)

// Sequence spaces of open groups (issue 13, item 5; ARCHITECTURE §5, §11).
//
// An author numbers its payloads 1, 2, 3 … in a sequence space, and every
// member refuses a number it has seen in that space (a replay) and keeps
// two different payloads with one number as evidence (an equivocation). A
// member who leaves a group forgets it, numbers included; joining again,
// it starts from 1. In a managed group the chain tells its memberships
// apart (MembershipKey). An open group has no chain: there, a payload's
// StateHead names its author's membership instead — 32 random bytes the
// author's node draws when it creates or joins the group
// (NewOpenMembership) and keeps for as long as it holds the group. Its
// space is OpenSeqSpace: the author's key itself for a zero membership
// (what nodes wrote before memberships existed), else
// MembershipKey(author, membership).
//
// The membership is signed with the rest of the payload, so nobody but
// the author chooses it; a member who re-seals another's payload keeps
// its space and number, and it is refused as the replay it is. An author
// may start as many memberships as it likes; it gains nothing by it: two
// payloads in two spaces are two messages that every member shows, so no
// member can be shown one and not the other (no split to hide), and an
// author skipping numbers or spaces only reports gaps in its own
// messages.

// NewOpenMembership draws a membership for a member creating or joining
// an open group (never zero).
func NewOpenMembership() ([32]byte, error) {
	var m [32]byte
	for m == ([32]byte{}) {
		if _, err := rand.Read(m[:]); err != nil {
			return m, fmt.Errorf("groupstate: draw an open-group membership: %w", err)
		}
	}
	return m, nil
}

// OpenSeqSpace returns the sequence space of an open group's payload: its
// author's key for a zero membership, MembershipKey(author, membership)
// otherwise.
func OpenSeqSpace(p *Payload) [32]byte {
	if p.StateHead == ([32]byte{}) {
		return p.Author
	}
	return MembershipKey(p.Author, EventID(p.StateHead))
}

// SameOpenMembership checks, for an open group, that both payloads of an
// equivocation belong to one membership of their author: payloads of two
// memberships are two messages, both shown, and prove nothing.
func (e *Equivocation) SameOpenMembership() error {
	if e.A.StateHead != e.B.StateHead {
		return fmt.Errorf("%w: the payloads belong to two memberships of %s (it left and joined again)",
			ErrEquivocationMalformed, keymgmt.Fingerprint(e.A.Author[:]))
	}
	return nil
}
