package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
)

// Errors of welcomes over connection groups.
var (
	// ErrNoContactKeyPackage: the contact's node has not offered a key
	// package yet (it does so while it runs, once connected), or every
	// one it offered was used or has expired.
	ErrNoContactKeyPackage = errors.New("node: the contact has offered no unused key package yet (their node offers one while it runs; try again later, or add them with a key package they give you)")
	// ErrWelcomeTooLarge: the welcome does not fit in a connection group
	// (MaxContactWelcomeParts).
	ErrWelcomeTooLarge = errors.New("node: the welcome is too large to send over the connection group")
	// ErrBadContactWelcome: a welcome frame or reassembled welcome that is
	// not valid (dropped by the member).
	ErrBadContactWelcome = errors.New("node: malformed welcome frame")
)

// Welcomes over connection groups (ARCHITECTURE §8, issue 7). Once two
// people are connected, a manager can add the other to a managed group
// without asking for a key package or knowing whether the other can reach
// the group's hosts:
//
//  1. Each node keeps one fresh key package of its own offered to every
//     connected contact: a text message in the connection group whose
//     whole text is the key package ("mnkp1.…", as `meshnode keypackage`
//     prints it). It is a pending key package like any other (welcome.go):
//     its welcome mailbox is watched, and the connection group's hosts are
//     where it is fetched from. Once a welcome consumed it, or when half
//     its validity is gone, the node offers a new one.
//  2. AddContactToGroup takes the contact's newest offered key package
//     that the manager has not used yet and whose identity is the
//     contact's verified one, adds it as AddMember does (the welcome goes
//     to the group's hosts as always), and also sends the welcome's
//     envelopes inside the connection group, as text messages in the frame
//     format below.
//  3. The member's node reassembles the frames sent by the contact, keeps
//     the envelopes addressed to the welcome mailbox of one of its pending
//     key packages, and delivers them to its own store, where the welcome
//     code (checkWelcomes → joinWelcomed) opens and joins them as if they
//     had been fetched from the group's hosts. The welcome names the hosts,
//     so the member needs no other way to find them.
//
// The welcome is sealed to the key package as always; the connection
// group adds a second layer (its epoch key) and its hosts see one more
// padded envelope per frame, never the welcome mailbox.
//
// Frame text (one text message each):
//
//	"meshnode-welcome-v1." ‖ base64url without padding of
//	0   1   version (0x01)
//	1   16  tag: random per delivery, groups the frames of one welcome
//	17  2   index, big-endian (< count)
//	19  2   count, big-endian (1..MaxContactWelcomeParts)
//	21  …   chunk: exactly contactWelcomeChunk bytes except in the last
//	        frame (1..contactWelcomeChunk)
//
// The chunks, in index order, make up
//
//	2   N: envelope count, big-endian (1..groupstate.MaxWelcomeParts)
//	N × (4 L, big-endian (≤ envelope.AbsoluteMaxSize) ‖ L bytes of envelope
//	     encoding)
//
// with nothing after the last envelope.

// ContactWelcomePrefix starts the text of a welcome frame.
const ContactWelcomePrefix = "meshnode-welcome-v1."

const (
	contactWelcomeVersion = 1
	contactWelcomeHeader  = 1 + 16 + 2 + 2
	// contactWelcomeChunk keeps a frame's text (base64: 4/3 of it, plus
	// the prefix) under the longest text a payload carries with a full
	// nick and parent list (about 64,900 bytes).
	contactWelcomeChunk = 40 << 10
	// MaxContactWelcomeParts bounds the frames of one welcome: 5 MiB of
	// envelopes, a chain of some ten thousand events. A larger welcome is
	// refused by AddContactToGroup (add the member with AddMember instead).
	MaxContactWelcomeParts = 128
	// contactScan is how many of the newest messages of a connection group
	// are searched for offers and frames.
	contactScan = 4 * MaxContactWelcomeParts
)

var contactB64 = base64.RawURLEncoding

// offerRec is the own key package offered to a contact ('d' 'o').
type offerRec struct {
	Hash    string    `json:"hash"` // hex SHA-256 of the key package binary
	Expires time.Time `json:"expires"`
	Sent    time.Time `json:"sent"`
	// Replaced are the earlier offers this one replaced while they were
	// still pending: a manager may have used one before it saw the new
	// offer, so each is still watched for its welcome for
	// replacedOfferGrace, then forgotten (pruneReplacedOffers).
	Replaced []replacedOffer `json:"replaced,omitempty"`
}

type replacedOffer struct {
	Hash string    `json:"hash"`
	At   time.Time `json:"at"`
}

const (
	// replacedOfferGrace is how long a replaced offer is still watched
	// for a welcome: a manager online when the new offer was sent sees it
	// within seconds and uses it; one that comes online later catches the
	// connection group up first.
	replacedOfferGrace = 24 * time.Hour
	// maxReplacedOffers bounds the replaced offers kept per contact (one
	// offer is replaced every half validity, so there is rarely more than
	// one); past it the oldest is forgotten at once.
	maxReplacedOffers = 4
)

// contactWelcomes is the member side's memory of welcome frames already
// delivered, by tag (in memory only: delivering again after a restart is
// harmless, the store drops duplicates). Guarded by connState.mu.
type contactWelcomes struct {
	done map[[16]byte]bool
	// delivered counts the welcome envelopes delivered to the own store.
	delivered int
}

// contactWelcomeTexts cuts a welcome's envelopes into frame texts.
func contactWelcomeTexts(envs []*envelope.Envelope) ([]string, error) {
	if len(envs) == 0 || len(envs) > groupstate.MaxWelcomeParts {
		return nil, fmt.Errorf("%w: a welcome of %d envelopes", ErrWelcomeTooLarge, len(envs))
	}
	stream := binary.BigEndian.AppendUint16(nil, uint16(len(envs)))
	for _, env := range envs {
		b := env.Bytes()
		stream = binary.BigEndian.AppendUint32(stream, uint32(len(b)))
		stream = append(stream, b...)
	}
	count := (len(stream) + contactWelcomeChunk - 1) / contactWelcomeChunk
	if count > MaxContactWelcomeParts {
		return nil, fmt.Errorf("%w: %d bytes need %d frames, at most %d go over a connection group; add the member with their key package instead",
			ErrWelcomeTooLarge, len(stream), count, MaxContactWelcomeParts)
	}
	// The tag only keeps two welcomes in one connection group apart.
	var tag [16]byte
	rand.Read(tag[:])
	out := make([]string, 0, count)
	for i := range count {
		chunk := stream[i*contactWelcomeChunk : min((i+1)*contactWelcomeChunk, len(stream))]
		f := make([]byte, 0, contactWelcomeHeader+len(chunk))
		f = append(f, contactWelcomeVersion)
		f = append(f, tag[:]...)
		f = binary.BigEndian.AppendUint16(f, uint16(i))
		f = binary.BigEndian.AppendUint16(f, uint16(count))
		f = append(f, chunk...)
		out = append(out, ContactWelcomePrefix+contactB64.EncodeToString(f))
	}
	return out, nil
}

// contactFrame is one decoded welcome frame.
type contactFrame struct {
	tag          [16]byte
	index, count int
	chunk        []byte
}

// parseContactFrame decodes a frame text strictly.
func parseContactFrame(text string) (*contactFrame, error) {
	body, ok := strings.CutPrefix(text, ContactWelcomePrefix)
	if !ok {
		return nil, fmt.Errorf("%w: not a welcome frame", ErrBadContactWelcome)
	}
	if len(body) > contactB64.EncodedLen(contactWelcomeHeader+contactWelcomeChunk) {
		return nil, fmt.Errorf("%w: frame text of %d bytes", ErrBadContactWelcome, len(body))
	}
	b, err := contactB64.Strict().DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("%w: frame encoding: %v", ErrBadContactWelcome, err)
	}
	if len(b) < contactWelcomeHeader+1 || b[0] != contactWelcomeVersion {
		return nil, fmt.Errorf("%w: frame of %d bytes or unknown version", ErrBadContactWelcome, len(b))
	}
	f := &contactFrame{index: int(binary.BigEndian.Uint16(b[17:])), count: int(binary.BigEndian.Uint16(b[19:])), chunk: b[contactWelcomeHeader:]}
	copy(f.tag[:], b[1:17])
	switch {
	case f.count == 0 || f.count > MaxContactWelcomeParts || f.index >= f.count:
		return nil, fmt.Errorf("%w: frame %d of %d", ErrBadContactWelcome, f.index, f.count)
	case f.index < f.count-1 && len(f.chunk) != contactWelcomeChunk:
		// Only the last chunk may be short, so the frames of a welcome
		// add up to one size only.
		return nil, fmt.Errorf("%w: frame %d of %d holds %d bytes, not a full chunk", ErrBadContactWelcome, f.index, f.count, len(f.chunk))
	}
	return f, nil
}

// parseContactWelcome decodes reassembled chunks into envelopes, each
// checked as an envelope (size, write signature).
func parseContactWelcome(stream []byte) ([]*envelope.Envelope, error) {
	if len(stream) < 2 {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadContactWelcome, len(stream))
	}
	n := int(binary.BigEndian.Uint16(stream))
	if n == 0 || n > groupstate.MaxWelcomeParts {
		return nil, fmt.Errorf("%w: %d envelopes", ErrBadContactWelcome, n)
	}
	rest := stream[2:]
	out := make([]*envelope.Envelope, 0, n)
	for i := range n {
		if len(rest) < 4 {
			return nil, fmt.Errorf("%w: envelope %d truncated", ErrBadContactWelcome, i)
		}
		l := binary.BigEndian.Uint32(rest)
		if l > envelope.AbsoluteMaxSize || uint64(l) > uint64(len(rest)-4) {
			return nil, fmt.Errorf("%w: envelope %d of %d bytes", ErrBadContactWelcome, i, l)
		}
		env, err := envelope.Open(rest[4:4+l], envelope.AbsoluteMaxSize, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: envelope %d: %w", ErrBadContactWelcome, i, err)
		}
		out = append(out, env)
		rest = rest[4+l:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last envelope", ErrBadContactWelcome, len(rest))
	}
	return out, nil
}

// reassembleContactWelcomes groups frame texts by tag and returns, per
// complete welcome, its envelopes. Bad frames, incomplete welcomes and
// those in done are skipped; a welcome whose frames disagree (two frames
// with one index) is skipped too.
func reassembleContactWelcomes(texts []string, done map[[16]byte]bool) map[[16]byte][]*envelope.Envelope {
	type set struct {
		count  int
		chunks map[int][]byte
		bad    bool
	}
	sets := map[[16]byte]*set{}
	for _, t := range texts {
		f, err := parseContactFrame(t)
		if err != nil || done[f.tag] {
			continue
		}
		s := sets[f.tag]
		if s == nil {
			s = &set{count: f.count, chunks: map[int][]byte{}}
			sets[f.tag] = s
		}
		if _, dup := s.chunks[f.index]; dup || s.count != f.count {
			s.bad = true
		}
		s.chunks[f.index] = f.chunk
	}
	out := map[[16]byte][]*envelope.Envelope{}
	for tag, s := range sets {
		if s.bad || len(s.chunks) != s.count {
			continue
		}
		var stream []byte
		for i := range s.count {
			stream = append(stream, s.chunks[i]...)
		}
		envs, err := parseContactWelcome(stream)
		if err != nil {
			continue
		}
		out[tag] = envs
	}
	return out
}

// contactKeyPackage returns the newest valid key package the contact
// offered over the connection group, unless it was used already. Call
// with conn.mu held.
func (n *Node) contactKeyPackage(ct *Contact) (*keymgmt.KeyPackage, error) {
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
		// older ones and forgets them after replacedOfferGrace, so a
		// welcome sealed to one of those could be lost. If the newest is
		// used, the next offer comes once its welcome is joined.
		hash := sha256.Sum256(kp.Marshal())
		used, err := n.member.db.get(dkey(dUsedKP, hash[:]))
		if err != nil {
			return nil, err
		}
		if used == nil {
			return kp, nil
		}
		break
	}
	return nil, fmt.Errorf("%w: %s", ErrNoContactKeyPackage, displayName(ct.Nick, ct.Fingerprint))
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
func (n *Node) deliverContactWelcomes(ctx context.Context, ct *Contact) error {
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
		if !msg.Own && msg.Verified && msg.Author == ct.Fingerprint && strings.HasPrefix(msg.Text, ContactWelcomePrefix) {
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
	for tag, envs := range reassembleContactWelcomes(texts, w.done) {
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
func (n *Node) offerKeyPackage(ctx context.Context, ct *Contact) error {
	gid, err := groupstate.ParseGroupID(ct.Group)
	if err != nil {
		return err
	}
	key := dkey(dOffer, gid[:])
	b, err := n.member.db.get(key)
	if err != nil {
		return err
	}
	var replaced []replacedOffer
	if b != nil {
		rec, err := decodeOfferRec(b)
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
			// replacedOfferGrace), then forgotten.
			replaced = append(replaced, replacedOffer{Hash: rec.Hash, At: time.Now().UTC()})
		}
		for len(replaced) > maxReplacedOffers {
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
	rec, err := json.Marshal(&offerRec{Hash: hex.EncodeToString(hash[:]), Expires: kpi.Expires, Sent: time.Now().UTC(), Replaced: replaced})
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
		return fmt.Errorf("%w: key package offer hash %q", ErrCorrupt, hash)
	}
	_, err = n.forgetKeyPackage([32]byte(b))
	return err
}

// pruneReplacedOffers forgets the contact's replaced offers whose grace
// is over. Call with conn.mu held.
func (n *Node) pruneReplacedOffers(ct *Contact, now time.Time) error {
	gid, err := groupstate.ParseGroupID(ct.Group)
	if err != nil {
		return err
	}
	key := dkey(dOffer, gid[:])
	b, err := n.member.db.get(key)
	if err != nil || b == nil {
		return err
	}
	rec, err := decodeOfferRec(b)
	if err != nil {
		return err
	}
	keep := rec.Replaced[:0]
	for _, r := range rec.Replaced {
		if now.Before(r.At.Add(replacedOfferGrace)) {
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
		!(strings.HasPrefix(msg.Text, keymgmt.KeyPackagePrefix) || strings.HasPrefix(msg.Text, ContactWelcomePrefix)) {
		return false
	}
	return n.member != nil && n.isContactGroup(msg.Group)
}

func (n *Node) isContactGroup(group string) bool {
	gid, err := groupstate.ParseGroupID(group)
	if err != nil {
		return false
	}
	b, err := n.member.db.get(dkey(dContact, gid[:]))
	return err == nil && b != nil
}
