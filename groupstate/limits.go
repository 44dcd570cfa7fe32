package groupstate

import (
	"crypto/ed25519"
	"fmt"

	"github.com/meshnode/meshnode/keymgmt"
)

// MaxTextLen is the longest message text, in bytes of UTF-8, that a member
// may send: the one limit the CLI, the control API and the node state and
// enforce, for group messages and direct messages alike.
//
// It is what fits the largest padding bucket in the worst case: a nick of
// MaxNameLen bytes, MaxParents causal parents, and, for a direct message,
// the recipient's key and the HPKE seal of the largest key suite (X-Wing's
// encapsulated key). A group message could hold a little more (up to
// MaxBodyLen of its actual nick and parents), but a limit that moved with
// the nick, the parents or the recipient would be a limit users cannot
// know before they type.
var MaxTextLen = MaxBodyLen(MaxNameLen, MaxParents) - ed25519.PublicKeySize - keymgmt.SuitePQ.SealOverhead()

// CheckTextLen reports a text over MaxTextLen as ErrTooLong, with the limit.
func CheckTextLen(text string) error {
	if len(text) > MaxTextLen {
		return fmt.Errorf("%w: the message is %d bytes; one message holds at most %d bytes, so split it", ErrTooLong, len(text), MaxTextLen)
	}
	return nil
}
