package node

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
	"github.com/meshnode/meshnode/store"
)

// Joining a managed group (ARCHITECTURE §7). A person shares a key package
// (NewKeyPackage: the identity's public keys and nickname, signed, with an
// expiry); a manager adds it and posts the welcome, sealed to it, to the
// key package's welcome mailbox (groupstate.WelcomeMailbox) through the
// group's hosts, which see an ordinary mailbox. This node keeps each own
// key package until its welcome arrives ('K', see memberdb.go): it hosts
// the welcome mailbox (so gossip on its topic reaches it), fetches it
// from the hosts named when the key package was made and from its
// bootstrap peers, and opens what arrives (groupstate.OpenWelcome). A
// verified welcome makes the group: its record and chain are stored, its
// mailboxes hosted and caught up, and who welcomed the member is shown.
//
// One key package answers one welcome: use a fresh one per group, so
// welcome mailboxes are not linkable to each other.

// DefaultKeyPackageTTL is how long a new key package is valid.
const DefaultKeyPackageTTL = 7 * 24 * time.Hour

// keyPackageGrace is how long after its expiry a key package is still
// watched for a welcome (the add must happen before the expiry; the
// welcome may take longer to arrive).
const keyPackageGrace = 7 * 24 * time.Hour

// maxWelcomeEnvelopes bounds what is read of one welcome mailbox.
const maxWelcomeEnvelopes = 4 * groupstate.MaxWelcomeParts

// KeyPackageInfo describes an own key package awaiting its welcome.
type KeyPackageInfo struct {
	// KeyPackage is the text to give a group's manager.
	KeyPackage  string    `json:"key_package"`
	Fingerprint string    `json:"fingerprint"`
	Nick        string    `json:"nick"`
	Expires     time.Time `json:"expires"`
	// Hosts are where this node looks for the welcome (besides its
	// bootstrap peers and its own store).
	Hosts []string `json:"hosts"`
}

// pendingKeyPackage is an own key package whose welcome is awaited. The
// JSON fields are its record ('K').
type pendingKeyPackage struct {
	Text    string    `json:"key_package"`
	Hosts   []string  `json:"hosts,omitempty"`
	Created time.Time `json:"created"`

	kp      *keymgmt.KeyPackage
	hash    [32]byte
	mailbox envelope.MailboxID
	// tried is how many envelopes of the welcome mailbox were last tried.
	tried   int
	joining bool
	cursors map[peer.ID]store.Cursor
}

func (p *pendingKeyPackage) info() KeyPackageInfo {
	return KeyPackageInfo{KeyPackage: p.Text, Fingerprint: p.kp.Identity.Fingerprint(), Nick: p.kp.Nick,
		Expires: p.kp.Expires, Hosts: append([]string{}, p.Hosts...)}
}

// NewKeyPackage makes a key package valid for ttl (0: DefaultKeyPackageTTL)
// and watches for its welcome, fetching it from hosts (multiaddrs with
// /p2p/, usually the group's hosts) and the bootstrap peers.
func (n *Node) NewKeyPackage(ctx context.Context, ttl time.Duration, hosts []string) (*KeyPackageInfo, error) {
	m, err := n.mem()
	if err != nil {
		return nil, err
	}
	if _, err := parseHosts(hosts); err != nil {
		return nil, err
	}
	if ttl == 0 {
		ttl = DefaultKeyPackageTTL
	}
	kp, err := m.id.NewKeyPackage(m.defaultNick(), ttl)
	if err != nil {
		return nil, err
	}
	p, err := newPending(kp.String(), hosts, time.Now().UTC(), time.Now())
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	err = m.db.db.Update(func(txn *badger.Txn) error { return txn.Set(append([]byte{pfxKeyPackage}, p.hash[:]...), b) })
	if err == nil {
		m.pendingKPs()[p.hash] = p
	}
	m.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("node: save key package: %w", err)
	}
	if err := n.watchWelcome(p); err != nil {
		return nil, err
	}
	n.connectHosts(ctx, hosts)
	m.kickManager()
	info := p.info()
	return &info, nil
}

func newPending(text string, hosts []string, created, now time.Time) (*pendingKeyPackage, error) {
	kp, err := keymgmt.ParseKeyPackage(text, now)
	if err != nil {
		return nil, err
	}
	keys, err := groupstate.WelcomeMailbox(kp)
	if err != nil {
		return nil, err
	}
	return &pendingKeyPackage{Text: text, Hosts: hosts, Created: created, kp: kp,
		hash: sha256.Sum256(kp.Marshal()), mailbox: keys.Mailbox, cursors: map[peer.ID]store.Cursor{}}, nil
}

// decodePendingKP decodes a pending key package record ('K'). The key
// package is parsed as of its creation: expiry is the caller's to judge.
func decodePendingKP(b []byte) (*pendingKeyPackage, error) {
	var rec pendingKeyPackage
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("%w: key package record: %v", ErrCorrupt, err)
	}
	p, err := newPending(rec.Text, rec.Hosts, rec.Created, rec.Created)
	if err != nil {
		return nil, fmt.Errorf("%w: key package record: %v", ErrCorrupt, err)
	}
	if _, err := parseHosts(p.Hosts); err != nil {
		return nil, fmt.Errorf("%w: key package record: %v", ErrCorrupt, err)
	}
	return p, nil
}

// KeyPackages lists the own key packages still awaiting a welcome.
func (n *Node) KeyPackages() ([]KeyPackageInfo, error) {
	m, err := n.mem()
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []KeyPackageInfo{}
	for _, p := range m.pendingKPs() {
		out = append(out, p.info())
	}
	slices.SortFunc(out, func(a, b KeyPackageInfo) int { return a.Expires.Compare(b.Expires) })
	return out, nil
}

func (m *member) pendingKPs() map[[32]byte]*pendingKeyPackage {
	if m.mg.kps == nil {
		m.mg.kps = map[[32]byte]*pendingKeyPackage{}
	}
	return m.mg.kps
}

// watchWelcome hosts a key package's welcome mailbox, so what the hosts
// relay or gossip to it lands in the own store.
func (n *Node) watchWelcome(p *pendingKeyPackage) error {
	ais, _ := parseHosts(p.Hosts)
	ids := make([]peer.ID, 0, len(ais))
	for _, ai := range ais {
		ids = append(ids, ai.ID)
		n.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
	}
	n.mu.Lock()
	n.namedHosts[p.mailbox] = ids
	n.mu.Unlock()
	return n.HostMailbox(p.mailbox)
}

// loadKeyPackages reads the pending key packages at start, dropping those
// past their grace period.
func (n *Node) loadKeyPackages() error {
	m := n.member
	now := time.Now()
	var stale [][]byte
	var loaded []*pendingKeyPackage
	err := m.db.scan([]byte{pfxKeyPackage}, func(k, v []byte) error {
		p, err := decodePendingKP(v)
		if err != nil {
			return err
		}
		if now.After(p.kp.Expires.Add(keyPackageGrace)) {
			stale = append(stale, k)
			return nil
		}
		loaded = append(loaded, p)
		return nil
	})
	if err != nil {
		return err
	}
	if len(stale) > 0 {
		if err := m.db.db.Update(func(txn *badger.Txn) error {
			for _, k := range stale {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	m.mu.Lock()
	for _, p := range loaded {
		m.pendingKPs()[p.hash] = p
	}
	m.mu.Unlock()
	for _, p := range loaded {
		if err := n.watchWelcome(p); err != nil {
			return err
		}
	}
	return nil
}

// checkWelcomes tries to open the welcome of every pending key package
// whose mailbox received envelopes since the last try; a verified one is
// joined in the background.
func (n *Node) checkWelcomes() {
	m := n.member
	m.mu.Lock()
	pending := make([]*pendingKeyPackage, 0, len(m.mg.kps))
	for _, p := range m.mg.kps {
		if !p.joining {
			pending = append(pending, p)
		}
	}
	m.mu.Unlock()
	for _, p := range pending {
		envs, err := n.readMailbox(p.mailbox, maxWelcomeEnvelopes)
		if err != nil {
			n.log.Warn("reading a welcome mailbox failed", "err", err)
			continue
		}
		m.mu.Lock()
		fresh := len(envs) != p.tried
		p.tried = len(envs)
		m.mu.Unlock()
		if !fresh || len(envs) == 0 {
			continue
		}
		j, err := groupstate.OpenWelcome(m.id, p.kp, envs)
		if errors.Is(err, groupstate.ErrWelcomeIncomplete) {
			continue
		}
		if err != nil {
			// Dropped: anyone holding the key package can post to its
			// mailbox; a welcome that does not verify is ignored.
			n.log.Info("welcome rejected", "reason", err)
			m.mu.Lock()
			m.mg.rejections = append(m.mg.rejections, Rejection{Reason: "welcome: " + err.Error(), At: time.Now().UTC()})
			m.mu.Unlock()
			continue
		}
		m.mu.Lock()
		if p.joining || n.ctx.Err() != nil {
			m.mu.Unlock()
			continue
		}
		p.joining = true
		m.mu.Unlock()
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := n.joinWelcomed(j, p); err != nil && n.ctx.Err() == nil {
				n.log.Error("joining a welcomed group failed", "group", j.Group.ID.Short(), "err", err)
				m.mu.Lock()
				p.joining = false
				p.tried = 0
				m.mu.Unlock()
			}
		}()
	}
}

// readMailbox reads up to max envelopes of a mailbox from the own store.
func (n *Node) readMailbox(mb envelope.MailboxID, max int) ([]*envelope.Envelope, error) {
	var out []*envelope.Envelope
	var cur store.Cursor
	for len(out) < max {
		pg, err := n.st.Page(mb, cur, min(processPage, max-len(out)), 8<<20)
		if err != nil {
			return out, err
		}
		out = append(out, pg.Envelopes...)
		if !pg.More || len(pg.Next) == 0 {
			break
		}
		cur = pg.Next
	}
	return out, nil
}

// joinWelcomed stores a welcomed group, forgets the key package, shows who
// welcomed the member and catches the group up.
func (n *Node) joinWelcomed(j *groupstate.Joined, p *pendingKeyPackage) error {
	m := n.member
	ctx, cancel := context.WithTimeout(n.ctx, time.Minute)
	defer cancel()
	m.mu.Lock()
	_, exists := m.groups[j.Group.ID]
	m.mu.Unlock()
	rejoined := false
	if !exists {
		if _, err := n.addGroup(ctx, j.Group, j.Chain, p.kp.Nick); err != nil {
			return err
		}
	} else {
		var err error
		if rejoined, err = n.rejoin(j); err != nil {
			return err
		}
	}
	m.mu.Lock()
	delete(m.mg.kps, p.hash)
	_, ok := m.groups[j.Group.ID]
	now := time.Now().UTC()
	err := m.db.db.Update(func(txn *badger.Txn) error {
		if err := txn.Delete(append([]byte{pfxKeyPackage}, p.hash[:]...)); err != nil {
			return err
		}
		if !ok || exists && !rejoined {
			return nil
		}
		by := j.WelcomedBy
		id, what := "welcome-"+j.Group.ID.String(), "welcomed you to"
		if rejoined {
			id, what = "welcome-again-"+j.Group.ID.String()+"-"+j.Chain.Head().Short(), "welcomed you back to"
		}
		notice := &Message{
			ID: id, Group: j.Group.ID.String(), GroupName: j.Group.Name,
			Author: by.Fingerprint(), Nick: by.Nick, Kind: KindEvent, Sent: now, Received: now,
			Verified: true, Epoch: j.Group.Epoch,
			Text: fmt.Sprintf("%s %q as %s (history: %s)", what, j.Group.Name, j.Role, j.Group.History),
		}
		b, err := json.Marshal(notice)
		if err != nil {
			return err
		}
		m.notifyLocked(*notice)
		return txn.Set(messageKey(j.Group.ID, now.UnixMilli(), 0, envelope.ID(sha256.Sum256([]byte(notice.ID)))), b)
	})
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("node: record the welcome: %w", err)
	}
	if err := n.DropMailbox(p.mailbox); err != nil {
		n.log.Info("could not stop watching a welcome mailbox", "err", err)
	}
	if j.Group.CanWrite() {
		if _, err := n.sendProfile(ctx, j.Group.ID); err != nil {
			n.log.Warn("could not announce profile", "group", j.Group.ID.Short(), "err", err)
		}
	}
	n.catchUpAsync(j.Group.ID)
	return nil
}

// fetchWelcomes fetches the welcome mailboxes of the pending key packages
// from their hosts, the bootstrap peers and the peers on their topics.
func (n *Node) fetchWelcomes(ctx context.Context) {
	m := n.member
	m.mu.Lock()
	var pending []*pendingKeyPackage
	for _, p := range m.mg.kps {
		if !p.joining {
			pending = append(pending, p)
		}
	}
	m.mu.Unlock()
	got := 0
	for _, p := range pending {
		sources := n.catchUpSources(append(slices.Clone(p.Hosts), n.params.Bootstrap...), []envelope.MailboxID{p.mailbox})
		for _, src := range sources {
			m.mu.Lock()
			cur := p.cursors[src]
			m.mu.Unlock()
			save := func(pg store.Page) error {
				for _, env := range pg.Envelopes {
					if _, err := n.Deliver(ctx, env, src); err != nil && !errors.Is(err, store.ErrExpired) {
						return err
					}
				}
				if len(pg.Next) > 0 {
					m.mu.Lock()
					p.cursors[src] = pg.Next
					m.mu.Unlock()
				}
				return nil
			}
			_, k, err := n.fetchCl.CatchUp(ctx, src, p.mailbox, cur, save)
			got += k
			if err != nil && ctx.Err() == nil {
				n.log.Debug("fetching a welcome mailbox failed", "host", src, "err", err)
			}
		}
	}
	if got > 0 {
		n.checkWelcomes()
	}
}

// forgetKeyPackage stops waiting for the welcome of the own key package
// hash: its record and its welcome mailbox go. A key package whose
// welcome is being joined is left alone. It reports whether it was
// forgotten (false also when it was not pending).
func (n *Node) forgetKeyPackage(hash [32]byte) (bool, error) {
	m := n.member
	m.mu.Lock()
	p := m.mg.kps[hash]
	if p == nil || p.joining {
		m.mu.Unlock()
		return false, nil
	}
	err := m.db.db.Update(func(txn *badger.Txn) error { return txn.Delete(append([]byte{pfxKeyPackage}, hash[:]...)) })
	if err == nil {
		delete(m.mg.kps, hash)
	}
	m.mu.Unlock()
	if err != nil {
		return false, fmt.Errorf("node: forget a key package: %w", err)
	}
	n.mu.Lock()
	delete(n.namedHosts, p.mailbox)
	n.mu.Unlock()
	if err := n.DropMailbox(p.mailbox); err != nil && !errors.Is(err, ErrClosed) {
		// Dropped: nothing opens what still arrives there.
		n.log.Info("could not stop watching a welcome mailbox", "err", err)
	}
	return true, nil
}

// pruneKeyPackages forgets, while the node runs, the own key packages
// past their grace period (loadKeyPackages does the same at start). It
// returns how many it forgot.
func (n *Node) pruneKeyPackages(now time.Time) (int, error) {
	m := n.member
	m.mu.Lock()
	var stale [][32]byte
	for h, p := range m.mg.kps {
		if now.After(p.kp.Expires.Add(keyPackageGrace)) {
			stale = append(stale, h)
		}
	}
	m.mu.Unlock()
	forgotten := 0
	for _, h := range stale {
		ok, err := n.forgetKeyPackage(h)
		if err != nil {
			return forgotten, err
		}
		if ok {
			forgotten++
		}
	}
	return forgotten, nil
}
