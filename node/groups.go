package node

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
	"github.com/meshnode/meshnode/store"
)

// GroupInfo describes a group for listings. JSON names are a CLI contract.
type GroupInfo struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Epoch    uint64   `json:"epoch"`
	Hosts    []string `json:"hosts"`
	CanWrite bool     `json:"can_write"`
	History  string   `json:"history"`
	Members  int      `json:"members"` // members known from their profiles
	Nick     string   `json:"nick"`
	Messages int      `json:"messages"`
	// Unread counts what others wrote after this member's read marker
	// (readmarks.go), at most MaxUnread.
	Unread int `json:"unread"`
	// Managed groups only: this member's role, the policy, detected
	// splits, and whether this member was removed.
	Managed bool   `json:"managed,omitempty"`
	Role    string `json:"role,omitempty"`
	Policy  string `json:"policy,omitempty"`
	Splits  int    `json:"splits,omitempty"`
	Removed bool   `json:"removed,omitempty"`
}

// MemberInfo is a member of a group: of an open group, known from its
// profile messages; of a managed group, from the state chain, with its
// role and whether it is a bot.
type MemberInfo struct {
	Fingerprint string `json:"fingerprint"`
	Nick        string `json:"nick"`
	Self        bool   `json:"self"`
	Role        string `json:"role,omitempty"`
	Bot         bool   `json:"bot,omitempty"`
}

// SendResult says where a sent envelope went.
type SendResult struct {
	ID string `json:"id"`
	// StoredBy lists the group hosts that acknowledged durable storage.
	StoredBy []string `json:"stored_by"`
	// Failed maps hosts that did not to the reason.
	Failed map[string]string `json:"failed,omitempty"`
	// Gossiped is the number of peers on the mailbox topic.
	Gossiped int `json:"gossiped"`
	// State is DeliveryStored, DeliveryPending (the outbox keeps trying)
	// or DeliveryFailed (outbox.go).
	State string `json:"state"`
}

func (n *Node) mem() (*member, error) {
	if n.member == nil {
		return nil, ErrNoIdentity
	}
	return n.member, nil
}

// lockGroup resolves a group ID or name and returns with member.mu held
// (the caller unlocks); on error nothing is held.
// awaitRecovered waits until the member loop's first pass over the own
// store is done (member.recovered), so a send takes no sequence number an
// envelope stored before a crash already used.
func (n *Node) awaitRecovered(ctx context.Context) error {
	m, err := n.mem()
	if err != nil {
		return err
	}
	select {
	case <-m.recovered:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.ctx.Done():
		return ErrClosed
	}
}

func (n *Node) lockGroup(group string) (*member, *groupEntry, error) {
	m, err := n.mem()
	if err != nil {
		return nil, nil, err
	}
	m.mu.Lock()
	e, err := m.resolve(group)
	if err != nil {
		m.mu.Unlock()
		return nil, nil, err
	}
	return m, e, nil
}

// lookup resolves a group ID or name for methods that need only the ID
// (IDs never change, so it is safe to use after the lock is released).
func (n *Node) lookup(group string) (*member, groupstate.GroupID, error) {
	m, err := n.mem()
	if err != nil {
		return nil, groupstate.GroupID{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.resolve(group)
	if err != nil {
		return nil, groupstate.GroupID{}, err
	}
	return m, e.g.ID, nil
}

// Fingerprint is the profile identity's fingerprint ("" for a pure host).
func (n *Node) Fingerprint() string {
	if n.member == nil {
		return ""
	}
	return n.member.id.Fingerprint()
}

// parseHosts checks host multiaddrs (each must name its peer with /p2p/).
func parseHosts(hosts []string) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	for _, h := range hosts {
		ai, err := peer.AddrInfoFromString(h)
		if err != nil {
			return nil, fmt.Errorf("%w: host %q is not a multiaddr ending in /p2p/PEERID: %v", ErrConfig, h, err)
		}
		out = append(out, *ai)
	}
	return out, nil
}

// GroupOption configures CreateGroup.
type GroupOption func(*groupOptions) error

type groupOptions struct {
	managed bool
	policy  groupstate.Policy
}

// Managed makes CreateGroup create a managed group (ARCHITECTURE §7) with
// this policy: membership is a state chain this member starts as its
// first manager; people join when a manager adds their key package (there
// is no bearer invite), and removals rotate the keys.
func Managed(p groupstate.Policy) GroupOption {
	return func(o *groupOptions) error { o.managed, o.policy = true, p; return nil }
}

// CreateGroup creates a group hosted by this node and the given hosts and
// returns it with a write invite (none for a managed group: see Managed).
func (n *Node) CreateGroup(ctx context.Context, name string, hosts []string, opts ...GroupOption) (*GroupInfo, string, error) {
	if _, err := n.mem(); err != nil {
		return nil, "", err
	}
	if _, err := parseHosts(hosts); err != nil {
		return nil, "", err
	}
	var o groupOptions
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, "", err
		}
	}
	if o.managed {
		info, err := n.createManaged(ctx, name, hosts, o.policy)
		return info, "", err
	}
	g, err := groupstate.NewGroup(name, hosts)
	if err != nil {
		return nil, "", err
	}
	invite, err := groupstate.NewInvite(g, true)
	if err != nil {
		return nil, "", err
	}
	info, err := n.addGroupNick(ctx, g, "")
	if err != nil {
		return nil, "", err
	}
	return info, invite, nil
}

// JoinGroup joins the group of an invite under a nickname ("" keeps the
// default), then catches up in the background.
func (n *Node) JoinGroup(ctx context.Context, invite, nick string) (*GroupInfo, error) {
	m, err := n.mem()
	if err != nil {
		return nil, err
	}
	if err := groupstate.CheckNick(nick); err != nil {
		return nil, err
	}
	inv, err := groupstate.ParseInvite(invite)
	if err != nil {
		return nil, err
	}
	g := inv.Group()
	m.mu.Lock()
	_, exists := m.groups[g.ID]
	m.mu.Unlock()
	if exists {
		return nil, fmt.Errorf("%w: %s", ErrAlreadyMember, g.Name)
	}
	info, err := n.addGroupNick(ctx, g, nick)
	if err != nil {
		return nil, err
	}
	n.catchUpAsync(g.ID)
	return info, nil
}

// addGroupNick stores a new group, hosts its mailboxes, connects to its
// hosts and announces the member's profile.
func (n *Node) addGroupNick(ctx context.Context, g *groupstate.Group, nick string) (*GroupInfo, error) {
	return n.addGroup(ctx, g, nil, nick)
}

// addGroup is addGroupNick for an open group (chain nil) or a managed one;
// a managed group's caller announces the profile itself, after what must
// come first (the create event).
func (n *Node) addGroup(ctx context.Context, g *groupstate.Group, chain *groupstate.Chain, nick string) (*GroupInfo, error) {
	if err := n.st.CheckSpace(); err != nil {
		return nil, err
	}
	m := n.member
	m.mu.Lock()
	if _, ok := m.groups[g.ID]; ok {
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrAlreadyMember, g.Name)
	}
	e, err := m.addEntry(g)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	if chain != nil {
		e.chain = chain
	} else {
		// A membership of its own: whatever this member sent in the group
		// before (it left, and joins again) is another sequence space.
		ms, err := groupstate.NewOpenMembership()
		if err != nil {
			m.mu.Unlock()
			return nil, err
		}
		e.local.Membership = ms[:]
	}
	e.local.Nick = m.defaultNick()
	if nick != "" {
		e.local.Nick = nick
	}
	err = m.db.db.Update(func(txn *badger.Txn) error { return saveGroupTxn(txn, e) })
	if err != nil {
		delete(m.groups, g.ID)
		for _, mb := range m.mailboxesOf(e) {
			delete(m.mailboxes, mb)
		}
		m.mu.Unlock()
		return nil, fmt.Errorf("node: save group: %w", err)
	}
	mbs := m.mailboxesOf(e)
	m.mu.Unlock()

	n.setNamedHosts(mbs, g.Hosts)
	for _, mb := range mbs {
		if err := n.hostGroupMailbox(mb); err != nil {
			return nil, err
		}
	}
	n.connectHosts(ctx, g.Hosts)
	if g.CanWrite() && chain == nil {
		if _, err := n.sendProfile(ctx, g.ID); err != nil {
			n.log.Warn("could not announce profile", "group", g.ID.Short(), "err", err)
		}
	}
	return n.GroupInfo(g.ID.String())
}

// mailboxesOf lists a group's mailboxes. Call with m.mu held.
func (m *member) mailboxesOf(e *groupEntry) []envelope.MailboxID {
	var out []envelope.MailboxID
	for mb, ref := range m.mailboxes {
		if ref.group == e.g.ID {
			out = append(out, mb)
		}
	}
	return out
}

func (n *Node) connectHosts(ctx context.Context, hosts []string) {
	ais, _ := parseHosts(hosts)
	for _, ai := range ais {
		if ai.ID == n.h.ID() {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := n.h.Connect(cctx, ai); err != nil {
			// Dropped: an unreachable host is retried at each catch-up.
			n.log.Info("group host unreachable", "host", ai.ID, "err", err)
		}
		cancel()
	}
}

// Invite returns a write invite for the group (read-only if this member
// cannot write).
func (n *Node) Invite(group string) (string, error) {
	m, err := n.mem()
	if err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.resolve(group)
	if err != nil {
		return "", err
	}
	if e.chain != nil {
		// A bearer invite would let its holder in without the manager.
		return "", fmt.Errorf("%w: %q is a managed group, which has no invite; a manager adds members with their key package", ErrNoInvite, e.g.Name)
	}
	return groupstate.NewInvite(e.g, e.g.CanWrite())
}

// Groups lists the member's groups by name.
func (n *Node) Groups() ([]GroupInfo, error) {
	m, err := n.mem()
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	ids := make([]string, 0, len(m.groups))
	for id := range m.groups {
		ids = append(ids, id.String())
	}
	m.mu.Unlock()
	out := make([]GroupInfo, 0, len(ids))
	for _, id := range ids {
		gi, err := n.GroupInfo(id)
		if err != nil {
			return nil, err
		}
		out = append(out, *gi)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Name < out[j].Name || (out[i].Name == out[j].Name && out[i].ID < out[j].ID)
	})
	return out, nil
}

// GroupInfo describes one group.
func (n *Node) GroupInfo(group string) (*GroupInfo, error) {
	m, e, err := n.lockGroup(group)
	if err != nil {
		return nil, err
	}
	gi := &GroupInfo{
		ID: e.g.ID.String(), Name: e.g.Name, Epoch: e.g.Epoch, Hosts: append([]string{}, e.g.Hosts...),
		CanWrite: m.canWrite(e), History: e.g.History.String(), Nick: e.local.Nick,
	}
	if e.chain != nil {
		st := e.chain.State()
		gi.Managed, gi.Policy, gi.Removed = true, describePolicy(st.Policy), e.local.Removed
		gi.History = st.Policy.History.String()
		if me, ok := st.Member(m.id.SigningKey()); ok {
			gi.Role = me.Role.String()
		}
	}
	gid := e.g.ID
	m.mu.Unlock()
	if gi.Managed {
		err = m.db.scan(gkey(pfxSplit, gid), func(_, _ []byte) error { gi.Splits++; return nil })
		if err != nil {
			return nil, err
		}
	}
	members, err := n.Members(gid.String())
	if err != nil {
		return nil, err
	}
	gi.Members = len(members)
	if gi.Messages, err = m.db.count(gkey(pfxMessage, gid)); err != nil {
		return nil, err
	}
	rs, err := n.ReadState(gid.String(), n.IsProtocolMessage)
	if err != nil {
		return nil, err
	}
	gi.Unread = rs.Unread
	return gi, nil
}

// Members lists the members known from their profile messages.
func (n *Node) Members(group string) ([]MemberInfo, error) {
	m, gid, err := n.lookup(group)
	if err != nil {
		return nil, err
	}
	var out []MemberInfo
	m.mu.Lock()
	var st *groupstate.State
	if e, ok := m.groups[gid]; ok && e.chain != nil {
		st = e.chain.State()
	}
	m.mu.Unlock()
	if st != nil {
		for _, mb := range st.SortedMembers() {
			out = append(out, MemberInfo{Fingerprint: mb.Fingerprint(), Nick: mb.Nick, Self: m.isSelf(mb.Identity.SignPub),
				Role: mb.Role.String(), Bot: mb.Bot})
		}
		return out, nil
	}
	err = m.db.scan(gkey(pfxProfile, gid), func(k, v []byte) error {
		rec, err := decodeProfileRec(v)
		if err != nil {
			return err
		}
		author := ed25519.PublicKey(k[1+16:])
		out = append(out, MemberInfo{Fingerprint: keymgmt.Fingerprint(author), Nick: rec.Nick, Self: author.Equal(m.id.SigningKey())})
		return nil
	})
	return out, err
}

// Messages returns up to limit of the group's latest messages (0 = all),
// oldest first, in sending order.
func (n *Node) Messages(group string, limit int) ([]Message, error) {
	m, gid, err := n.lookup(group)
	if err != nil {
		return nil, err
	}
	var out []Message
	collect := func(_, v []byte) error {
		msg, err := decodeMessage(v)
		if err != nil {
			return err
		}
		out = append(out, *msg)
		if limit > 0 && len(out) == limit {
			return errStopScan
		}
		return nil
	}
	if limit <= 0 {
		err = m.db.scan(gkey(pfxMessage, gid), collect)
	} else {
		// The latest limit messages: read from the newest end, then
		// restore sending order.
		err = m.db.scanReverse(gkey(pfxMessage, gid), collect)
		if errors.Is(err, errStopScan) {
			err = nil
		}
		slices.Reverse(out)
	}
	if err != nil {
		return nil, err
	}
	// Own messages: where each went (outbox.go).
	if err := m.annotateDelivery(gid, out); err != nil {
		return nil, err
	}
	// Replies, edits, deletes, reactions (refs.go).
	return out, m.decorate(gid, out)
}

// Follow returns a channel of new messages in all groups and a function to
// stop. A follower that falls behind misses messages (re-read them with
// Messages); the channel closes when the node closes.
func (n *Node) Follow(buffer int) (<-chan Message, func(), error) {
	m, err := n.mem()
	if err != nil {
		return nil, nil, err
	}
	ch := make(chan Message, buffer)
	m.mu.Lock()
	id := m.nextF
	m.nextF++
	m.followers[id] = ch
	m.mu.Unlock()
	return ch, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if c, ok := m.followers[id]; ok {
			close(c)
			delete(m.followers, id)
		}
	}, nil
}

// Send sends a text message to the group.
func (n *Node) Send(ctx context.Context, group, text string) (*SendResult, error) {
	if err := groupstate.CheckTextLen(text); err != nil {
		return nil, err
	}
	if err := n.st.CheckSpace(); err != nil {
		// Refused before anything is recorded (store.ErrDiskFull).
		return nil, err
	}
	if err := n.awaitRecovered(ctx); err != nil {
		return nil, err
	}
	m, e, err := n.lockGroup(group)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	p, err := m.buildPayload(e, groupstate.KindText, []byte(text), now)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	msg := m.newMessage(e, p, envelope.ID{}, now)
	msg.Text = text
	env, err := m.sealOwn(e, p, msg)
	gid := e.g.ID
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return n.deliverOwn(ctx, gid, env)
}

// SendDirect sends a private message to one member of the group, readable
// by that member only.
func (n *Node) SendDirect(ctx context.Context, group, toFingerprint, text string) (*SendResult, error) {
	m, err := n.mem()
	if err != nil {
		return nil, err
	}
	if err := groupstate.CheckTextLen(text); err != nil {
		return nil, err
	}
	if err := n.st.CheckSpace(); err != nil {
		return nil, err
	}
	if err := n.awaitRecovered(ctx); err != nil {
		return nil, err
	}
	fp, err := keymgmt.ParseFingerprint(toFingerprint)
	if err != nil {
		return nil, err
	}
	var to *keymgmt.PublicIdentity
	m.mu.Lock()
	e, err := m.resolve(group)
	if err == nil && e.chain != nil {
		// A managed group's chain holds every member's keys, from the key
		// package a manager added: use them, so a direct reaches a member
		// who has not announced a profile yet, and never one removed.
		var mb *groupstate.Member
		if mb, err = findMember(e, fp); err == nil {
			to = &keymgmt.PublicIdentity{SignPub: slices.Clone(mb.Identity.SignPub), Suite: mb.Identity.Suite,
				HPKEPub: slices.Clone(mb.Identity.HPKEPub)}
		}
	}
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	// In an open group, find the recipient's HPKE key among the profiles.
	if to == nil {
		err = m.db.scan(gkey(pfxProfile, e.g.ID), func(k, v []byte) error {
			author := ed25519.PublicKey(k[1+16:])
			if keymgmt.Fingerprint(author) != fp {
				return nil
			}
			rec, err := decodeProfileRec(v)
			if err != nil {
				return err
			}
			suite, err := keymgmt.SuiteForKEM(rec.KEM)
			if err != nil {
				return err
			}
			to = &keymgmt.PublicIdentity{SignPub: append(ed25519.PublicKey(nil), author...), Suite: suite, HPKEPub: rec.PublicKey}
			return nil
		})
	}
	if err != nil {
		return nil, err
	}
	if to == nil {
		return nil, fmt.Errorf("%w: %s in %s (they must have joined and announced themselves)", ErrUnknownMember, fp, e.g.Name)
	}
	body, err := groupstate.SealDirect(e.g.ID, to, m.id.SigningKey(), []byte(text))
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	if m.groups[e.g.ID] != e {
		// Left (or reloaded) while the message was sealed outside the lock.
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrUnknownGroup, group)
	}
	now := time.Now()
	p, err := m.buildPayload(e, groupstate.KindDirect, body, now)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	msg := m.newMessage(e, p, envelope.ID{}, now)
	msg.Text, msg.To = text, fp
	env, err := m.sealOwn(e, p, msg)
	gid := e.g.ID
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return n.deliverOwn(ctx, gid, env)
}

// sendProfile announces this member's nickname and HPKE key to the group.
func (n *Node) sendProfile(ctx context.Context, gid groupstate.GroupID) (*SendResult, error) {
	if err := n.awaitRecovered(ctx); err != nil {
		return nil, err
	}
	m := n.member
	pub := m.id.Public()
	prof := &groupstate.Profile{KEM: pub.Suite.KEMID(), PublicKey: pub.HPKEPub}
	body, err := groupstate.MarshalProfile(prof)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	e, ok := m.groups[gid]
	if !ok {
		m.mu.Unlock()
		return nil, ErrUnknownGroup
	}
	p, err := m.buildPayload(e, groupstate.KindProfile, body, time.Now())
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	env, err := m.sealOwn(e, p, nil)
	if err == nil {
		// Record our own profile too, so Members lists us.
		rec, _ := json.Marshal(&profileRec{Nick: p.Nick, KEM: prof.KEM, PublicKey: prof.PublicKey})
		err = m.db.db.Update(func(txn *badger.Txn) error { return txn.Set(gkey(pfxProfile, gid, p.Author[:]), rec) })
	}
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return n.deliverOwn(ctx, gid, env)
}

// deliverOwn hands an own envelope, already recorded and queued
// (queueOwnTxn), to the outbox (outbox.go), which stores it locally and
// relays it to the group's hosts (or, in a group without hosts, to
// members met on its topic) and keeps trying until one stores it, then
// gossips it. Hosts go first: a host that receives an envelope by direct
// relay publishes it as its originator, which pubsub floods to every
// member subscribed at the host, including those not yet in its mesh; had
// the host first seen it by gossip, it would only forward it to mesh
// peers. The result is the first attempt's: stored, or pending (the
// outbox goes on), or failed.
func (n *Node) deliverOwn(ctx context.Context, gid groupstate.GroupID, env *envelope.Envelope) (*SendResult, error) {
	mb := env.Mailbox()
	if _, err := n.Deliver(ctx, env, n.h.ID()); err != nil && !errors.Is(err, store.ErrExpired) {
		// Queued all the same: the outbox tries the own store again, and
		// the hosts' copies do not depend on it.
		n.log.Warn("the own store refused an own envelope", "group", gid.Short(), "envelope", env.ID().Short(), "err", err)
	}
	res := n.member.outbox.submit(ctx, gid, env)
	if res.State == DeliveryPending {
		n.log.Info("no host stored an own envelope yet; the outbox keeps trying",
			"group", gid.Short(), "envelope", env.ID().Short())
	}
	if n.relay.Joined(mb) {
		if err := n.relay.Publish(ctx, env); err != nil {
			n.log.Info("could not gossip message", "group", gid.Short(), "err", err)
		}
		res.Gossiped = len(n.relay.TopicPeers(mb))
	}
	return res, nil
}
