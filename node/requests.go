package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/contacts"
	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
	"github.com/meshnode/meshnode/store"
)

// The responder side of contacts: polling request mailboxes, the
// quarantine of requests, and accepting or rejecting them.

// PollRequests fetches every request mailbox from its directory hosts and
// quarantines the valid requests found. It returns how many new requests
// were quarantined.
func (n *Node) PollRequests(ctx context.Context) (int, error) {
	if _, err := n.mem(); err != nil {
		return 0, err
	}
	c := n.conn
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	c.mu.Lock()
	recs, err := n.cstore.Names()
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	age := n.params.Contacts.MaxRequestAge
	now := time.Now()
	total := 0
	var errs []error
	for _, rec := range recs {
		ais, _ := parseHosts(rec.Hosts)
		for _, mb := range rec.Mailboxes {
			if !mb.Until.IsZero() && now.After(mb.Until.Add(age)) {
				continue
			}
			tag := keymgmt.RequestMailbox(mb.MailboxSeed())
			for _, ai := range ais {
				n.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
				got, err := n.pollMailbox(ctx, ai.ID, tag)
				total += got
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", ai.ID, err))
				}
			}
		}
	}
	return total, errors.Join(errs...)
}

// pollMailbox pages through one request mailbox on p from the saved
// cursor, handling each envelope and saving the cursor page by page.
func (n *Node) pollMailbox(ctx context.Context, p peer.ID, mb envelope.MailboxID) (int, error) {
	cur, err := n.cstore.Cursor(p.String(), mb.String())
	if err != nil {
		return 0, err
	}
	added := 0
	save := func(pg store.Page) error {
		c := n.conn
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, env := range pg.Envelopes {
			ok, err := n.quarantine(env, mb)
			if err != nil {
				return err
			}
			if ok {
				added++
			}
		}
		if len(pg.Next) == 0 {
			return nil
		}
		return n.cstore.PutCursor(p.String(), mb.String(), pg.Next)
	}
	_, _, err = n.fetchCl.CatchUp(ctx, p, mb, store.Cursor(cur), save)
	if errors.Is(err, store.ErrUnknownCursor) || errors.Is(err, store.ErrExpiredCursor) {
		// Start over; the nonce cache drops what was already read.
		_, _, err = n.fetchCl.CatchUp(ctx, p, mb, nil, save)
	}
	return added, err
}

// hostsOfName reports whether every host (multiaddr with /p2p/) is one the
// name is published on, by peer ID.
func (n *Node) hostsOfName(name string, hosts []string) (bool, error) {
	rec, err := n.cstore.Name(name)
	if err != nil || rec == nil {
		return false, err
	}
	published, err := parseHosts(rec.Hosts)
	if err != nil {
		return false, nil
	}
	named, err := parseHosts(hosts)
	if err != nil {
		return false, nil
	}
	for _, h := range named {
		if !slices.ContainsFunc(published, func(p peer.AddrInfo) bool { return p.ID == h.ID }) {
			return false, nil
		}
	}
	return true, nil
}

// requestSkew is the clock skew allowed between an establishment's time
// and its package's validity.
const requestSkew = 5 * time.Minute

// quarantine opens one envelope of request mailbox mb and keeps a valid
// request. Anything else is dropped without a trace beyond a debug log and
// a count by reason: strangers get no answer, and nothing of theirs is
// shown. The checks go from cheap to dear: the key ID names a live
// package of this mailbox (a database read), the proof of work the
// package asks for (a hash) and has not been used before (a read), and
// only then the HPKE open and signature check. The proof digest and the
// establishment nonce are recorded in the transaction that records the
// decision, so a database failure loses nothing: the poll stops, the
// cursor stays, and the request is read again. It returns whether a new
// request was quarantined; an error only for a database failure. Call
// with conn.mu held.
func (n *Node) quarantine(env *envelope.Envelope, mb envelope.MailboxID) (bool, error) {
	var via string // the name the request came through, once known
	drop := func(why, reason string) (bool, error) {
		n.conn.countDrop(via, why)
		n.log.Debug("dropped a connection request", "envelope", env.ID().Short(), "reason", reason)
		return false, nil
	}
	if env.Mailbox() != mb {
		return drop(requestDropOther, "wrong mailbox")
	}
	kid, err := keymgmt.RequestKeyID(env.Ciphertext)
	if err != nil {
		return drop(requestDropMalformed, "not a request")
	}
	sb, err := n.member.db.get(contacts.Key(contacts.KeySecret, kid[:]))
	if err != nil {
		return false, err
	}
	if sb == nil {
		return drop(requestDropMalformed, "unknown or expired package key")
	}
	srec, sec, err := contacts.DecodeSecretRec(sb)
	if err != nil {
		return false, err
	}
	if srec.Mailbox != mb.String() {
		return drop(requestDropOther, "package of another mailbox")
	}
	via = srec.Name
	now := time.Now()
	// proofKey records the request's proof digest once the request is
	// decided, so that the same ciphertext in a fresh envelope is dropped
	// before it costs an HPKE open again. It is written only with the
	// decision: a database failure before that leaves the request to be
	// read again at the next poll instead of losing it.
	var proofKey []byte
	if srec.ProofBits > 0 {
		digest, err := keymgmt.CheckRequestProof(env.Ciphertext, mb, srec.ProofBits)
		switch {
		case errors.Is(err, keymgmt.ErrNoProof):
			return drop(requestDropNoProof, err.Error())
		case err != nil:
			return drop(requestDropBadProof, err.Error())
		}
		proofKey = contacts.Key(contacts.KeyProof, digest[:])
		if seen, err := n.member.db.get(proofKey); err != nil {
			return false, err
		} else if seen != nil {
			return drop(requestDropReplayed, "proof of work used before")
		}
	}
	// spent records what a decided request used up: its proof digest and,
	// once it opened, its establishment nonce.
	var nonce []byte
	spent := func(txn *badger.Txn) error {
		stamp := u64(uint64(now.UnixMilli()))
		if proofKey != nil {
			if err := txn.Set(proofKey, stamp); err != nil {
				return err
			}
		}
		if nonce != nil {
			return txn.Set(contacts.Key(contacts.KeyNonce, nonce), stamp)
		}
		return nil
	}
	spend := func(why, reason string) (bool, error) {
		if err := n.member.db.db.Update(spent); err != nil {
			return false, err
		}
		return drop(why, reason)
	}
	est, err := sec.OpenRequest(env.Ciphertext)
	if err != nil {
		return spend(requestDropInvalid, err.Error())
	}
	switch {
	case est.Time.Before(srec.Created.Add(-requestSkew)) || est.Time.After(srec.Expires.Add(requestSkew)):
		return spend(requestDropRefused, "made outside its package's validity")
	case est.Time.After(now.Add(requestSkew)):
		return spend(requestDropRefused, "made in the future")
	case now.Sub(est.Time) > n.params.Contacts.MaxRequestAge:
		return spend(requestDropRefused, "too old")
	}
	fp := est.Initiator.Fingerprint()
	if est.Initiator.SignPub.Equal(n.member.id.SigningKey()) {
		return spend(requestDropRefused, "from ourselves")
	}
	seen, err := n.member.db.get(contacts.Key(contacts.KeyNonce, est.Nonce[:]))
	if err != nil {
		return false, err
	}
	if seen != nil {
		return spend(requestDropReplayed, "replayed")
	}
	// From here on the nonce is spent too, whatever is decided.
	nonce = est.Nonce[:]
	if rej, err := n.member.db.get(contacts.Key(contacts.KeyRejected, []byte(fp))); err != nil {
		return false, err
	} else if rej != nil {
		return spend(requestDropRefused, "initiator was rejected before")
	}
	inv, err := groupstate.ParseInvite(est.Invite)
	if err != nil || !inv.CanWrite() || len(inv.Hosts) == 0 {
		return spend(requestDropInvalid, "unusable invite")
	}
	if ok, err := n.hostsOfName(srec.Name, inv.Hosts); err != nil {
		return false, err
	} else if !ok {
		// An honest initiator hosts the connection group on the directory
		// host it fetched the package from. Joining hosts of its choosing
		// would show the initiator (or whoever runs them) this node's
		// address and peer, and link it to the name.
		return spend(requestDropInvalid, "invite names a host the name is not published on")
	}
	known, err := n.Contacts()
	if err != nil {
		return false, err
	}
	for _, ct := range known {
		if ct.Fingerprint == fp || ct.Group == inv.GroupID.String() {
			return spend(requestDropRefused, "already a contact")
		}
	}
	pending, err := n.cstore.Requests()
	if err != nil {
		return false, err
	}
	var replace *contacts.RequestRec
	for _, r := range pending {
		if r.Fingerprint == fp {
			replace = r
		}
	}
	if replace == nil && len(pending) >= n.params.Contacts.MaxPending {
		// Warned once an hour at most: the requests come from strangers,
		// who must not be able to flood the log (the drops are counted).
		if now.Sub(n.conn.fullWarned) > time.Hour {
			n.conn.fullWarned = now
			n.log.Warn("contact request quarantine is full; dropping requests until some are accepted or rejected", "max", n.params.Contacts.MaxPending)
		}
		return spend(requestDropRefused, "quarantine full")
	}
	id := sha256.Sum256(append(append([]byte("meshnode/v1/contact-request-id"), est.Nonce[:]...), est.Initiator.SignPub...))
	rec := &contacts.RequestRec{ID: hex.EncodeToString(id[:6]), Kind: srec.Kind, Via: srec.Name, Nick: est.Nick, Fingerprint: fp,
		Invite: est.Invite, Sent: est.Time, Received: now.UTC()}
	b, err := json.Marshal(rec)
	if err != nil {
		return false, err
	}
	err = n.member.db.db.Update(func(txn *badger.Txn) error {
		if err := spent(txn); err != nil {
			return err
		}
		// One pending request per initiator: the newest replaces the
		// older one, so one identity cannot fill the quarantine.
		if replace != nil {
			if err := txn.Delete(contacts.Key(contacts.KeyRequest, []byte(replace.ID))); err != nil {
				return err
			}
		}
		return txn.Set(contacts.Key(contacts.KeyRequest, []byte(rec.ID)), b)
	})
	return err == nil && replace == nil, err
}

// ContactRequests lists the requests in quarantine: nick, fingerprint and
// the name each came through; nothing else of the initiator's.
func (n *Node) ContactRequests() ([]contacts.ContactRequest, error) {
	if _, err := n.mem(); err != nil {
		return nil, err
	}
	recs, err := n.cstore.Requests()
	if err != nil {
		return nil, err
	}
	out := []contacts.ContactRequest{}
	for _, r := range recs {
		out = append(out, contacts.ContactRequest{ID: r.ID, Nick: r.Nick, Fingerprint: r.Fingerprint, Via: r.Via, Sent: r.Sent, Received: r.Received})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Received.Before(out[j].Received) })
	return out, nil
}

// AcceptContact accepts a request: the node joins the connection group
// and the initiator becomes a contact.
func (n *Node) AcceptContact(ctx context.Context, id string) (*contacts.Contact, error) {
	if _, err := n.mem(); err != nil {
		return nil, err
	}
	c := n.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := n.cstore.Request(id)
	if err != nil {
		return nil, err
	}
	info, err := n.JoinGroup(ctx, r.Invite, "")
	if err != nil {
		return nil, err
	}
	rec := &contacts.ContactRec{Group: info.ID, Via: r.Via, Fingerprint: r.Fingerprint, Nick: r.Nick, Since: time.Now().UTC()}
	if err := n.cstore.PutContact(rec); err != nil {
		return nil, err
	}
	if err := n.member.db.db.Update(func(txn *badger.Txn) error { return txn.Delete(contacts.Key(contacts.KeyRequest, []byte(r.ID))) }); err != nil {
		return nil, err
	}
	if n.params.Contacts.OfferKeyPackages {
		// The initiator may want to add us to a managed group at once.
		ct := &contacts.Contact{Group: rec.Group, Fingerprint: rec.Fingerprint}
		if err := n.offerKeyPackage(ctx, ct); err != nil {
			// Dropped: the contacts loop offers again.
			n.log.Info("offering a key package to a new contact failed", "err", err)
		}
	}
	return n.contactView(rec)
}

// RejectContact drops a request; later requests from the same identity
// are dropped unread. The initiator is told nothing.
func (n *Node) RejectContact(id string) error {
	if _, err := n.mem(); err != nil {
		return err
	}
	c := n.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := n.cstore.Request(id)
	if err != nil {
		return err
	}
	return n.member.db.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(contacts.Key(contacts.KeyRejected, []byte(r.Fingerprint)), u64(uint64(time.Now().UnixMilli()))); err != nil {
			return err
		}
		return txn.Delete(contacts.Key(contacts.KeyRequest, []byte(r.ID)))
	})
}
