package groupstate

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/meshnode/meshnode/keymgmt"
)

// InvitePrefix starts every version-1 invite string.
const InvitePrefix = "meshnode-invite-v1."

// invitePrefixStem is what every invite version shares; an invite that
// starts with it but not with InvitePrefix is of another version.
const invitePrefixStem = "meshnode-invite-"

// inviteChecksumSize is the length of the truncated SHA-256 checksum. It
// detects transmission errors, not forgery: an invite is a bearer secret
// and must travel over a channel the inviter trusts.
const inviteChecksumSize = 4

// inviteChecksumLabel domain-separates the checksum hash.
const inviteChecksumLabel = InvitePrefix + "checksum"

// Size limits of an invite, derived from the encoding below.
const (
	maxInviteBinary = 1 + 1 + 16 + 1 + MaxNameLen + 8 + 1 + 3*32 + 1 + MaxHosts*(2+MaxHostLen)
	// maxInviteText bounds the input ParseInvite looks at, with generous
	// room for whitespace a chat program may insert.
	maxInviteText = 4 * (len(InvitePrefix) + (maxInviteBinary+inviteChecksumSize+2)/3*4)
)

// askAgain is appended to every invite error: the fix is always the same.
const askAgain = "ask the inviter to send the invite again"

// Invite is exactly what a joining member needs: the group's identity and
// name, the current epoch and its secrets (R_n and WPub_n, plus W_n for a
// write invite), the history mode and bootstrap hosts. It never carries the
// inviter's identity keys.
type Invite struct {
	GroupID GroupID
	Name    string
	Epoch   uint64
	// Secrets of Epoch; Secrets.Write is nil for a read-only invite.
	Secrets *keymgmt.EpochSecrets
	History HistoryMode
	Hosts   []string
}

// CanWrite reports whether the invite grants the write secret.
func (inv *Invite) CanWrite() bool { return inv.Secrets != nil && inv.Secrets.Write != nil }

// NewInvite builds an invite to g's current epoch. A read-only invite
// (write == false) leaves out W_n; write invites need a group that holds it.
func NewInvite(g *Group, write bool) (string, error) {
	if err := g.validate(); err != nil {
		return "", err
	}
	s := g.Secrets[g.Epoch]
	if write && s.Write == nil {
		return "", fmt.Errorf("%w: this member holds no write secret for epoch %d, so it can only make read-only invites", ErrCannotWrite, g.Epoch)
	}
	if !write {
		s = s.ReadOnly()
	}
	inv := &Invite{GroupID: g.ID, Name: g.Name, Epoch: g.Epoch, Secrets: s, History: g.History, Hosts: g.Hosts}
	return inv.String(), nil
}

// Invite binary encoding, version 1 (integers big-endian):
//
//	1   version (0x01)
//	1   flags (bit 0: write secret present; other bits 0)
//	16  group ID
//	1   name length N (1..64), then N bytes of UTF-8
//	8   epoch
//	1   history mode (1 shared, 2 from-join)
//	32  R_n
//	32  W_n (only if the write flag is set)
//	32  WPub_n
//	1   host count H (0..16), then per host: 2-byte length (1..256), bytes
//
// Text form: InvitePrefix ‖ base64url-nopad(binary ‖ checksum) where
// checksum = SHA-256(inviteChecksumLabel ‖ binary)[:4].
const inviteVersion = 1

// binary encodes the invite; the caller has validated it.
func (inv *Invite) binary() []byte {
	b := make([]byte, 0, maxInviteBinary)
	b = append(b, inviteVersion)
	if inv.CanWrite() {
		b = append(b, flagWrite)
	} else {
		b = append(b, 0)
	}
	b = append(b, inv.GroupID[:]...)
	b = append(b, byte(len(inv.Name)))
	b = append(b, inv.Name...)
	b = binary.BigEndian.AppendUint64(b, inv.Epoch)
	b = append(b, byte(inv.History))
	b = append(b, inv.Secrets.Read[:]...)
	if inv.CanWrite() {
		b = append(b, inv.Secrets.Write[:]...)
	}
	b = append(b, inv.Secrets.WPub...)
	return appendHosts(b, inv.Hosts)
}

// String returns the invite text. The invite must be valid (as built by
// NewInvite or returned by ParseInvite); one without secrets gives "".
func (inv *Invite) String() string {
	if inv.Secrets == nil {
		return ""
	}
	bin := inv.binary()
	bin = append(bin, inviteChecksum(bin)...)
	return InvitePrefix + base64.RawURLEncoding.EncodeToString(bin)
}

func inviteChecksum(bin []byte) []byte {
	h := sha256.New()
	h.Write([]byte(inviteChecksumLabel))
	h.Write(bin)
	return h.Sum(nil)[:inviteChecksumSize]
}

// ParseInvite parses and checks an invite string. Whitespace anywhere
// (leading, trailing, or line breaks a chat program inserted) is ignored.
// A truncated or mistyped invite gives ErrInviteChecksum or
// ErrInviteMalformed with a message that says to ask for it again.
func ParseInvite(s string) (*Invite, error) {
	if len(s) > maxInviteText {
		return nil, fmt.Errorf("%w: %d characters is far longer than any invite; %s", ErrInviteMalformed, len(s), askAgain)
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
	if !strings.HasPrefix(s, InvitePrefix) {
		if strings.HasPrefix(s, invitePrefixStem) {
			return nil, fmt.Errorf("%w: this node reads %q invites; update meshnode or ask for a %s invite", ErrInviteVersion, InvitePrefix, InvitePrefix)
		}
		return nil, fmt.Errorf("%w: not a meshnode invite (it must start with %q); %s", ErrInviteMalformed, InvitePrefix, askAgain)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s[len(InvitePrefix):])
	if err != nil {
		return nil, fmt.Errorf("%w: the invite contains characters that do not belong to it or was cut off (%v); %s", ErrInviteMalformed, err, askAgain)
	}
	if len(raw) <= inviteChecksumSize {
		return nil, fmt.Errorf("%w: the invite is cut off; %s", ErrInviteMalformed, askAgain)
	}
	bin, sum := raw[:len(raw)-inviteChecksumSize], raw[len(raw)-inviteChecksumSize:]
	if !bytes.Equal(sum, inviteChecksum(bin)) {
		return nil, fmt.Errorf("%w: the invite was truncated or mistyped; %s", ErrInviteChecksum, askAgain)
	}
	inv, err := parseInviteBinary(bin)
	if err != nil {
		return nil, fmt.Errorf("%w: %w; %s", ErrInviteMalformed, err, askAgain)
	}
	return inv, nil
}

func parseInviteBinary(bin []byte) (*Invite, error) {
	d := newDecoder(bin)
	if v := d.u8(); v != inviteVersion {
		return nil, fmt.Errorf("encoding version %d, want %d", v, inviteVersion)
	}
	flags := d.u8()
	if flags&^flagWrite != 0 {
		return nil, fmt.Errorf("unknown flags %#x", flags)
	}
	inv := &Invite{Secrets: &keymgmt.EpochSecrets{}}
	copy(inv.GroupID[:], d.take(len(inv.GroupID)))
	name := d.take(int(d.u8()))
	inv.Epoch = d.u64()
	inv.History = HistoryMode(d.u8())
	copy(inv.Secrets.Read[:], d.take(keymgmt.SecretSize))
	if flags&flagWrite != 0 {
		inv.Secrets.Write = new([keymgmt.SecretSize]byte)
		copy(inv.Secrets.Write[:], d.take(keymgmt.SecretSize))
	}
	inv.Secrets.WPub = ed25519.PublicKey(slices.Clone(d.take(ed25519.PublicKeySize)))
	if !d.ok {
		return nil, fmt.Errorf("truncated")
	}
	inv.Name = string(name)
	if err := checkText("group name", inv.Name, false, MaxNameLen); err != nil {
		return nil, err
	}
	if !inv.History.valid() {
		return nil, fmt.Errorf("history mode %d", inv.History)
	}
	hosts, err := readHosts(d)
	if err != nil {
		return nil, err
	}
	inv.Hosts = hosts
	if !d.done() {
		return nil, fmt.Errorf("%d trailing bytes", d.remaining())
	}
	if err := checkSecrets(inv.Secrets); err != nil {
		return nil, err
	}
	return inv, nil
}

// Group returns the group as the joining member holds it: the invite's
// epoch as current epoch with its secrets, and a zero Created time (the
// invite does not carry it). The result shares nothing with inv.
func (inv *Invite) Group() *Group {
	s := &keymgmt.EpochSecrets{Read: inv.Secrets.Read, WPub: slices.Clone(inv.Secrets.WPub)}
	if inv.Secrets.Write != nil {
		w := *inv.Secrets.Write
		s.Write = &w
	}
	return &Group{
		ID:      inv.GroupID,
		Name:    inv.Name,
		Epoch:   inv.Epoch,
		Secrets: map[uint64]*keymgmt.EpochSecrets{inv.Epoch: s},
		Hosts:   slices.Clone(inv.Hosts),
		History: inv.History,
	}
}
