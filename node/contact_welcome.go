package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/contacts"
	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
)

// Welcomes over connection groups: the flow and the frame format are in
// package contacts (frames.go); what follows is the node's side of it.

// contactScan is how many of the newest messages of a connection group
// are searched for offers and frames.
const contactScan = 4 * contacts.MaxWelcomeParts

// contactWelcomes is the member side's memory of welcome frames already
// delivered, by tag (in memory only: delivering again after a restart is
// harmless, the store drops duplicates). Guarded by connState.mu.
type contactWelcomes struct {
	done map[[16]byte]bool
	// delivered counts the welcome envelopes delivered to the own store.
	delivered int
}

// contactKeyPackage returns the newest valid key package the contact
// offered over the connection group, unless it was used already. Call
// with conn.mu held.
func (n *Node) contactKeyPackage(ct *contacts.Contact) (*keymgmt.KeyPackage, error) {
	msgs, err := n.Messages(ct.Group, contactScan)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	for i := len(msgs) - 1; i >= 0; i-- {
		msg := msgs[i]
		if msg.Own || !msg.Verified || msg.Author != ct.Fingerprint || !strings.HasPrefix(msg.Text, keymgmt.KeyPackagePrefix) {
			continue
		}
		kp, err := keymgmt.ParseKeyPackage(msg.Text, now)
		if err != nil || kp.Identity.Fingerprint() != ct.Fingerprint {
			// Expired, or (from a broken node) someone else's: a contact's
			// offer can only add the contact.
			continue
		}
		// Only the newest offer counts: the contact's node replaced the
		// older ones and forgets them after contacts.ReplacedOfferGrace, so a
		// welcome sealed to one of those could be lost. If the newest is
		// used, the next offer comes once its welcome is joined.
		hash := sha256.Sum256(kp.Marshal())
		used, err := n.member.db.get(contacts.Key(contacts.KeyUsedKP, hash[:]))
		if err != nil {
			return nil, err
		}
		if used == nil {
			return kp, nil
		}
		break
	}
	return nil, fmt.Errorf("%w: %s", contacts.ErrNoContactKeyPackage, displayName(ct.Nick, ct.Fingerprint))
}

// contactsTick is the contacts loop's share of welcomes over connection
// groups: offer key packages to connected contacts and deliver the
// welcomes they sent. only, when set, limits it to one connection group.
func (n *Node) contactsTick(only string) {
	ctx, cancel := context.WithTimeout(n.ctx, n.params.Contacts.PollInterval)
	defer cancel()
	c := n.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	cts, err := n.Contacts()
	if err != nil {
		n.log.Warn("listing contacts failed", "err", err)
		return
	}
	for i := range cts {
		ct := &cts[i]
		if ct.State != "connected" || (only != "" && ct.Group != only) {
			continue
		}
		if err := n.deliverContactWelcomes(ctx, ct); err != nil && n.ctx.Err() == nil {
			n.log.Warn("delivering welcomes from a contact failed", "group", ct.Group, "err", err)
		}
		if err := n.completeQueuedAdds(ct); err != nil && n.ctx.Err() == nil {
			// Dropped: the next pass tries again.
			n.log.Warn("completing queued adds of a contact failed", "group", ct.Group, "err", err)
		}
		if err := n.pruneReplacedOffers(ct, time.Now()); err != nil && n.ctx.Err() == nil {
			// Dropped: the next pass prunes again.
			n.log.Warn("pruning replaced key package offers failed", "group", ct.Group, "err", err)
		}
		if !n.params.Contacts.OfferKeyPackages {
			continue
		}
		if err := n.offerKeyPackage(ctx, ct); err != nil && n.ctx.Err() == nil {
			// Dropped: the next tick offers again.
			n.log.Info("offering a key package to a contact failed", "group", ct.Group, "err", err)
		}
	}
}

// deliverContactWelcomes delivers, to the own store, the welcome envelopes
// the contact sent over the connection group that are addressed to one of
// this node's pending key packages. Call with conn.mu held.
func (n *Node) deliverContactWelcomes(ctx context.Context, ct *contacts.Contact) error {
	m := n.member
	m.mu.Lock()
	waiting := len(m.mg.kps)
	m.mu.Unlock()
	if waiting == 0 {
		return nil // no welcome could be for us
	}
	msgs, err := n.Messages(ct.Group, contactScan)
	if err != nil {
		return err
	}
	var texts []string
	for _, msg := range msgs {
		if !msg.Own && msg.Verified && msg.Author == ct.Fingerprint && strings.HasPrefix(msg.Text, contacts.WelcomePrefix) {
			texts = append(texts, msg.Text)
		}
	}
	if len(texts) == 0 {
		return nil
	}
	w := &n.conn.welcomes
	if w.done == nil {
		w.done = map[[16]byte]bool{}
	}
	for tag, envs := range contacts.ReassembleWelcomes(texts, w.done) {
		m.mu.Lock()
		pending := map[envelope.MailboxID]bool{}
		for _, p := range m.mg.kps {
			pending[p.mailbox] = true
		}
		m.mu.Unlock()
		delivered := 0
		for _, env := range envs {
			// Only the welcome mailboxes of own pending key packages: a
			// contact cannot make this node store or host anything else.
			if !pending[env.Mailbox()] {
				continue
			}
			if _, err := n.Deliver(ctx, env, n.h.ID()); err != nil {
				return err
			}
			delivered++
		}
		w.done[tag] = true
		w.delivered += delivered
		if delivered > 0 {
			n.log.Info("delivered a welcome received over a connection group", "group", ct.Group, "envelopes", delivered)
		}
	}
	return nil
}

// offerKeyPackage makes sure the contact holds a live, unused key package
// of this member: a new one is made and sent when there is none, when the
// last one was consumed by a welcome, or when half its validity is gone.
// Call with conn.mu held.
func (n *Node) offerKeyPackage(ctx context.Context, ct *contacts.Contact) error {
	gid, err := groupstate.ParseGroupID(ct.Group)
	if err != nil {
		return err
	}
	key := contacts.Key(contacts.KeyOffer, gid[:])
	b, err := n.member.db.get(key)
	if err != nil {
		return err
	}
	var replaced []contacts.ReplacedOffer
	if b != nil {
		rec, err := contacts.DecodeOfferRec(b)
		if err != nil {
			return err
		}
		m := n.member
		m.mu.Lock()
		// Live: still awaiting its welcome (one being joined is consumed).
		live := false
		for _, p := range m.mg.kps {
			if hex.EncodeToString(p.hash[:]) == rec.Hash {
				live = !p.joining
			}
		}
		m.mu.Unlock()
		if live && time.Until(rec.Expires) > DefaultKeyPackageTTL/2 {
			return nil
		}
		replaced = rec.Replaced
		if live {
			// Half expired: still watched for a while (see
			// contacts.ReplacedOfferGrace), then forgotten.
			replaced = append(replaced, contacts.ReplacedOffer{Hash: rec.Hash, At: time.Now().UTC()})
		}
		for len(replaced) > contacts.MaxReplacedOffers {
			if err := n.forgetOffer(replaced[0].Hash); err != nil {
				return err
			}
			replaced = replaced[1:]
		}
	}
	info, err := n.GroupInfo(ct.Group)
	if err != nil {
		return err
	}
	kpi, err := n.NewKeyPackage(ctx, DefaultKeyPackageTTL, info.Hosts)
	if err != nil {
		return err
	}
	kp, err := keymgmt.ParseKeyPackage(kpi.KeyPackage, time.Now())
	if err != nil {
		return err
	}
	if _, err := n.Send(ctx, ct.Group, kpi.KeyPackage); err != nil {
		return err
	}
	hash := sha256.Sum256(kp.Marshal())
	rec, err := json.Marshal(&contacts.OfferRec{Hash: hex.EncodeToString(hash[:]), Expires: kpi.Expires, Sent: time.Now().UTC(), Replaced: replaced})
	if err != nil {
		return err
	}
	return n.member.db.db.Update(func(txn *badger.Txn) error { return txn.Set(key, rec) })
}

// forgetOffer stops waiting for the welcome of an own offered key
// package, named by its hex hash.
func (n *Node) forgetOffer(hash string) error {
	b, err := hex.DecodeString(hash)
	if err != nil || len(b) != sha256.Size {
		return fmt.Errorf("%w: key package offer hash %q", contacts.ErrCorrupt, hash)
	}
	_, err = n.forgetKeyPackage([32]byte(b))
	return err
}

// pruneReplacedOffers forgets the contact's replaced offers whose grace
// is over. Call with conn.mu held.
func (n *Node) pruneReplacedOffers(ct *contacts.Contact, now time.Time) error {
	gid, err := groupstate.ParseGroupID(ct.Group)
	if err != nil {
		return err
	}
	key := contacts.Key(contacts.KeyOffer, gid[:])
	b, err := n.member.db.get(key)
	if err != nil || b == nil {
		return err
	}
	rec, err := contacts.DecodeOfferRec(b)
	if err != nil {
		return err
	}
	keep := rec.Replaced[:0]
	for _, r := range rec.Replaced {
		if now.Before(r.At.Add(contacts.ReplacedOfferGrace)) {
			keep = append(keep, r)
			continue
		}
		if err := n.forgetOffer(r.Hash); err != nil {
			return err
		}
	}
	if len(keep) == len(rec.Replaced) {
		return nil
	}
	rec.Replaced = keep
	nb, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return n.member.db.db.Update(func(txn *badger.Txn) error { return txn.Set(key, nb) })
}

// isContactGroup reports whether group is a connection group.
// IsProtocolMessage reports whether msg is one of the messages nodes
// exchange in a connection group on their users' behalf — a key package
// offer or a welcome frame — which applications do not show (the daemon
// leaves them out unless asked for everything).
func (n *Node) IsProtocolMessage(msg *Message) bool {
	if msg.Kind != groupstate.KindText.String() ||
		!(strings.HasPrefix(msg.Text, keymgmt.KeyPackagePrefix) || strings.HasPrefix(msg.Text, contacts.WelcomePrefix)) {
		return false
	}
	return n.member != nil && n.isContactGroup(msg.Group)
}

func (n *Node) isContactGroup(group string) bool {
	gid, err := groupstate.ParseGroupID(group)
	if err != nil {
		return false
	}
	return n.cstore.IsContactGroup(gid)
}
