package groupstate

import (
	"fmt"
	"time"

	"github.com/meshnode/meshnode/keymgmt"
)

// NewManagedGroup creates a managed group: a Group with fresh epoch-0
// secrets (history from the policy, created at now) and its state chain,
// started by a create event the creator signs. The creator is the first
// manager; bot marks an always-on manager. Post the create event
// (c.Events()[0]) as a KindStateEvent payload so members who fetch the
// group's first mailbox see it.
func NewManagedGroup(name string, hosts []string, creator *keymgmt.Identity, nick string, bot bool, policy Policy, now time.Time) (*Group, *Chain, error) {
	if creator == nil {
		return nil, nil, fmt.Errorf("%w: no creator identity", ErrEventMalformed)
	}
	if err := policy.validate(); err != nil {
		return nil, nil, err
	}
	g, err := NewGroup(name, hosts, WithHistory(policy.History), WithCreated(now))
	if err != nil {
		return nil, nil, err
	}
	ev := &Event{
		GroupID: g.ID,
		Seq:     1,
		Time:    now.UnixMilli(),
		Kind:    EventCreate,
		Name:    name,
		Policy:  policy,
		Hosts:   g.Hosts,
		WPub:    [32]byte(g.Secrets[0].WPub),
		Creator: creator.Public(),
		Nick:    nick,
		Bot:     bot,
	}
	if err := SignEvent(ev, creator); err != nil {
		return nil, nil, err
	}
	c, err := NewChain(ev)
	if err != nil {
		return nil, nil, err
	}
	// The creator draws the key tree's seed: the tree exists from the
	// start, each newcomer's welcome carries its path, and no rotation
	// ever has to set it up for a large group.
	g.TreeSeed = keymgmt.NewTreeSeed(0)
	if g.Tree, err = c.TreePathOf(g.TreeSeed, creator.SigningKey()); err != nil {
		return nil, nil, err
	}
	return g, c, nil
}
