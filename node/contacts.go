package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/contacts"
	"github.com/meshnode/meshnode/directory"
	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
)

// Contacts (ARCHITECTURE §8; the records, frame format, parameters and
// errors are package contacts'). A member publishes connection packages under
// its aliases and user ID on directory hosts (directory.go); an initiator
// fetches one, creates a two-member connection group hosted by that
// directory host and posts a sealed, signed establishment with an invite
// to it to the name's request mailbox. The responder's node fetches its
// request mailboxes, opens and checks what it finds and keeps valid
// requests in quarantine, where only the nick and fingerprint are ever
// shown; accepting joins the connection group, rejecting (or nothing)
// shows nothing more, ever. Contacts send each other invites to other
// groups as a text message in the connection group whose whole text is
// the invite (SendInvite, ContactInvites).
//
// The initiator's node could post to the connection group before the
// responder accepts; the responder reads nothing of it until it accepts.
//
// The member database records of contacts (namespace 'd') and their
// layout are package contacts' (records.go).

// startContacts publishes the user ID if asked and starts the loop that
// tops up names and fetches request mailboxes.
func (n *Node) startContacts() {
	n.wg.Add(1)
	go n.runContacts()
}

func (n *Node) runContacts() {
	defer n.wg.Done()
	p := n.params.Contacts
	refresh := time.NewTicker(p.RefreshInterval)
	defer refresh.Stop()
	poll := time.NewTicker(p.PollInterval)
	defer poll.Stop()
	// Messages in connection groups: key package offers and welcome
	// frames are acted on as they arrive (the poll tick catches what a
	// full buffer dropped).
	msgs, stopFollow, err := n.Follow(64)
	if err != nil {
		n.log.Error("following messages failed", "err", err)
		return
	}
	defer stopFollow()
	if p.PublishUserID && len(n.directoryHosts()) > 0 {
		if err := n.ensureUserID(); err != nil && n.ctx.Err() == nil {
			n.log.Warn("could not record the user ID for publishing", "err", err)
		}
	}
	n.refreshNames()
	n.pollQuietly()
	n.contactsTick("")
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-refresh.C:
			n.refreshNames()
			n.pruneContacts()
			if _, err := n.pruneKeyPackages(time.Now()); err != nil && n.ctx.Err() == nil {
				// Dropped: the next refresh prunes again.
				n.log.Warn("pruning expired key packages failed", "err", err)
			}
		case <-poll.C:
			n.pollQuietly()
			n.contactsTick("")
		case msg, ok := <-msgs:
			if !ok {
				return
			}
			// Coalesce a burst (the frames of one welcome) into one pass
			// per connection group.
			groups := map[string]bool{}
			for more := true; more; {
				if !msg.Own {
					groups[msg.Group] = true
				}
				select {
				case msg, more = <-msgs:
				default:
					more = false
				}
			}
			for g := range groups {
				if n.isContactGroup(g) {
					n.contactsTick(g)
				}
			}
		}
	}
}

func (n *Node) pollQuietly() {
	ctx, cancel := context.WithTimeout(n.ctx, n.params.Contacts.PollInterval)
	defer cancel()
	if _, err := n.PollRequests(ctx); err != nil && n.ctx.Err() == nil {
		// Dropped: the next poll retries.
		n.log.Info("polling request mailboxes failed", "err", err)
	}
}

// ensureUserID records the user ID as a published name.
func (n *Node) ensureUserID() error {
	c := n.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	name := keymgmt.UserIDName(n.member.id.SigningKey())
	bits := n.params.Contacts.UserIDProofBits
	rec, err := n.cstore.Name(name.Canonical)
	if err != nil || (rec != nil && rec.ProofBits == bits) {
		return err
	}
	if rec != nil {
		// The difficulty changed (Contacts.UserIDProofBits): as for an
		// alias (SetAliasProofBits), republished at once.
		ctx, cancel := context.WithTimeout(n.ctx, time.Minute)
		defer cancel()
		return n.setProofBits(ctx, rec, bits)
	}
	return n.cstore.PutName(&contacts.NameRec{Kind: name.Kind, Name: name.Canonical, Hosts: n.directoryHosts(), Created: time.Now().UTC(), ProofBits: bits})
}

// refreshNames tops up every name on its hosts.
func (n *Node) refreshNames() {
	c := n.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	recs, err := n.cstore.Names()
	if err != nil {
		n.log.Error("reading names failed", "err", err)
		return
	}
	for _, rec := range recs {
		ctx, cancel := context.WithTimeout(n.ctx, time.Minute)
		_, err := n.publishName(ctx, rec, false)
		cancel()
		if err != nil && n.ctx.Err() == nil {
			// Dropped: retried at the next refresh.
			n.log.Info("could not refresh a name on every host", "kind", rec.Kind, "err", err)
		}
		if err := n.cstore.PutName(rec); err != nil {
			n.log.Error("saving a name failed", "err", err)
		}
	}
}

// AddAlias publishes connection packages under an alias on the given
// directory hosts (none: the configured ones). Requests through it must
// carry a proof of work (contacts.WithProofBits; default
// Params.Contacts.AliasProofBits).
func (n *Node) AddAlias(ctx context.Context, alias string, hosts []string, opts ...contacts.AliasOption) (*contacts.AliasInfo, error) {
	if _, err := n.mem(); err != nil {
		return nil, err
	}
	name, err := keymgmt.ParseAlias(alias)
	if err != nil {
		return nil, err
	}
	cfg := contacts.AliasConfig{ProofBits: int(n.params.Contacts.AliasProofBits)}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.ProofBits < 0 || cfg.ProofBits > keymgmt.MaxProofBits {
		return nil, fmt.Errorf("%w: proof of work of %d bits; use 0 (none) to %d", keymgmt.ErrInvalidParams, cfg.ProofBits, keymgmt.MaxProofBits)
	}
	if len(hosts) == 0 {
		hosts = n.directoryHosts()
	}
	if len(hosts) == 0 {
		return nil, contacts.ErrNoDirectoryHosts
	}
	if _, err := parseHosts(hosts); err != nil {
		return nil, err
	}
	c := n.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, err := n.cstore.Name(name.Canonical); err != nil {
		return nil, err
	} else if old != nil {
		return nil, fmt.Errorf("%w: %s", contacts.ErrAliasExists, name.Canonical)
	}
	rec := &contacts.NameRec{Kind: name.Kind, Name: name.Canonical, Hosts: hosts, Created: time.Now().UTC(), ProofBits: uint8(cfg.ProofBits)}
	ok, perr := n.publishName(ctx, rec, true)
	if ok == 0 {
		return nil, fmt.Errorf("%w: %w", contacts.ErrNotPublished, perr)
	}
	if perr != nil {
		n.log.Info("alias not published on every host", "err", perr)
	}
	if err := n.cstore.PutName(rec); err != nil {
		return nil, err
	}
	return n.aliasInfo(rec), nil
}

func (n *Node) aliasInfo(rec *contacts.NameRec) *contacts.AliasInfo {
	return &contacts.AliasInfo{Name: rec.Name, Kind: rec.Kind.String(), Hosts: append([]string{}, rec.Hosts...),
		Published: len(rec.Published), Created: rec.Created,
		ProofBits: int(rec.ProofBits), DroppedNoProof: n.conn.proofDropped(rec.Name)}
}

// Aliases lists the member's aliases (not its user ID).
func (n *Node) Aliases() ([]contacts.AliasInfo, error) {
	if _, err := n.mem(); err != nil {
		return nil, err
	}
	recs, err := n.cstore.Names()
	if err != nil {
		return nil, err
	}
	out := []contacts.AliasInfo{}
	for _, rec := range recs {
		if rec.Kind == keymgmt.NameAlias {
			out = append(out, *n.aliasInfo(rec))
		}
	}
	return out, nil
}

// SetAliasProofBits changes the proof of work (0..keymgmt.MaxProofBits
// leading zero bits; 0 asks for none) that requests through an alias must
// carry, and republishes the alias's packages at once so that every
// package hosts hand out from now on asks for it. Raising it also applies
// to the packages already handed out: requests made with them that carry
// a weaker proof are dropped, unanswered like any other (raising it is
// what one does under a flood). Lowering it applies to new packages only;
// requests through older ones must still carry the proof those asked for.
// Errors: contacts.ErrUnknownAlias, keymgmt.ErrInvalidParams, contacts.ErrNotPublished (no
// host took the new packages; the next refresh tries again).
func (n *Node) SetAliasProofBits(ctx context.Context, alias string, bits int) (*contacts.AliasInfo, error) {
	if _, err := n.mem(); err != nil {
		return nil, err
	}
	name, err := keymgmt.ParseAlias(alias)
	if err != nil {
		return nil, err
	}
	if bits < 0 || bits > keymgmt.MaxProofBits {
		return nil, fmt.Errorf("%w: proof of work of %d bits; use 0 (none) to %d", keymgmt.ErrInvalidParams, bits, keymgmt.MaxProofBits)
	}
	c := n.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	rec, err := n.cstore.Name(name.Canonical)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("%w: %s", contacts.ErrUnknownAlias, name.Canonical)
	}
	if err := n.setProofBits(ctx, rec, uint8(bits)); err != nil {
		return nil, err
	}
	return n.aliasInfo(rec), nil
}

// setProofBits records a name's new difficulty, raises that of its live
// package secrets if it went up, and republishes. Call with conn.mu held.
func (n *Node) setProofBits(ctx context.Context, rec *contacts.NameRec, bits uint8) error {
	if rec.ProofBits == bits {
		return nil
	}
	raised := bits > rec.ProofBits
	rec.ProofBits = bits
	if err := n.cstore.PutName(rec); err != nil {
		return err
	}
	if raised {
		if err := n.cstore.RaiseProofBits(rec, bits); err != nil {
			return err
		}
	}
	ok, perr := n.publishName(ctx, rec, true)
	if err := n.cstore.PutName(rec); err != nil {
		return err
	}
	if ok == 0 {
		return fmt.Errorf("%w: %w", contacts.ErrNotPublished, perr)
	}
	if perr != nil {
		n.log.Info("alias not republished on every host", "err", perr)
	}
	return nil
}

// RemoveAlias withdraws an alias from its hosts (best effort) and forgets
// it and its package secrets: requests sent through it are not read.
func (n *Node) RemoveAlias(ctx context.Context, alias string) error {
	if _, err := n.mem(); err != nil {
		return err
	}
	name, err := keymgmt.ParseAlias(alias)
	if err != nil {
		return err
	}
	c := n.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	rec, err := n.cstore.Name(name.Canonical)
	if err != nil {
		return err
	}
	if rec == nil {
		return fmt.Errorf("%w: %s", contacts.ErrUnknownAlias, name.Canonical)
	}
	owner := n.member.id.DirectoryOwnerKey(name.Hash())
	ais, _ := parseHosts(rec.Hosts)
	for _, ai := range ais {
		n.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
		if err := c.client.Remove(ctx, ai.ID, owner, name.Hash()); err != nil && !errors.Is(err, directory.ErrUnknownName) {
			// Dropped: the packages expire on that host by themselves.
			n.log.Info("could not withdraw an alias from a host", "host", ai.ID, "err", err)
		}
	}
	return n.cstore.DeleteName(rec)
}

// pruneContacts forgets package secrets, nonces and proof digests older
// than MaxRequestAge past their use, requests left unanswered in
// quarantine for MaxRequestAge (so requests from strangers cannot fill it
// for good), and the cursors of request mailboxes no name lists any more.
func (n *Node) pruneContacts() {
	c := n.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	age := n.params.Contacts.MaxRequestAge
	recs, err := n.cstore.Names()
	if err != nil {
		n.log.Warn("pruning contact records failed", "err", err)
		return
	}
	live := map[string]bool{}
	for _, rec := range recs {
		for _, mb := range rec.Mailboxes {
			live[keymgmt.RequestMailbox(mb.MailboxSeed()).String()] = true
		}
	}
	err = n.cstore.Prune(now, age, live)
	if err != nil {
		n.log.Warn("pruning contact records failed", "err", err)
	}
}

// RequestContact asks the person published under name (an alias or a
// user ID) to connect: it fetches one of their packages from a directory
// host, creates the connection group and posts the sealed establishment
// to their request mailbox on that host. The contact shows as "pending"
// until they accept. The directory hosts are the given ones (multiaddrs
// with /p2p/), else Params.Contacts.DirectoryHosts, else the bootstrap
// peers.
func (n *Node) RequestContact(ctx context.Context, nameText string, directoryHosts ...string) (*contacts.Contact, error) {
	m, err := n.mem()
	if err != nil {
		return nil, err
	}
	name, err := keymgmt.ParseName(nameText)
	if err != nil {
		return nil, err
	}
	if name == keymgmt.UserIDName(m.id.SigningKey()) {
		return nil, contacts.ErrSelfContact
	}
	hosts := n.directoryHosts()
	if len(directoryHosts) > 0 {
		hosts = directoryHosts
	}
	ais, err := parseHosts(hosts)
	if err != nil {
		return nil, err
	}
	if len(ais) == 0 {
		return nil, contacts.ErrNoDirectoryHosts
	}
	var lastErr error = contacts.ErrUnknownName
	for i, ai := range ais {
		n.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
		pkg, err := n.fetchPackage(ctx, ai.ID, name)
		if err != nil {
			if !errors.Is(err, contacts.ErrUnknownName) || errors.Is(lastErr, contacts.ErrUnknownName) {
				lastErr = err
			}
			continue
		}
		return n.establish(ctx, hosts[i], ai.ID, name, pkg)
	}
	return nil, lastErr
}

// fetchPackage fetches, opens and checks a package of name from host p.
func (n *Node) fetchPackage(ctx context.Context, p peer.ID, name keymgmt.Name) (*keymgmt.ConnPackage, error) {
	blob, err := n.conn.client.Fetch(ctx, p, name.Hash())
	if errors.Is(err, directory.ErrUnknownName) {
		return nil, fmt.Errorf("%w: %s %q", contacts.ErrUnknownName, name.Kind, name.Canonical)
	}
	if err != nil {
		return nil, err
	}
	b, err := name.OpenBlob(blob)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", contacts.ErrBadPackage, err)
	}
	pkg, err := keymgmt.ParseConnPackage(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", contacts.ErrBadPackage, err)
	}
	if err := pkg.CheckFor(name, time.Now()); err != nil {
		if errors.Is(err, keymgmt.ErrExpired) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", contacts.ErrBadPackage, err)
	}
	return pkg, nil
}

// establish creates the connection group and sends the establishment.
func (n *Node) establish(ctx context.Context, hostAddr string, hostID peer.ID, name keymgmt.Name, pkg *keymgmt.ConnPackage) (*contacts.Contact, error) {
	m := n.member
	gname := "contact " + name.Canonical
	if len(gname) > groupstate.MaxNameLen {
		gname = gname[:groupstate.MaxNameLen]
	}
	g, err := groupstate.NewGroup(gname, []string{hostAddr})
	if err != nil {
		return nil, err
	}
	invite, err := groupstate.NewInvite(g, true)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	nick := m.nick
	m.mu.Unlock()
	est, err := m.id.NewEstablishment(pkg, nick, invite, time.Now())
	if err != nil {
		return nil, err
	}
	// Solving the proof of work the package asks for, if any, is most of
	// the cost of a request (see keymgmt.DefaultAliasProofBits).
	ct, err := keymgmt.SealRequest(ctx, pkg, est)
	if err != nil {
		return nil, err
	}
	// The envelope nonce carries nothing (HPKE needs none); it is random so
	// it says nothing either.
	nonce := make([]byte, envelope.NonceSize)
	rand.Read(nonce)
	env, err := envelope.Seal(pkg.MailboxKey(), nonce, ct, n.params.Relay.MaxEnvelopeSize)
	if err != nil {
		return nil, err
	}
	if err := n.Remote(hostID).RelayMessageToGroup(ctx, pkg.Mailbox(), env); err != nil {
		return nil, fmt.Errorf("node: post the connection request: %w", err)
	}
	// The group exists for us only once the request is out, so a failure
	// above leaves nothing behind.
	if _, err := n.addGroupNick(ctx, g, ""); err != nil {
		return nil, err
	}
	rec := &contacts.ContactRec{Group: g.ID.String(), Via: name.Canonical, Initiated: true, Since: time.Now().UTC()}
	if name.Kind == keymgmt.NameUserID {
		rec.Fingerprint = name.Canonical
	}
	if err := n.cstore.PutContact(rec); err != nil {
		return nil, err
	}
	return n.contactView(rec)
}

// contactView computes a contact's state from its connection group.
func (n *Node) contactView(rec *contacts.ContactRec) (*contacts.Contact, error) {
	ct := &contacts.Contact{Group: rec.Group, Fingerprint: rec.Fingerprint, Nick: rec.Nick, Via: rec.Via,
		Initiated: rec.Initiated, Since: rec.Since, State: "pending"}
	members, err := n.Members(rec.Group)
	if err != nil {
		return nil, err
	}
	for _, mi := range members {
		if mi.Self {
			continue
		}
		switch {
		case rec.Fingerprint == "" || mi.Fingerprint == rec.Fingerprint:
			ct.State, ct.Fingerprint, ct.Nick = "connected", mi.Fingerprint, mi.Nick
		default:
			ct.State = "mismatch"
		}
		if ct.State == "mismatch" {
			break
		}
	}
	return ct, nil
}

// Contacts lists contacts, requested ones included.
func (n *Node) Contacts() ([]contacts.Contact, error) {
	if _, err := n.mem(); err != nil {
		return nil, err
	}
	recs, err := n.cstore.Contacts()
	if err != nil {
		return nil, err
	}
	out := []contacts.Contact{}
	for _, rec := range recs {
		ct, err := n.contactView(rec)
		if errors.Is(err, ErrUnknownGroup) {
			continue // the group was left
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *ct)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Since.Before(out[j].Since) })
	return out, nil
}

// contact finds a contact by group ID, fingerprint or nick.
func (n *Node) contact(s string) (*contacts.Contact, error) {
	all, err := n.Contacts()
	if err != nil {
		return nil, err
	}
	s = strings.TrimSpace(s)
	fp, _ := keymgmt.ParseFingerprint(s)
	var found *contacts.Contact
	for i, c := range all {
		if c.Group == s || (fp != "" && c.Fingerprint == fp) || (c.Nick != "" && c.Nick == s) || c.Via == s {
			if found != nil && found.Group != c.Group {
				return nil, fmt.Errorf("%w: %q matches several contacts; use the group ID", contacts.ErrUnknownContact, s)
			}
			found = &all[i]
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: %q", contacts.ErrUnknownContact, s)
	}
	return found, nil
}

// SendInvite sends a contact an invite to one of the member's groups over
// their connection group (the whole text of the message is the invite).
func (n *Node) SendInvite(ctx context.Context, contact, group string) (*SendResult, error) {
	ct, err := n.contact(contact)
	if err != nil {
		return nil, err
	}
	if ct.State != "connected" {
		return nil, fmt.Errorf("%w: %s has not accepted yet", contacts.ErrUnknownContact, contact)
	}
	invite, err := n.Invite(group)
	if err != nil {
		return nil, err
	}
	return n.Send(ctx, ct.Group, invite)
}

// ContactInvites returns the invites a contact sent over the connection
// group, oldest first.
func (n *Node) ContactInvites(contact string) ([]string, error) {
	ct, err := n.contact(contact)
	if err != nil {
		return nil, err
	}
	msgs, err := n.Messages(ct.Group, 0)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, msg := range msgs {
		if msg.Own || msg.Kind != groupstate.KindText.String() || !strings.HasPrefix(msg.Text, groupstate.InvitePrefix) {
			continue
		}
		if _, err := groupstate.ParseInvite(msg.Text); err == nil {
			out = append(out, msg.Text)
		}
	}
	return out, nil
}
