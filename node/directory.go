package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnode/meshnode/contacts"
	"github.com/meshnode/meshnode/directory"
	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/keymgmt"
)

// connState is the node's share of connections (ARCHITECTURE §8): the
// directory service it runs as a host, and the member's contacts.
//
// Lock order: pollMu, then connState.mu, then member.mu (contacts code
// calls group code that takes member.mu); connState.mu is never taken
// with member.mu held. dirMu only guards dirHosted and is taken alone.
type connState struct {
	dir    *directory.Service // nil unless Params.Directory.Serve
	client *directory.Client
	// fullWarned is when a full quarantine was last logged (under mu).
	fullWarned time.Time

	dirMu sync.Mutex
	// dirHosted are the request mailboxes this node hosts because a
	// directory name lists them (and not for any other reason).
	dirHosted map[envelope.MailboxID]bool

	// pollMu serialises PollRequests (the contacts loop's and the API's):
	// two polls of one mailbox would read the same pages from the same
	// cursor, open every request twice and count the second as a replay.
	pollMu sync.Mutex
	// mu serialises contact operations' read-modify-writes of the member
	// database's contact records.
	mu sync.Mutex

	// dropped counts the requests the responder dropped, by reason
	// (requestDrop*); nil without a registerer.
	dropped *prometheus.CounterVec
	// proofMu guards proofDrops, the requests dropped per name since the
	// start for want of a valid proof of work. Taken alone.
	proofMu    sync.Mutex
	proofDrops map[string]uint64
	// welcomes is the member side of welcomes over connection groups
	// (contact_welcome.go), guarded by mu.
	welcomes contactWelcomes
}

// Reasons a request is dropped, the label of
// meshnode_contacts_requests_dropped_total.
const (
	requestDropMalformed = "malformed"     // not a request, or not sealed to a live package key
	requestDropNoProof   = "no_proof"      // the package asks for a proof and there is none
	requestDropBadProof  = "bad_proof"     // a proof that does not check out
	requestDropReplayed  = "replayed"      // a proof or establishment nonce seen before
	requestDropRefused   = "refused"       // valid, but stale, rejected, a contact already, or the quarantine is full
	requestDropInvalid   = "invalid"       // does not open or verify, or an unusable invite
	requestDropOther     = "other_mailbox" // a package of another mailbox
)

// countDrop counts a dropped request (and, for proofs, per name).
func (c *connState) countDrop(name, reason string) {
	if c.dropped != nil {
		c.dropped.WithLabelValues(reason).Inc()
	}
	if reason != requestDropNoProof && reason != requestDropBadProof {
		return
	}
	c.proofMu.Lock()
	c.proofDrops[name]++
	c.proofMu.Unlock()
}

// proofDropped is how many requests through name were dropped since the
// start for want of a valid proof of work.
func (c *connState) proofDropped(name string) uint64 {
	c.proofMu.Lock()
	defer c.proofMu.Unlock()
	return c.proofDrops[name]
}

// startConnections starts the directory service (if served) and, for a
// member, the contacts loop.
func (n *Node) startConnections(cfg *config) error {
	n.conn = &connState{
		client:     directory.NewClient(n.h, n.params.Directory.StreamTimeout),
		dirHosted:  map[envelope.MailboxID]bool{},
		proofDrops: map[string]uint64{},
	}
	if cfg.reg != nil && n.member != nil {
		n.conn.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "meshnode", Subsystem: "contacts",
			Name: "requests_dropped_total", Help: "Connection requests the responder dropped unanswered, by reason."}, []string{"reason"})
		if err := cfg.reg.Register(n.conn.dropped); err != nil {
			return fmt.Errorf("node: register contact metrics: %w", err)
		}
	}
	if p := n.params.Directory; p.Serve {
		dir := ""
		if n.params.Store.InMemory {
			p.InMemory = true
		} else {
			// The directory's own database lives inside the host data
			// directory; Badger ignores subdirectories of its own.
			dir = filepath.Join(cfg.dataDir, "directory")
		}
		svc, err := directory.NewService(n.h, dir, directory.WithParams(p),
			directory.WithLogger(cfg.log.With("component", "directory")), directory.WithAdmission(n.adm),
			directory.WithMailboxHook(n.directoryMailboxes))
		if err != nil {
			return err
		}
		n.conn.dir = svc
	}
	if n.member != nil {
		n.startContacts()
	}
	return nil
}

func (n *Node) closeConnections() error {
	if n.conn == nil || n.conn.dir == nil {
		return nil
	}
	return n.conn.dir.Close()
}

// Directory is the directory service this node runs (nil if it runs none).
func (n *Node) Directory() *directory.Service {
	if n.conn == nil {
		return nil
	}
	return n.conn.dir
}

// directoryMailboxes hosts the request mailboxes of live directory names
// (they are open to write, within the store's quotas and the relay's
// per-peer limits) and stops hosting them when no name lists them. A
// mailbox the node already hosted for another reason (its own groups, the
// allowlist) is left alone both ways, so a name cannot make the node drop
// one of its own mailboxes.
func (n *Node) directoryMailboxes(added, removed []envelope.MailboxID) {
	c := n.conn
	for _, m := range added {
		if n.Hosts(m) {
			continue
		}
		if err := n.HostMailbox(m); err != nil {
			if !errors.Is(err, ErrClosed) {
				// Dropped: the name still lives; the relay refuses its
				// requests until a restart hosts it again.
				n.log.Warn("could not host a request mailbox", "mailbox", m.Short(), "err", err)
			}
			continue
		}
		c.dirMu.Lock()
		c.dirHosted[m] = true
		c.dirMu.Unlock()
	}
	for _, m := range removed {
		c.dirMu.Lock()
		ours := c.dirHosted[m]
		delete(c.dirHosted, m)
		c.dirMu.Unlock()
		if !ours {
			continue
		}
		if err := n.DropMailbox(m); err != nil && !errors.Is(err, ErrClosed) {
			n.log.Info("could not stop hosting a request mailbox", "mailbox", m.Short(), "err", err)
		}
	}
}

// directoryHosts are the hosts names are published on and looked up at.
func (n *Node) directoryHosts() []string {
	if len(n.params.Contacts.DirectoryHosts) > 0 {
		return n.params.Contacts.DirectoryHosts
	}
	return n.params.Bootstrap
}

// publishName checks the name on each of its hosts and publishes a fresh
// set of packages where it is missing, running low or half expired (or
// everywhere, with force). It returns how many hosts hold live packages.
func (n *Node) publishName(ctx context.Context, rec *contacts.NameRec, force bool) (int, error) {
	m := n.member
	c := n.conn
	name := rec.KeyName()
	h := name.Hash()
	owner := m.id.DirectoryOwnerKey(h)
	p := n.params.Contacts
	now := time.Now()
	ais, err := parseHosts(rec.Hosts)
	if err != nil {
		return 0, err
	}
	// A fresh request mailbox when there is none or the newest one's
	// packages are half way to expiry.
	if k := len(rec.Mailboxes); k == 0 || now.After(rec.Mailboxes[k-1].Created.Add(p.PackageTTL/2)) {
		var seed [keymgmt.MailboxSeedSize]byte
		rand.Read(seed[:])
		rec.Mailboxes = append(rec.Mailboxes, contacts.MailboxRec{Seed: seed[:], Created: now})
		force = true
	}
	cur := &rec.Mailboxes[len(rec.Mailboxes)-1]
	if rec.Published == nil {
		rec.Published = map[string]time.Time{}
	}
	ok := 0
	var errs []error
	for i, ai := range ais {
		n.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
		if !force {
			st, err := c.client.Status(ctx, ai.ID, owner, h)
			if err == nil && st.Remaining > p.LowWater && time.Until(st.Expires) > p.PackageTTL/2 {
				ok++
				continue
			}
		}
		var signer *keymgmt.Identity
		if rec.Kind == keymgmt.NameUserID {
			signer = m.id
		}
		expires := now.Add(p.PackageTTL)
		var blobs [][]byte
		var secrets []contacts.SecretRec
		for range p.PackagesPerName {
			pkg, sec, err := keymgmt.NewConnPackage(rec.Kind, signer, m.id.Suite(), cur.MailboxSeed(), rec.ProofBits, now, expires)
			if err != nil {
				return ok, err
			}
			priv, err := sec.MarshalPrivate()
			if err != nil {
				return ok, err
			}
			blobs = append(blobs, name.SealBlob(pkg.Marshal()))
			secrets = append(secrets, contacts.SecretRec{Kind: rec.Kind, Name: rec.Name, Secret: priv,
				Mailbox: pkg.Mailbox().String(), Created: pkg.Created, Expires: pkg.Expires, ProofBits: pkg.ProofBits})
		}
		cur.Until = expires
		// Secrets first: a request may arrive as soon as a host hands
		// out a package.
		if err := n.cstore.PutSecrets(secrets); err != nil {
			return ok, err
		}
		var mbs []envelope.MailboxID
		for j := len(rec.Mailboxes) - 1; j >= 0 && len(mbs) < n.params.Directory.MaxMailboxes; j-- {
			if mb := rec.Mailboxes[j]; mb.Until.After(now) {
				mbs = append(mbs, keymgmt.RequestMailbox(mb.MailboxSeed()))
			}
		}
		err := c.client.Publish(ctx, ai.ID, &directory.Publication{Name: h, Owner: owner, Expires: expires, Mailboxes: mbs, Blobs: blobs})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", rec.Hosts[i], err))
			continue
		}
		rec.Published[rec.Hosts[i]] = now
		ok++
	}
	// Forget mailboxes nobody can use any more.
	keep := rec.Mailboxes[:0]
	for _, mb := range rec.Mailboxes {
		if mb.Until.IsZero() || now.Before(mb.Until.Add(p.MaxRequestAge)) {
			keep = append(keep, mb)
		}
	}
	rec.Mailboxes = keep
	return ok, errors.Join(errs...)
}
