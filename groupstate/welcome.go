package groupstate

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/keymgmt"
)

// Labels of welcomes. They are part of the protocol.
const (
	// LabelWelcomeReadKey derives the welcome mailbox's envelope key from
	// the newcomer's key package.
	LabelWelcomeReadKey = "meshnode/v1/welcome/read-key"
	// LabelWelcomeWriteKey derives the welcome mailbox's Ed25519 write
	// seed from the newcomer's key package.
	LabelWelcomeWriteKey = "meshnode/v1/welcome/write-key"
	// LabelWelcomeSeal starts the HPKE info of a sealed welcome (followed
	// by the SHA-256 of the key package).
	LabelWelcomeSeal = "meshnode/v1/welcome/seal"
	// WelcomeSigContext is the keymgmt signature context of welcomes.
	WelcomeSigContext = "meshnode/v1/welcome"
)

// Welcome limits.
const (
	// WelcomeVersion is the welcome (and welcome frame) version;
	// WelcomeTreeVersion the welcome version that carries a key tree path
	// (and a manager's tree seed).
	WelcomeVersion     = 1
	WelcomeTreeVersion = 2
	// MaxWelcomeSize bounds a welcome's encoding (a chain of about 100,000
	// events).
	MaxWelcomeSize = 32 << 20
	// MaxWelcomeParts bounds the envelopes of one welcome.
	MaxWelcomeParts = 1024
	// welcomeFrameHeader is version ‖ 16 tag ‖ 2 index ‖ 2 count.
	welcomeFrameHeader = 1 + 16 + 2 + 2
	// maxWelcomeChunk is the most sealed welcome bytes one envelope holds.
	maxWelcomeChunk = MaxPayloadSize - welcomeFrameHeader
)

// WelcomeMailbox derives, from a newcomer's key package, the mailbox a
// manager posts the newcomer's welcome to and the newcomer fetches:
//
//	K     = HKDF-SHA256(secret = key package binary, info = LabelWelcomeReadKey)
//	seed  = HKDF-SHA256(secret = key package binary, info = LabelWelcomeWriteKey)
//	WPub  = Ed25519 public key of seed;  mailbox = T(WPub) as for epochs
//
// The result has the shape of epoch keys: hosts accept the mailbox like
// any other (self-certifying, padded envelopes) and learn nothing about who
// it is for. What it reveals: the key package is shared in the clear, so
// anyone holding it can compute the mailbox, watch it (and so learn that a
// welcome, of some size, arrived for that person), and post to it; nobody
// without the newcomer's HPKE key can open the welcome itself. A fresh key
// package per group makes its welcome mailbox unlinkable to the others.
func WelcomeMailbox(kp *keymgmt.KeyPackage) (*keymgmt.EpochKeys, error) {
	if kp == nil {
		return nil, fmt.Errorf("%w: no key package", ErrWelcomeInvalid)
	}
	secret := kp.Marshal()
	rk, err := hkdf.Key(sha256.New, secret, nil, LabelWelcomeReadKey, 32)
	if err != nil {
		return nil, fmt.Errorf("groupstate: derive welcome key: %w", err)
	}
	seed, err := hkdf.Key(sha256.New, secret, nil, LabelWelcomeWriteKey, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("groupstate: derive welcome write key: %w", err)
	}
	k := &keymgmt.EpochKeys{WritePriv: ed25519.NewKeyFromSeed(seed)}
	copy(k.ReadKey[:], rk)
	k.WritePub = k.WritePriv.Public().(ed25519.PublicKey)
	k.Mailbox = envelope.MailboxFor(k.WritePub)
	return k, nil
}

// keyPackageHash binds a welcome to the key package it answers.
func keyPackageHash(kp *keymgmt.KeyPackage) [32]byte { return sha256.Sum256(kp.Marshal()) }

// Welcome is what a new member of a managed group receives, sealed to the
// HPKE key of its key package: the whole main line of the state chain
// (from which it verifies every permission itself and learns the name,
// hosts, policy and roster), the current epoch's secrets for its role, and
// under shared history the read secrets of earlier epochs. A manager signs
// it, binding group ID, epoch, head and the key package.
type Welcome struct {
	GroupID GroupID
	Epoch   uint64
	Head    EventID
	// KeyPackage is SHA-256 of the newcomer's key package binary.
	KeyPackage [32]byte
	// Secrets by epoch: the current one (without W for a reader) and,
	// under shared history, earlier ones (read-only).
	Secrets map[uint64]*keymgmt.EpochSecrets
	// Events is the chain's main line, the create first.
	Events []*Event
	// Tree is the newcomer's path in the group's key tree (nil when the
	// group's rotations are direct), and Seed the managers' tree seed for
	// a newcomer with the manage role (version 2).
	Tree *keymgmt.TreePath
	Seed *keymgmt.TreeSeed
	// Author is the signing manager's key.
	Author    [32]byte
	Signature [ed25519.SignatureSize]byte
}

// Welcome encoding, version 1 (integers big-endian; signed, then sealed):
//
//	1   version (0x01)
//	16  group ID
//	8   epoch
//	32  state head
//	32  SHA-256 of the newcomer's key package
//	32  author (a manager's identity key)
//	4   secret count S (>= 1), then per epoch, strictly ascending:
//	    8 epoch ‖ 1 length L ‖ L epoch secrets (keymgmt encoding)
//	4   event count E (>= 1), then per event: 2 length L ‖ L event
//	    version 2 only (a group with a key tree):
//	1   flags (bit 0: tree path, bit 1: tree seed; at least one set)
//	    [2 length L ‖ L tree path (keymgmt encoding)] [41 tree seed]
//	64  signature (keymgmt layout, WelcomeSigContext) over all preceding bytes
func (w *Welcome) appendSigned(b []byte) ([]byte, error) {
	if w.Tree != nil || w.Seed != nil {
		b = append(b, WelcomeTreeVersion)
	} else {
		b = append(b, WelcomeVersion)
	}
	b = append(b, w.GroupID[:]...)
	b = binary.BigEndian.AppendUint64(b, w.Epoch)
	b = append(b, w.Head[:]...)
	b = append(b, w.KeyPackage[:]...)
	b = append(b, w.Author[:]...)
	epochs := slices.Sorted(maps.Keys(w.Secrets))
	b = binary.BigEndian.AppendUint32(b, uint32(len(epochs)))
	for _, e := range epochs {
		sb, err := keymgmt.MarshalEpochSecrets(w.Secrets[e])
		if err != nil {
			return nil, fmt.Errorf("%w: epoch %d: %w", ErrWelcomeInvalid, e, err)
		}
		b = binary.BigEndian.AppendUint64(b, e)
		b = append(b, byte(len(sb)))
		b = append(b, sb...)
		clear(sb)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(w.Events)))
	for i, ev := range w.Events {
		eb, err := MarshalEvent(ev)
		if err != nil {
			return nil, fmt.Errorf("%w: event %d: %w", ErrWelcomeInvalid, i, err)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(eb)))
		b = append(b, eb...)
	}
	if w.Tree != nil || w.Seed != nil {
		var flags byte
		if w.Tree != nil {
			flags |= groupFlagPath
		}
		if w.Seed != nil {
			flags |= groupFlagSeed
		}
		b = append(b, flags)
		if w.Tree != nil {
			pb, err := keymgmt.MarshalTreePath(w.Tree)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrWelcomeInvalid, err)
			}
			b = binary.BigEndian.AppendUint16(b, uint16(len(pb)))
			b = append(b, pb...)
		}
		if w.Seed != nil {
			b = append(b, keymgmt.MarshalTreeSeed(w.Seed)...)
		}
	}
	if len(b)+ed25519.SignatureSize > MaxWelcomeSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrWelcomeInvalid, len(b)+ed25519.SignatureSize, MaxWelcomeSize)
	}
	return b, nil
}

// NewWelcome builds and signs the welcome of a newcomer whose add event is
// already in c, for group g (the manager's record, whose current epoch is
// c's). The newcomer gets the current secrets for its role and, under
// shared history, read-only copies of every earlier epoch g holds. Under
// from-join history the rotation the add made due must come first
// (ErrRotationDue), so the newcomer cannot read the epoch it was added in.
func NewWelcome(c *Chain, g *Group, kp *keymgmt.KeyPackage, manager Signer) (*Welcome, error) {
	if c == nil || g == nil || kp == nil || manager == nil {
		return nil, fmt.Errorf("%w: missing chain, group, key package or manager", ErrWelcomeInvalid)
	}
	st := c.state
	newcomer, ok := st.Member(kp.Identity.SignPub)
	switch {
	case g.ID != st.GroupID:
		return nil, fmt.Errorf("%w: group record %s, chain of group %s", ErrWelcomeInvalid, g.ID.Short(), st.GroupID.Short())
	case !ok || !newcomer.Identity.Equal(&kp.Identity):
		return nil, fmt.Errorf("%w: %s is not a member with this key package's keys; add them first", ErrWelcomeInvalid, kp.Identity.Fingerprint())
	case st.Policy.History == HistoryFromJoin && st.RotationDue != RotateNotDue:
		return nil, fmt.Errorf("%w: %s under from-join history; rotate before welcoming", ErrRotationDue, st.RotationDue)
	case g.Epoch != st.Epoch:
		return nil, fmt.Errorf("%w: the group record is at epoch %d, the chain at %d", ErrWelcomeInvalid, g.Epoch, st.Epoch)
	}
	if author, ok := st.Member(manager.SigningKey()); !ok || !author.Role.CanManage() {
		return nil, fmt.Errorf("%w: only a manager can welcome", ErrUnauthorized)
	}
	cur := g.Secrets[st.Epoch]
	if cur == nil || !bytes.Equal(cur.WPub, st.WPub) {
		return nil, fmt.Errorf("%w: the group record's secrets for epoch %d are not the chain's", ErrWelcomeInvalid, st.Epoch)
	}
	if newcomer.Role.CanWrite() && cur.Write == nil {
		return nil, fmt.Errorf("%w: %s is a writer and this manager lacks the write secret", ErrWelcomeInvalid, newcomer.Fingerprint())
	}
	w := &Welcome{
		GroupID:    st.GroupID,
		Epoch:      st.Epoch,
		Head:       st.Head,
		KeyPackage: keyPackageHash(kp),
		Secrets:    map[uint64]*keymgmt.EpochSecrets{st.Epoch: cur},
		Events:     c.Events(),
		Author:     [32]byte(manager.SigningKey()),
	}
	if !newcomer.Role.CanWrite() {
		w.Secrets[st.Epoch] = cur.ReadOnly()
	}
	if g.TreeSeed != nil {
		p, err := c.TreePathOf(g.TreeSeed, kp.Identity.SignPub)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrWelcomeInvalid, err)
		}
		w.Tree = p
		if newcomer.Role.CanManage() {
			w.Seed = g.TreeSeed
		}
	}
	if st.Policy.History == HistoryShared {
		for e, s := range g.Secrets {
			if e < st.Epoch {
				w.Secrets[e] = s.ReadOnly()
			}
		}
	}
	signed, err := w.appendSigned(nil)
	if err != nil {
		return nil, err
	}
	copy(w.Signature[:], manager.Sign(WelcomeSigContext, signed))
	return w, nil
}

// MarshalWelcome encodes a signed welcome. The result holds secrets.
func MarshalWelcome(w *Welcome) ([]byte, error) {
	b, err := w.appendSigned(nil)
	if err != nil {
		return nil, err
	}
	return append(b, w.Signature[:]...), nil
}

// ParseWelcome decodes a welcome strictly. It checks the structure only:
// OpenWelcome verifies it.
func ParseWelcome(b []byte) (*Welcome, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrWelcomeMalformed, fmt.Sprintf(format, args...))
	}
	if len(b) > MaxWelcomeSize {
		return nil, bad("%d bytes, at most %d", len(b), MaxWelcomeSize)
	}
	d := newDecoder(b)
	version := d.u8()
	if !d.ok || (version != WelcomeVersion && version != WelcomeTreeVersion) {
		return nil, bad("version %d, want %d or %d", version, WelcomeVersion, WelcomeTreeVersion)
	}
	w := &Welcome{Secrets: map[uint64]*keymgmt.EpochSecrets{}}
	copy(w.GroupID[:], d.take(16))
	w.Epoch = d.u64()
	copy(w.Head[:], d.take(32))
	copy(w.KeyPackage[:], d.take(32))
	copy(w.Author[:], d.take(32))
	ns := d.u32()
	if !d.ok || ns == 0 || uint64(ns) > uint64(d.remaining()/(8+1)) {
		return nil, bad("secret count %d", ns)
	}
	var prev uint64
	for i := range ns {
		e := d.u64()
		raw := d.take(int(d.u8()))
		if !d.ok {
			return nil, bad("secrets %d truncated", i)
		}
		if i > 0 && e <= prev {
			return nil, bad("secrets not strictly ascending by epoch (%d after %d)", e, prev)
		}
		prev = e
		s, err := keymgmt.ParseEpochSecrets(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: epoch %d: %w", ErrWelcomeMalformed, e, err)
		}
		w.Secrets[e] = s
	}
	ne := d.u32()
	if !d.ok || ne == 0 || uint64(ne) > uint64(d.remaining()/(2+eventFixed)) {
		return nil, bad("event count %d", ne)
	}
	w.Events = make([]*Event, ne)
	for i := range w.Events {
		raw := d.take(int(d.u16()))
		if !d.ok {
			return nil, bad("event %d truncated", i)
		}
		ev, err := ParseEvent(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: event %d: %w", ErrWelcomeMalformed, i, err)
		}
		w.Events[i] = ev
	}
	if version == WelcomeTreeVersion {
		flags := d.u8()
		if !d.ok || flags == 0 || flags&^(groupFlagPath|groupFlagSeed) != 0 {
			return nil, bad("key tree flags %#x", flags)
		}
		if flags&groupFlagPath != 0 {
			pb := d.take(int(d.u16()))
			if !d.ok {
				return nil, bad("tree path truncated")
			}
			p, err := keymgmt.ParseTreePath(pb)
			if err != nil {
				return nil, fmt.Errorf("%w: tree path: %w", ErrWelcomeMalformed, err)
			}
			w.Tree = p
		}
		if flags&groupFlagSeed != 0 {
			s, err := keymgmt.ParseTreeSeed(d.take(keymgmt.TreeSeedSize))
			if err != nil {
				return nil, fmt.Errorf("%w: tree seed: %w", ErrWelcomeMalformed, err)
			}
			w.Seed = s
		}
	}
	copy(w.Signature[:], d.take(ed25519.SignatureSize))
	if !d.done() {
		return nil, bad("truncated or %d trailing bytes", d.remaining())
	}
	return w, nil
}

// welcomeInfo is the HPKE info of a sealed welcome. The newcomer cannot
// know the group, epoch or head before opening, so the info binds the key
// package it answers; group ID, epoch and head are bound by the manager's
// signature inside, which also covers the key package hash (a welcome
// re-sealed to someone else does not verify).
func welcomeInfo(kp *keymgmt.KeyPackage) []byte {
	h := keyPackageHash(kp)
	return append([]byte(LabelWelcomeSeal), h[:]...)
}

// SealWelcome seals a signed welcome to the key package's HPKE key (one
// HPKE seal over the whole encoding) and cuts the result into envelopes
// for WelcomeMailbox(kp), each of at most one 64 KiB envelope:
//
//	frame    = 1 version ‖ 16 tag ‖ 2 index ‖ 2 count ‖ chunk of the sealed welcome
//	envelope = as SealMessage, with the welcome mailbox's keys, frame as plaintext
//
// The tag (random per welcome) groups the frames of one welcome. The
// manager posts every envelope to the group's hosts.
func SealWelcome(w *Welcome, kp *keymgmt.KeyPackage) ([]*envelope.Envelope, error) {
	if w == nil || kp == nil {
		return nil, fmt.Errorf("%w: no welcome or key package", ErrWelcomeInvalid)
	}
	if w.KeyPackage != keyPackageHash(kp) {
		return nil, fmt.Errorf("%w: the welcome answers another key package", ErrWelcomeInvalid)
	}
	pt, err := MarshalWelcome(w)
	if err != nil {
		return nil, err
	}
	sealed, err := keymgmt.SealTo(&kp.Identity, welcomeInfo(kp), pt)
	clear(pt)
	if err != nil {
		return nil, err
	}
	keys, err := WelcomeMailbox(kp)
	if err != nil {
		return nil, err
	}
	count := (len(sealed) + maxWelcomeChunk - 1) / maxWelcomeChunk
	if count > MaxWelcomeParts {
		return nil, fmt.Errorf("%w: %d parts, at most %d", ErrWelcomeInvalid, count, MaxWelcomeParts)
	}
	// The tag only has to keep two welcomes to the same key package apart.
	var tag [16]byte
	rand.Read(tag[:])
	envs := make([]*envelope.Envelope, 0, count)
	for i := range count {
		chunk := sealed[i*maxWelcomeChunk : min((i+1)*maxWelcomeChunk, len(sealed))]
		frame := make([]byte, 0, welcomeFrameHeader+len(chunk))
		frame = append(frame, WelcomeVersion)
		frame = append(frame, tag[:]...)
		frame = binary.BigEndian.AppendUint16(frame, uint16(i))
		frame = binary.BigEndian.AppendUint16(frame, uint16(count))
		frame = append(frame, chunk...)
		env, err := sealPadded(keys, frame)
		if err != nil {
			return nil, err
		}
		envs = append(envs, env)
	}
	return envs, nil
}

// welcomeFrame is one decoded frame.
type welcomeFrame struct {
	tag          [16]byte
	index, count int
	chunk        []byte
}

// parseWelcomeFrame decodes a frame strictly.
func parseWelcomeFrame(b []byte) (welcomeFrame, error) {
	var f welcomeFrame
	d := newDecoder(b)
	if v := d.u8(); !d.ok || v != WelcomeVersion {
		return f, fmt.Errorf("%w: frame version %d, want %d", ErrWelcomeMalformed, v, WelcomeVersion)
	}
	copy(f.tag[:], d.take(16))
	f.index, f.count = int(d.u16()), int(d.u16())
	if !d.ok || f.count == 0 || f.count > MaxWelcomeParts || f.index >= f.count {
		return f, fmt.Errorf("%w: frame %d of %d", ErrWelcomeMalformed, f.index, f.count)
	}
	if d.remaining() == 0 || d.remaining() > maxWelcomeChunk {
		return f, fmt.Errorf("%w: frame chunk of %d bytes", ErrWelcomeMalformed, d.remaining())
	}
	// A chunk is full except in the last frame, so lengths say where a
	// frame sits and a reassembled welcome has only one possible size.
	if f.index < f.count-1 && d.remaining() != maxWelcomeChunk {
		return f, fmt.Errorf("%w: frame %d of %d is %d bytes, not full", ErrWelcomeMalformed, f.index, f.count, d.remaining())
	}
	f.chunk = slices.Clone(d.take(d.remaining()))
	return f, nil
}

// Joined is what a verified welcome gives the newcomer.
type Joined struct {
	// Group is the record to store: ID, name, current epoch, secrets,
	// hosts and history from the chain.
	Group *Group
	// Chain is the verified state chain.
	Chain *Chain
	// Role is the newcomer's role.
	Role Role
	// WelcomedBy is the manager who signed the welcome (show who added
	// the user: anyone holding the key package can welcome it to a group of
	// their own).
	WelcomedBy *Member
}

// OpenWelcome looks among envelopes fetched from WelcomeMailbox(kp) for a
// complete welcome, opens it with the newcomer's identity and verifies it:
// the chain replays from its create without a fork; its head, group and
// epoch are the welcome's; a manager at that head signed it for this key
// package; the newcomer is a member with this key package's keys; the
// current secrets match the chain's write key and the role (a reader's W is
// dropped, a writer must have it); earlier secrets come only under shared
// history, read-only, each matching its epoch's write key. Envelopes that
// do not open or belong to incomplete welcomes are ignored;
// ErrWelcomeIncomplete means no welcome is complete yet.
func OpenWelcome(id *keymgmt.Identity, kp *keymgmt.KeyPackage, envs []*envelope.Envelope) (*Joined, error) {
	if id == nil || kp == nil {
		return nil, fmt.Errorf("%w: no identity or key package", ErrWelcomeInvalid)
	}
	if !id.Public().Equal(&kp.Identity) {
		return nil, fmt.Errorf("%w: the key package is not this identity's", ErrWelcomeInvalid)
	}
	keys, err := WelcomeMailbox(kp)
	if err != nil {
		return nil, err
	}
	type assembly struct {
		count  int
		chunks map[int][]byte
	}
	sets := map[[16]byte]*assembly{}
	var order [][16]byte
	for _, env := range envs {
		pt, err := openPadded(keys, env, func() string { return "the welcome mailbox" })
		if err != nil {
			continue
		}
		f, err := parseWelcomeFrame(pt)
		if err != nil {
			continue
		}
		a := sets[f.tag]
		if a == nil {
			a = &assembly{count: f.count, chunks: map[int][]byte{}}
			sets[f.tag] = a
			order = append(order, f.tag)
		}
		if f.count != a.count {
			continue
		}
		if _, dup := a.chunks[f.index]; !dup {
			a.chunks[f.index] = f.chunk
		}
	}
	lastErr := fmt.Errorf("%w: %d envelopes, no complete welcome", ErrWelcomeIncomplete, len(envs))
	for _, tag := range order {
		a := sets[tag]
		if len(a.chunks) != a.count {
			continue
		}
		var sealed []byte
		for i := range a.count {
			sealed = append(sealed, a.chunks[i]...)
		}
		pt, err := id.Open(welcomeInfo(kp), sealed)
		if err != nil {
			lastErr = fmt.Errorf("%w: %w", ErrWelcomeInvalid, err)
			continue
		}
		w, err := ParseWelcome(pt)
		clear(pt)
		if err != nil {
			lastErr = err
			continue
		}
		j, err := verifyWelcome(w, id, kp)
		if err != nil {
			lastErr = err
			continue
		}
		return j, nil
	}
	return nil, lastErr
}

// verifyWelcome checks an opened welcome (see OpenWelcome).
func verifyWelcome(w *Welcome, id *keymgmt.Identity, kp *keymgmt.KeyPackage) (*Joined, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrWelcomeInvalid, fmt.Sprintf(format, args...))
	}
	if w.KeyPackage != keyPackageHash(kp) {
		return nil, bad("it answers another key package")
	}
	c, err := NewChain(w.Events[0])
	if err != nil {
		return nil, fmt.Errorf("%w: chain: %w", ErrWelcomeInvalid, err)
	}
	for i, ev := range w.Events[1:] {
		if err := c.Add(ev); err != nil {
			return nil, fmt.Errorf("%w: chain event %d: %w", ErrWelcomeInvalid, i+1, err)
		}
	}
	st := c.state
	switch {
	case c.group != w.GroupID || st.Head != w.Head || st.Epoch != w.Epoch:
		return nil, bad("the chain ends at %s (group %s, epoch %d), the welcome names %s (group %s, epoch %d)",
			st.Head.Short(), c.group.Short(), st.Epoch, w.Head.Short(), w.GroupID.Short(), w.Epoch)
	}
	author, ok := st.Members[w.Author]
	if !ok || !author.Role.CanManage() {
		return nil, fmt.Errorf("%w: welcome signed by %s, not a manager", ErrUnauthorized, keymgmt.Fingerprint(w.Author[:]))
	}
	signed, err := w.appendSigned(nil)
	if err != nil {
		return nil, err
	}
	if err := keymgmt.VerifySignature(author.Identity.SignPub, WelcomeSigContext, signed, w.Signature[:]); err != nil {
		return nil, fmt.Errorf("%w: welcome by %s", ErrBadSignature, author.Fingerprint())
	}
	me, ok := st.Member(id.SigningKey())
	if !ok || !me.Identity.Equal(&kp.Identity) {
		return nil, bad("this identity is not a member with this key package's keys")
	}
	g := &Group{
		ID:      st.GroupID,
		Name:    st.Name,
		Epoch:   st.Epoch,
		Secrets: map[uint64]*keymgmt.EpochSecrets{},
		Hosts:   slices.Clone(st.Hosts),
		History: st.Policy.History,
		Created: c.entries[c.main[0]].ev.TimeValue(),
	}
	for e, s := range w.Secrets {
		wpub, known := c.epochWPub[e]
		switch {
		case e > st.Epoch || !known:
			return nil, bad("secrets for epoch %d, the chain is at epoch %d", e, st.Epoch)
		case !bytes.Equal(s.WPub, wpub):
			return nil, bad("secrets for epoch %d do not match its write key", e)
		case e < st.Epoch && st.Policy.History != HistoryShared:
			return nil, bad("secrets of earlier epoch %d under %s history", e, st.Policy.History)
		case e == st.Epoch && me.Role.CanWrite() && s.Write == nil:
			return nil, bad("a %s member without the write secret", me.Role)
		case e < st.Epoch || !me.Role.CanWrite():
			s = s.ReadOnly()
		}
		g.Secrets[e] = s
	}
	if g.Secrets[st.Epoch] == nil {
		return nil, bad("no secrets for the current epoch %d", st.Epoch)
	}
	if w.Tree != nil {
		l, ok := c.TreeLeaf(id.SigningKey())
		if !ok || l.Tree != w.Tree.Tree || l.Node != w.Tree.Leaf || c.layout.trees[l.Tree].depth != w.Tree.Depth {
			return nil, bad("a key tree path for %s leaf %d (depth %d), the chain places this member elsewhere", w.Tree.Tree, w.Tree.Leaf, w.Tree.Depth)
		}
		g.Tree = w.Tree
	}
	if w.Seed != nil {
		if !me.Role.CanManage() || w.Tree == nil || w.Seed.Epoch > st.Epoch {
			return nil, bad("a tree seed for a %s member", me.Role)
		}
		g.TreeSeed = w.Seed
	}
	return &Joined{Group: g, Chain: c, Role: me.Role, WelcomedBy: author}, nil
}
