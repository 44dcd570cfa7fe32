package groupstate

import (
	"crypto/ed25519"
	"fmt"

	"github.com/meshnode/meshnode/keymgmt"
)

// Direct messages (KindDirect): a private message to one member inside a
// group, readable by that member only. The payload body is
//
//	0   32  the recipient's identity signing key (Ed25519)
//	32  …   keymgmt.SealTo of the text to the recipient's HPKE key, with
//	        info = directInfoLabel ‖ group ID(16) ‖ recipient key(32) ‖
//	        author key(32)
//
// The recipient key is in the clear for the group's members (they hold
// the epoch key the payload is encrypted with), so each member's node
// knows, without trying to open it, whether a direct is its own. The info
// binds the group, the recipient and the author, so a sealed body cannot
// be replayed into another group or re-signed by another member (who
// would be its author). HPKE base mode draws a fresh ephemeral key per
// seal, so no nonce is chosen here.

// directInfoLabel starts the HPKE info of a direct message.
const directInfoLabel = "meshnode/v1/direct"

// directInfo binds a direct message's HPKE seal to group, recipient and
// author.
func directInfo(g GroupID, to, from ed25519.PublicKey) []byte {
	b := make([]byte, 0, len(directInfoLabel)+len(g)+2*ed25519.PublicKeySize)
	b = append(b, directInfoLabel...)
	b = append(b, g[:]...)
	b = append(b, to...)
	return append(b, from...)
}

// SealDirect makes the body of a direct message of author from to the
// member to in group g.
func SealDirect(g GroupID, to *keymgmt.PublicIdentity, from ed25519.PublicKey, text []byte) ([]byte, error) {
	if to == nil || len(to.SignPub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: direct message to a recipient without an identity key", ErrDirectMalformed)
	}
	sealed, err := keymgmt.SealTo(to, directInfo(g, to.SignPub, from), text)
	if err != nil {
		return nil, err
	}
	return append(append(make([]byte, 0, len(to.SignPub)+len(sealed)), to.SignPub...), sealed...), nil
}

// DirectRecipient is the identity signing key a direct message's body is
// addressed to. A body too short to name one is ErrDirectMalformed.
func DirectRecipient(body []byte) (ed25519.PublicKey, error) {
	if len(body) < ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: direct message body of %d bytes", ErrDirectMalformed, len(body))
	}
	return ed25519.PublicKey(body[:ed25519.PublicKeySize]), nil
}

// OpenDirect opens the body of a direct message of author in group g
// addressed to id (check DirectRecipient first: a direct for another
// member does not open). A body that does not open is keymgmt.ErrDecrypt.
func OpenDirect(id *keymgmt.Identity, g GroupID, author ed25519.PublicKey, body []byte) ([]byte, error) {
	to, err := DirectRecipient(body)
	if err != nil {
		return nil, err
	}
	text, err := id.Open(directInfo(g, to, author), body[ed25519.PublicKeySize:])
	if err != nil {
		return nil, fmt.Errorf("direct message: %w", err)
	}
	return text, nil
}
