package groupstate

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/keymgmt"
)

// inviteBinary decodes an invite string to its binary part (no checksum).
func inviteBinary(t testing.TB, s string) []byte {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(s, InvitePrefix))
	if err != nil {
		t.Fatal(err)
	}
	return raw[:len(raw)-inviteChecksumSize]
}

// reencode builds an invite string with a valid checksum around bin.
func reencode(bin []byte) string {
	return InvitePrefix + base64.RawURLEncoding.EncodeToString(append(append([]byte(nil), bin...), inviteChecksum(bin)...))
}

func TestInviteRoundTrip(t *testing.T) {
	for _, write := range []bool{true, false} {
		g, _ := testGroup(t)
		g.History = HistoryFromJoin
		s, err := NewInvite(g, write)
		if err != nil {
			t.Fatal(err)
		}
		inv, err := ParseInvite(s)
		if err != nil {
			t.Fatal(err)
		}
		if inv.CanWrite() != write || inv.GroupID != g.ID || inv.Name != g.Name || inv.Epoch != g.Epoch ||
			inv.History != g.History || strings.Join(inv.Hosts, " ") != strings.Join(g.Hosts, " ") {
			t.Fatalf("write=%v: invite differs from group: %+v", write, inv)
		}
		if inv.String() != s {
			t.Fatal("invite text not canonical")
		}
		j := inv.Group()
		if j.CanWrite() != write || !j.Created.IsZero() {
			t.Fatalf("joined group: write %v created %v", j.CanWrite(), j.Created)
		}
		jk, err := j.CurrentKeys()
		if err != nil {
			t.Fatal(err)
		}
		gk, _ := g.CurrentKeys()
		if jk.ReadKey != gk.ReadKey || jk.Mailbox != gk.Mailbox {
			t.Fatal("joined member derives other keys")
		}
		// The joined group is a valid stored group.
		if _, err := j.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
		// Group() shares no memory with the invite.
		j.Hosts[0] = "/changed"
		j.Secrets[j.Epoch].WPub[0] ^= 1
		if inv.Hosts[0] == "/changed" || inv.Secrets.WPub[0] != gk.WritePub[0] {
			t.Fatal("Group aliases the invite")
		}
	}
}

// TestInviteCarriesNoIdentityKeys checks the exact bytes of an invite: it
// is precisely the listed fields, it never contains the creator's identity
// key (private or public), and a read-only invite never contains W_n or
// the write key derived from it.
func TestInviteCarriesNoIdentityKeys(t *testing.T) {
	g, k := testGroup(t)
	creator := testAuthor(t)
	// The creator has used its identity in the group.
	if _, err := SealMessage(k, signedText(t, g, creator, "hello")); err != nil {
		t.Fatal(err)
	}
	s0 := g.Secrets[g.Epoch]
	for _, write := range []bool{true, false} {
		s, err := NewInvite(g, write)
		if err != nil {
			t.Fatal(err)
		}
		bin := inviteBinary(t, s)
		// Build the expected encoding from the listed fields only.
		var want []byte
		want = append(want, 1, 0)
		if write {
			want[1] = 1
		}
		want = append(want, g.ID[:]...)
		want = append(want, byte(len(g.Name)))
		want = append(want, g.Name...)
		want = binary.BigEndian.AppendUint64(want, g.Epoch)
		want = append(want, byte(g.History))
		want = append(want, s0.Read[:]...)
		if write {
			want = append(want, s0.Write[:]...)
		}
		want = append(want, s0.WPub...)
		want = append(want, byte(len(g.Hosts)), 0, byte(len(g.Hosts[0])))
		want = append(want, g.Hosts[0]...)
		if !bytes.Equal(bin, want) {
			t.Fatalf("write=%v: invite bytes are not exactly the listed fields\n got %x\nwant %x", write, bin, want)
		}
		secretsOf := map[string][]byte{
			"identity seed":        creator.Seed(),
			"identity private":     creator,
			"identity public":      creator.Public().(ed25519.PublicKey),
			"write private (seed)": k.WritePriv.Seed(),
		}
		if !write {
			secretsOf["W_n"] = s0.Write[:]
		}
		for name, secret := range secretsOf {
			if bytes.Contains(bin, secret[:16]) {
				t.Fatalf("write=%v: invite contains the %s", write, name)
			}
		}
		if !write && len(bin) != len(want) {
			t.Fatal("read-only invite has room for more")
		}
	}
}

func TestNewInviteReadOnlyMember(t *testing.T) {
	g, _ := testGroup(t)
	s, _ := NewInvite(g, false)
	inv, _ := ParseInvite(s)
	ro := inv.Group()
	if _, err := NewInvite(ro, true); !errors.Is(err, ErrCannotWrite) {
		t.Fatalf("read-only member made a write invite: %v", err)
	}
	s2, err := NewInvite(ro, false)
	if err != nil || s2 != s {
		t.Fatalf("read-only member re-invites: %v", err)
	}
}

func TestParseInviteWhitespace(t *testing.T) {
	g, _ := testGroup(t)
	s, _ := NewInvite(g, true)
	wrapped := "  \n" + s[:20] + "\r\n" + s[20:40] + " \t" + s[40:] + "\n\n"
	inv, err := ParseInvite(wrapped)
	if err != nil {
		t.Fatal(err)
	}
	if inv.String() != s {
		t.Fatal("whitespace changed the invite")
	}
}

// errTypo in a test table accepts ErrInviteChecksum or ErrInviteMalformed.
var errTypo = errors.New("checksum or malformed")

func TestParseInviteRejects(t *testing.T) {
	g, _ := testGroup(t)
	good, _ := NewInvite(g, true)
	bin := inviteBinary(t, good)
	mutBin := func(f func(b []byte) []byte) string {
		return reencode(f(append([]byte(nil), bin...)))
	}
	raw, _ := base64.RawURLEncoding.DecodeString(good[len(InvitePrefix):])
	badSum := append([]byte(nil), raw...)
	badSum[len(badSum)-1] ^= 1
	nameOff := 1 + 1 + 16
	hostsOff := nameOff + 1 + len(g.Name) + 8 + 1 + 96
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrInviteMalformed},
		{"other text", "hello there", ErrInviteMalformed},
		{"prefix only", InvitePrefix, ErrInviteMalformed},
		{"other version", "meshnode-invite-v2.AAAA", ErrInviteVersion},
		{"non-base64", good[:40] + "*" + good[41:], ErrInviteMalformed},
		{"padding chars", good + "==", ErrInviteMalformed},
		// Truncation and extra characters fail base64 or the checksum,
		// depending on the length modulo 4; both are "ask again" errors.
		{"truncated by one", good[:len(good)-1], errTypo},
		{"truncated by two", good[:len(good)-2], errTypo},
		{"truncated to half", good[:len(good)/2], errTypo},
		{"extra char", good + "A", errTypo},
		{"extra chars", good + "AA", errTypo},
		{"bad checksum", InvitePrefix + base64.RawURLEncoding.EncodeToString(badSum), ErrInviteChecksum},
		{"very long", strings.Repeat(" ", maxInviteText+1), ErrInviteMalformed},
		{"bad version byte", mutBin(func(b []byte) []byte { b[0] = 2; return b }), ErrInviteMalformed},
		{"unknown flag", mutBin(func(b []byte) []byte { b[1] |= 4; return b }), ErrInviteMalformed},
		{"write flag without W", mutBin(func(b []byte) []byte { b[1] = 1; return b[:len(b)-1] }), ErrInviteMalformed},
		{"read-only flag with W", mutBin(func(b []byte) []byte { b[1] = 0; return b }), ErrInviteMalformed},
		{"empty name", mutBin(func(b []byte) []byte { b[nameOff] = 0; return b }), ErrInviteMalformed},
		{"control char in name", mutBin(func(b []byte) []byte { b[nameOff+1] = 0x1b; return b }), ErrInviteMalformed},
		{"bad history", mutBin(func(b []byte) []byte { b[nameOff+1+len(g.Name)+8] = 0; return b }), ErrInviteMalformed},
		{"wpub mismatch", mutBin(func(b []byte) []byte { b[hostsOff-1] ^= 1; return b }), ErrInviteMalformed},
		{"too many hosts", mutBin(func(b []byte) []byte { b[hostsOff] = 17; return b }), ErrInviteMalformed},
		{"host too long", mutBin(func(b []byte) []byte { b[hostsOff+1] = 2; return b }), ErrInviteMalformed},
		{"host not multiaddr", mutBin(func(b []byte) []byte { b[hostsOff+3] = 'x'; return b }), ErrInviteMalformed},
		{"trailing byte", mutBin(func(b []byte) []byte { return append(b, 0) }), ErrInviteMalformed},
		{"truncated binary", mutBin(func(b []byte) []byte { return b[:len(b)-3] }), ErrInviteMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseInvite(tt.in)
			if tt.want == errTypo && (errors.Is(err, ErrInviteChecksum) || errors.Is(err, ErrInviteMalformed)) {
				tt.want = err
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if tt.want != ErrInviteVersion && !strings.Contains(err.Error(), "ask the inviter to send the invite again") {
				t.Fatalf("error does not say what to do: %v", err)
			}
		})
	}
}

// TestParseInviteEveryTypo changes every character of an invite to another
// base64url character and truncates it at every length: each variant must
// be rejected (the 32-bit checksum makes a miss astronomically unlikely).
func TestParseInviteEveryTypo(t *testing.T) {
	g, _ := testGroup(t)
	good, _ := NewInvite(g, false)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := len(InvitePrefix); i < len(good); i++ {
		c := alphabet[(strings.IndexByte(alphabet, good[i])+17)%len(alphabet)]
		bad := good[:i] + string(c) + good[i+1:]
		if _, err := ParseInvite(bad); !errors.Is(err, ErrInviteChecksum) && !errors.Is(err, ErrInviteMalformed) {
			t.Fatalf("typo at %d accepted: %v", i, err)
		}
	}
	for n := range len(good) {
		if _, err := ParseInvite(good[:n]); err == nil {
			t.Fatalf("invite truncated to %d characters accepted", n)
		}
	}
	// Bit flips in the decoded bytes.
	raw, _ := base64.RawURLEncoding.DecodeString(good[len(InvitePrefix):])
	for i := range len(raw) * 8 {
		b := append([]byte(nil), raw...)
		b[i/8] ^= 1 << (i % 8)
		if _, err := ParseInvite(InvitePrefix + base64.RawURLEncoding.EncodeToString(b)); !errors.Is(err, ErrInviteChecksum) {
			t.Fatalf("bit flip %d: %v", i, err)
		}
	}
}

func TestInviteChecksumIsDomainSeparated(t *testing.T) {
	bin := []byte("x")
	plain := sha256.Sum256(bin)
	if bytes.Equal(inviteChecksum(bin), plain[:inviteChecksumSize]) {
		t.Fatal("checksum is a bare SHA-256")
	}
}

func TestInviteMaxSizes(t *testing.T) {
	hosts := make([]string, MaxHosts)
	for i := range hosts {
		hosts[i] = "/" + strings.Repeat(string(rune('a'+i)), MaxHostLen-1)
	}
	g, err := NewGroup(strings.Repeat("n", MaxNameLen), hosts)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewInvite(g, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(inviteBinary(t, s)) != maxInviteBinary {
		t.Fatalf("largest invite is %d bytes, maxInviteBinary %d", len(inviteBinary(t, s)), maxInviteBinary)
	}
	if _, err := ParseInvite(s); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseInvite(f *testing.F) {
	g, _ := testGroup(f)
	for _, w := range []bool{true, false} {
		s, err := NewInvite(g, w)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s)
	}
	s1, _ := keymgmt.NewEpochSecrets()
	_ = g.AddEpoch(7, s1)
	g.Hosts = nil
	s, _ := NewInvite(g, true)
	f.Add(s)
	f.Add("meshnode-invite-v1.")
	f.Fuzz(func(t *testing.T, s string) {
		inv, err := ParseInvite(s)
		if err != nil {
			if !errors.Is(err, ErrInviteMalformed) && !errors.Is(err, ErrInviteChecksum) && !errors.Is(err, ErrInviteVersion) {
				t.Fatalf("unexpected error type: %v", err)
			}
			return
		}
		again, err := ParseInvite(inv.String())
		if err != nil {
			t.Fatalf("re-encoded invite does not parse: %v", err)
		}
		if again.String() != inv.String() {
			t.Fatal("invite encoding not canonical")
		}
		if _, err := inv.Group().MarshalBinary(); err != nil {
			t.Fatalf("accepted invite gives an invalid group: %v", err)
		}
	})
}
