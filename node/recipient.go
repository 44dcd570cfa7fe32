package node

import (
	"fmt"
	"slices"
	"strings"
)

// Members by nick (issue 18, item 6): a direct message may name its
// recipient by nick when exactly one other member of the group has it.

// MemberByNick returns the fingerprint of the one other member of group
// whose nick is nick. None: ErrUnknownMember; several: ErrAmbiguousMember,
// whose message lists each candidate's fingerprint (compare them out of
// band before choosing one).
func (n *Node) MemberByNick(group, nick string) (string, error) {
	ms, err := n.Members(group)
	if err != nil {
		return "", err
	}
	var hits []MemberInfo
	for _, m := range ms {
		if !m.Self && m.Nick == nick {
			hits = append(hits, m)
		}
	}
	if len(hits) == 0 {
		// A nick differing only in case is a likely typo: say so.
		for _, m := range ms {
			if !m.Self && strings.EqualFold(m.Nick, nick) {
				hits = append(hits, m)
			}
		}
		if len(hits) == 0 {
			return "", fmt.Errorf("%w: no other member of the group has the nick %q", ErrUnknownMember, nick)
		}
		if len(hits) == 1 {
			return "", fmt.Errorf("%w: no member has the nick %q; did you mean %q (%s)?", ErrUnknownMember, nick, hits[0].Nick, hits[0].Fingerprint)
		}
	}
	if len(hits) == 1 {
		return hits[0].Fingerprint, nil
	}
	var c []string
	for _, h := range hits {
		c = append(c, fmt.Sprintf("%s (%s)", h.Nick, h.Fingerprint))
	}
	slices.Sort(c)
	return "", fmt.Errorf("%w: %d members have the nick %q: %s; name one by fingerprint", ErrAmbiguousMember, len(hits), nick, strings.Join(c, ", "))
}
