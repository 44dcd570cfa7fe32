package node

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
)

// allowlist holds the peers and mailboxes of PolicyAllowlist. It is built
// once at start and read-only afterwards.
type allowlist struct {
	peers     map[peer.ID]struct{}
	mailboxes []envelope.MailboxID
}

// parseAllowlist accepts peer IDs and 64-hex-digit mailbox tags.
func parseAllowlist(entries []string) (allowlist, error) {
	a := allowlist{peers: make(map[peer.ID]struct{})}
	for _, e := range entries {
		if m, err := envelope.ParseMailboxID(e); err == nil {
			a.mailboxes = append(a.mailboxes, m)
			continue
		}
		p, err := peer.Decode(e)
		if err != nil {
			return a, fmt.Errorf("%w: allowlist entry %q is neither a peer ID nor a mailbox tag", ErrConfig, e)
		}
		a.peers[p] = struct{}{}
	}
	return a, nil
}

func (a allowlist) has(p peer.ID, m envelope.MailboxID) bool {
	if _, ok := a.peers[p]; ok {
		return true
	}
	for _, x := range a.mailboxes {
		if x == m {
			return true
		}
	}
	return false
}
