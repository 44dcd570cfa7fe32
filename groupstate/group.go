package groupstate

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/meshnode/meshnode/keymgmt"
)

// GroupID is a group's stable random identifier. It appears only inside
// ciphertexts and invites, never in anything a host sees.
type GroupID [16]byte

// String returns the ID in lower-case hex.
func (g GroupID) String() string { return hex.EncodeToString(g[:]) }

// Short returns the first 8 hex digits, for logs.
func (g GroupID) Short() string { return hex.EncodeToString(g[:4]) }

// ParseGroupID parses the hex form of a group ID.
func ParseGroupID(s string) (GroupID, error) {
	var g GroupID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(g) {
		return g, fmt.Errorf("%w: group ID must be %d hex digits", ErrGroupMalformed, 2*len(g))
	}
	copy(g[:], b)
	return g, nil
}

// HistoryMode says what newcomers may read.
type HistoryMode uint8

const (
	// HistoryShared: newcomers receive past read secrets and can read the
	// group's history.
	HistoryShared HistoryMode = 1
	// HistoryFromJoin: newcomers read only from the epoch they join in;
	// the group rotates on every add.
	HistoryFromJoin HistoryMode = 2
)

func (m HistoryMode) valid() bool { return m == HistoryShared || m == HistoryFromJoin }

// String returns "shared" or "from-join".
func (m HistoryMode) String() string {
	switch m {
	case HistoryShared:
		return "shared"
	case HistoryFromJoin:
		return "from-join"
	}
	return fmt.Sprintf("HistoryMode(%d)", uint8(m))
}

// Group is a member's view of a group: identity, name, the current epoch,
// the epoch secrets it holds and the hosts to reach. It is plain data with
// no lock; its owner (the node's group loop) serialises access.
type Group struct {
	ID    GroupID
	Name  string
	Epoch uint64
	// Secrets holds the secrets of every epoch this member can read, at
	// least the current one. Entries without Write are read-only.
	Secrets map[uint64]*keymgmt.EpochSecrets
	// Hosts are bootstrap multiaddr strings, in order of preference.
	Hosts   []string
	History HistoryMode
	// Created is when the group was created; zero for a group joined from
	// an invite (the invite does not carry it).
	Created time.Time
	// Tree is this member's path in a managed group's key tree (nil: the
	// group's rotations are direct, or it is an open group).
	Tree *keymgmt.TreePath
	// TreeSeed is the managers' key tree seed; only a manager holds it.
	TreeSeed *keymgmt.TreeSeed
}

// NewGroup creates a group with a random ID and fresh epoch-0 secrets.
func NewGroup(name string, hosts []string, opts ...Option) (*Group, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if err := checkText("group name", name, false, MaxNameLen); err != nil {
		return nil, err
	}
	if err := checkHosts(hosts); err != nil {
		return nil, err
	}
	s, err := keymgmt.NewEpochSecrets()
	if err != nil {
		return nil, fmt.Errorf("groupstate: draw epoch-0 secrets: %w", err)
	}
	g := &Group{
		Name:    name,
		Epoch:   0,
		Secrets: map[uint64]*keymgmt.EpochSecrets{0: s},
		Hosts:   slices.Clone(hosts),
		History: cfg.history,
		Created: cfg.created,
	}
	if g.Created.IsZero() {
		g.Created = time.Now()
	}
	// The group ID only has to be unique and unguessable-enough not to
	// collide; 128 random bits from crypto/rand.
	rand.Read(g.ID[:])
	return g, nil
}

// Keys derives the keys of an epoch whose secrets the group holds.
func (g *Group) Keys(epoch uint64) (*keymgmt.EpochKeys, error) {
	s, ok := g.Secrets[epoch]
	if !ok || s == nil {
		return nil, fmt.Errorf("%w: group %s has no secrets for epoch %d (current epoch %d)", ErrNoEpoch, g.ID.Short(), epoch, g.Epoch)
	}
	return s.Derive()
}

// CurrentKeys derives the keys of the current epoch.
func (g *Group) CurrentKeys() (*keymgmt.EpochKeys, error) { return g.Keys(g.Epoch) }

// CanWrite reports whether the member holds the current epoch's write
// secret.
func (g *Group) CanWrite() bool {
	s := g.Secrets[g.Epoch]
	return s != nil && s.Write != nil
}

// AddEpoch records the secrets of an epoch (checking they are consistent)
// and, if it is newer than the current one, makes it current. Older epochs
// may be added too (past read secrets for a "shared" group); whether a
// member should receive them is the state chain's policy, not checked here.
func (g *Group) AddEpoch(epoch uint64, s *keymgmt.EpochSecrets) error {
	if err := checkSecrets(s); err != nil {
		return fmt.Errorf("%w: epoch %d: %w", ErrGroupMalformed, epoch, err)
	}
	if g.Secrets == nil {
		g.Secrets = make(map[uint64]*keymgmt.EpochSecrets)
	}
	g.Secrets[epoch] = s
	if epoch > g.Epoch {
		g.Epoch = epoch
	}
	return nil
}

// checkSecrets checks that epoch secrets have a well-formed WPub that
// matches the write secret when there is one.
func checkSecrets(s *keymgmt.EpochSecrets) error {
	if s == nil {
		return fmt.Errorf("nil epoch secrets")
	}
	if len(s.WPub) != ed25519.PublicKeySize {
		return fmt.Errorf("write public key is %d bytes, want %d", len(s.WPub), ed25519.PublicKeySize)
	}
	if _, err := s.Derive(); err != nil {
		return err
	}
	return nil
}

// Group encoding, version 1 (all integers big-endian):
//
//	1   version (0x01)
//	16  group ID
//	1   name length N (1..64), then N bytes of UTF-8
//	8   current epoch
//	1   history mode (1 shared, 2 from-join)
//	8   created: seconds since the Unix epoch (int64)
//	4   created: nanoseconds (0..999999999)
//	1   host count H (0..16), then per host: 2-byte length, bytes
//	4   epoch count E (1..), then per epoch, strictly ascending:
//	    8 epoch, 1 flags (bit 0: write secret present; other bits 0),
//	    32 R, [32 W if flag], 32 WPub
//
// Version 2, written only for a member of a key tree (a managed group
// rotated through its tree), appends:
//
//	1   flags (bit 0: tree path, bit 1: tree seed; at least one set)
//	    [2 length L, then L bytes of the tree path (keymgmt encoding)]
//	    [41 tree seed (keymgmt encoding), managers only]
const (
	groupVersion     = 1
	groupVersionTree = 2
	groupFlagPath    = 0x01
	groupFlagSeed    = 0x02
)

const flagWrite = 1

// minEpochEntry is the size of an epoch entry without a write secret.
const minEpochEntry = 8 + 1 + 32 + 32

// MarshalBinary encodes the group canonically. It refuses a group that
// breaks any rule UnmarshalBinary enforces, so what is stored always loads.
func (g *Group) MarshalBinary() ([]byte, error) {
	if err := g.validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 64+len(g.Name)+len(g.Secrets)*(minEpochEntry+32))
	if g.Tree != nil || g.TreeSeed != nil {
		b = append(b, groupVersionTree)
	} else {
		b = append(b, groupVersion)
	}
	b = append(b, g.ID[:]...)
	b = append(b, byte(len(g.Name)))
	b = append(b, g.Name...)
	b = binary.BigEndian.AppendUint64(b, g.Epoch)
	b = append(b, byte(g.History))
	c := g.Created.UTC()
	b = binary.BigEndian.AppendUint64(b, uint64(c.Unix()))
	b = binary.BigEndian.AppendUint32(b, uint32(c.Nanosecond()))
	b = appendHosts(b, g.Hosts)
	epochs := make([]uint64, 0, len(g.Secrets))
	for e := range g.Secrets {
		epochs = append(epochs, e)
	}
	slices.Sort(epochs)
	b = binary.BigEndian.AppendUint32(b, uint32(len(epochs)))
	for _, e := range epochs {
		b = appendEpochSecrets(b, e, g.Secrets[e])
	}
	if g.Tree == nil && g.TreeSeed == nil {
		return b, nil
	}
	var flags byte
	if g.Tree != nil {
		flags |= groupFlagPath
	}
	if g.TreeSeed != nil {
		flags |= groupFlagSeed
	}
	b = append(b, flags)
	if g.Tree != nil {
		pb, err := keymgmt.MarshalTreePath(g.Tree)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrGroupMalformed, err)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(pb)))
		b = append(b, pb...)
	}
	if g.TreeSeed != nil {
		b = append(b, keymgmt.MarshalTreeSeed(g.TreeSeed)...)
	}
	return b, nil
}

func appendEpochSecrets(b []byte, epoch uint64, s *keymgmt.EpochSecrets) []byte {
	b = binary.BigEndian.AppendUint64(b, epoch)
	if s.Write != nil {
		b = append(b, flagWrite)
	} else {
		b = append(b, 0)
	}
	b = append(b, s.Read[:]...)
	if s.Write != nil {
		b = append(b, s.Write[:]...)
	}
	return append(b, s.WPub...)
}

func (g *Group) validate() error {
	if err := checkText("group name", g.Name, false, MaxNameLen); err != nil {
		return err
	}
	if err := checkHosts(g.Hosts); err != nil {
		return err
	}
	if !g.History.valid() {
		return fmt.Errorf("%w: history mode %d", ErrGroupMalformed, g.History)
	}
	if g.Secrets[g.Epoch] == nil {
		return fmt.Errorf("%w: no secrets for the current epoch %d", ErrGroupMalformed, g.Epoch)
	}
	for e, s := range g.Secrets {
		if e > g.Epoch {
			return fmt.Errorf("%w: secrets for epoch %d are newer than the current epoch %d", ErrGroupMalformed, e, g.Epoch)
		}
		if err := checkSecrets(s); err != nil {
			return fmt.Errorf("%w: epoch %d: %w", ErrGroupMalformed, e, err)
		}
	}
	return nil
}

// UnmarshalBinary decodes a group written by MarshalBinary. It accepts only
// the canonical encoding and replaces every field of g.
func (g *Group) UnmarshalBinary(data []byte) error {
	ng, err := unmarshalGroup(data)
	if err != nil {
		return err
	}
	*g = *ng
	return nil
}

func unmarshalGroup(data []byte) (*Group, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrGroupMalformed, fmt.Sprintf(format, args...))
	}
	d := newDecoder(data)
	version := d.u8()
	if !d.ok || (version != groupVersion && version != groupVersionTree) {
		return nil, bad("version %d, want %d or %d", version, groupVersion, groupVersionTree)
	}
	g := &Group{}
	copy(g.ID[:], d.take(len(g.ID)))
	nameLen := int(d.u8())
	name := d.take(nameLen)
	g.Epoch = d.u64()
	g.History = HistoryMode(d.u8())
	sec := int64(d.u64())
	nsec := d.u32()
	if !d.ok {
		return nil, bad("truncated header")
	}
	g.Name = string(name)
	if err := checkText("group name", g.Name, false, MaxNameLen); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrGroupMalformed, err)
	}
	if !g.History.valid() {
		return nil, bad("history mode %d", g.History)
	}
	if nsec >= 1e9 {
		return nil, bad("creation time nanoseconds %d out of range", nsec)
	}
	g.Created = time.Unix(sec, int64(nsec)).UTC()
	hosts, err := readHosts(d)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrGroupMalformed, err)
	}
	g.Hosts = hosts
	n := d.u32()
	if !d.ok || n == 0 || uint64(n) > uint64(d.remaining()/minEpochEntry) {
		return nil, bad("epoch count %d does not fit the %d remaining bytes", n, d.remaining())
	}
	g.Secrets = make(map[uint64]*keymgmt.EpochSecrets, n)
	var prev uint64
	for i := range n {
		e, s, err := readEpochSecrets(d)
		if err != nil {
			return nil, fmt.Errorf("%w: epoch entry %d: %w", ErrGroupMalformed, i, err)
		}
		if i > 0 && e <= prev {
			return nil, bad("epoch entries not strictly ascending (%d after %d)", e, prev)
		}
		if e > g.Epoch {
			return nil, bad("secrets for epoch %d are newer than the current epoch %d", e, g.Epoch)
		}
		prev = e
		g.Secrets[e] = s
	}
	if version == groupVersionTree {
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
				return nil, fmt.Errorf("%w: %w", ErrGroupMalformed, err)
			}
			g.Tree = p
		}
		if flags&groupFlagSeed != 0 {
			sb := d.take(keymgmt.TreeSeedSize)
			if !d.ok {
				return nil, bad("tree seed truncated")
			}
			s, err := keymgmt.ParseTreeSeed(sb)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrGroupMalformed, err)
			}
			g.TreeSeed = s
		}
	}
	if !d.done() {
		return nil, bad("%d trailing bytes", d.remaining())
	}
	if g.Secrets[g.Epoch] == nil {
		return nil, bad("no secrets for the current epoch %d", g.Epoch)
	}
	return g, nil
}

// readEpochSecrets decodes one epoch entry and checks its consistency.
func readEpochSecrets(d *decoder) (uint64, *keymgmt.EpochSecrets, error) {
	e := d.u64()
	flags := d.u8()
	if !d.ok {
		return 0, nil, fmt.Errorf("truncated")
	}
	if flags&^flagWrite != 0 {
		return 0, nil, fmt.Errorf("unknown flags %#x", flags)
	}
	s := &keymgmt.EpochSecrets{}
	copy(s.Read[:], d.take(keymgmt.SecretSize))
	if flags&flagWrite != 0 {
		s.Write = new([keymgmt.SecretSize]byte)
		copy(s.Write[:], d.take(keymgmt.SecretSize))
	}
	s.WPub = ed25519.PublicKey(slices.Clone(d.take(ed25519.PublicKeySize)))
	if !d.ok {
		return 0, nil, fmt.Errorf("truncated")
	}
	if err := checkSecrets(s); err != nil {
		return 0, nil, err
	}
	return e, s, nil
}
