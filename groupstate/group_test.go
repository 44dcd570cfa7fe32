package groupstate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/keymgmt"
)

func TestNewGroupRoundTrip(t *testing.T) {
	created := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	g, err := NewGroup("Friends 🎉", []string{"/dns4/a.example/tcp/4001", "/ip6/::1/udp/4001/quic-v1"},
		WithHistory(HistoryFromJoin), WithCreated(created))
	if err != nil {
		t.Fatal(err)
	}
	if g.ID == (GroupID{}) || g.Epoch != 0 || !g.CanWrite() || g.History != HistoryFromJoin {
		t.Fatalf("unexpected group %+v", g)
	}
	// Add an older read-only epoch and a newer writable one.
	s1, err := keymgmt.NewEpochSecrets()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.AddEpoch(3, s1); err != nil {
		t.Fatal(err)
	}
	s2, _ := keymgmt.NewEpochSecrets()
	if err := g.AddEpoch(1, s2.ReadOnly()); err != nil {
		t.Fatal(err)
	}
	if g.Epoch != 3 {
		t.Fatalf("epoch %d, want 3", g.Epoch)
	}
	b, err := g.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var g2 Group
	if err := g2.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if g2.ID != g.ID || g2.Name != g.Name || g2.Epoch != g.Epoch || g2.History != g.History ||
		!g2.Created.Equal(created) || strings.Join(g2.Hosts, ",") != strings.Join(g.Hosts, ",") || len(g2.Secrets) != 3 {
		t.Fatalf("round trip changed the group:\n%+v\n%+v", g, &g2)
	}
	for e, s := range g.Secrets {
		s2 := g2.Secrets[e]
		if s2.Read != s.Read || !s2.WPub.Equal(s.WPub) || (s.Write == nil) != (s2.Write == nil) || (s.Write != nil && *s.Write != *s2.Write) {
			t.Fatalf("epoch %d secrets changed", e)
		}
	}
	b2, _ := g2.MarshalBinary()
	if !bytes.Equal(b, b2) {
		t.Fatal("encoding not canonical")
	}
	k, err := g2.Keys(1)
	if err != nil || k.CanWrite() {
		t.Fatalf("epoch 1 keys: %v, writable %v", err, k != nil && k.CanWrite())
	}
	if _, err := g2.Keys(2); !errors.Is(err, ErrNoEpoch) {
		t.Fatalf("missing epoch: %v", err)
	}
}

func TestGroupZeroCreatedRoundTrip(t *testing.T) {
	g, _ := testGroup(t)
	g.Created = time.Time{}
	b, err := g.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var g2 Group
	if err := g2.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !g2.Created.IsZero() {
		t.Fatalf("zero time became %v", g2.Created)
	}
}

func TestNewGroupRejects(t *testing.T) {
	tests := []struct {
		name  string
		gname string
		hosts []string
		want  error
	}{
		{"empty name", "", nil, ErrInvalidName},
		{"long name", strings.Repeat("x", 65), nil, ErrInvalidName},
		{"invalid utf8", "a\xffb", nil, ErrInvalidName},
		{"newline", "a\nb", nil, ErrInvalidName},
		{"nul", "a\x00b", nil, ErrInvalidName},
		{"del", "a\x7fb", nil, ErrInvalidName},
		{"c1 control", "a\u0085b", nil, ErrInvalidName},
		{"bidi override", "abc\u202Egpj.exe", nil, ErrInvalidName},
		{"bidi isolate", "a\u2067b", nil, ErrInvalidName},
		{"empty host", "ok", []string{""}, ErrInvalidHost},
		{"host not multiaddr", "ok", []string{"example.org:4001"}, ErrInvalidHost},
		{"host with space", "ok", []string{"/dns4/a b/tcp/1"}, ErrInvalidHost},
		{"host non-ascii", "ok", []string{"/dns4/ä/tcp/1"}, ErrInvalidHost},
		{"host too long", "ok", []string{"/" + strings.Repeat("a", 256)}, ErrInvalidHost},
		{"duplicate host", "ok", []string{"/ip4/1.2.3.4/tcp/1", "/ip4/1.2.3.4/tcp/1"}, ErrInvalidHost},
		{"too many hosts", "ok", manyHosts(17), ErrInvalidHost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewGroup(tt.gname, tt.hosts); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	// The limits themselves are accepted.
	if _, err := NewGroup(strings.Repeat("é", 32), manyHosts(16)); err != nil {
		t.Fatalf("64-byte name and 16 hosts: %v", err)
	}
	if _, err := NewGroup("ok", []string{"/" + strings.Repeat("a", 255)}); err != nil {
		t.Fatalf("256-byte host: %v", err)
	}
	if _, err := NewGroup("ok", nil, WithHistory(7)); !errors.Is(err, ErrGroupMalformed) {
		t.Fatalf("bad history option: %v", err)
	}
}

func manyHosts(n int) []string {
	h := make([]string, n)
	for i := range h {
		h[i] = "/ip4/10.0.0." + string(rune('a'+i)) + "/tcp/4001"
	}
	return h
}

func TestGroupMarshalRejectsInvalid(t *testing.T) {
	other, _ := keymgmt.NewEpochSecrets()
	tests := []struct {
		name   string
		mutate func(g *Group)
	}{
		{"bad name", func(g *Group) { g.Name = "" }},
		{"bad history", func(g *Group) { g.History = 0 }},
		{"no current epoch", func(g *Group) { g.Epoch = 5 }},
		{"future epoch", func(g *Group) { g.Secrets[9] = other }},
		{"wpub mismatch", func(g *Group) { g.Secrets[0].WPub = other.WPub }},
		{"nil secrets", func(g *Group) { g.Secrets[0] = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, _ := testGroup(t)
			tt.mutate(g)
			if _, err := g.MarshalBinary(); err == nil {
				t.Fatal("invalid group encoded")
			}
		})
	}
}

func TestGroupUnmarshalRejects(t *testing.T) {
	g, _ := testGroup(t)
	s1, _ := keymgmt.NewEpochSecrets()
	if err := g.AddEpoch(1, s1); err != nil {
		t.Fatal(err)
	}
	good, err := g.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// Offsets in the encoding of g.
	nameOff := 1 + 16
	epochOff := nameOff + 1 + len(g.Name)
	histOff := epochOff + 8
	nsecOff := histOff + 1 + 8
	hostsOff := nsecOff + 4
	countOff := hostsOff + 1 + 2 + len(g.Hosts[0])
	firstEntry := countOff + 4
	secondEntry := firstEntry + 8 + 1 + 32 + 32 + 32

	mut := func(f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), good...))
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"bad version", mut(func(b []byte) []byte { b[0] = 2; return b })},
		{"trailing byte", mut(func(b []byte) []byte { return append(b, 0) })},
		{"name too long", mut(func(b []byte) []byte { b[nameOff] = 200; return b })},
		{"name control char", mut(func(b []byte) []byte { b[nameOff+1] = '\n'; return b })},
		{"bad history", mut(func(b []byte) []byte { b[histOff] = 3; return b })},
		{"nanoseconds out of range", mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b[nsecOff:], 1e9); return b })},
		{"too many hosts", mut(func(b []byte) []byte { b[hostsOff] = 17; return b })},
		{"host length too long", mut(func(b []byte) []byte { binary.BigEndian.PutUint16(b[hostsOff+1:], 300); return b })},
		{"zero epochs", mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b[countOff:], 0); return b })},
		{"huge epoch count", mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b[countOff:], 1<<31); return b })},
		{"unknown flag", mut(func(b []byte) []byte { b[firstEntry+8] |= 2; return b })},
		{"wpub mismatch", mut(func(b []byte) []byte { b[firstEntry+8+1+64] ^= 1; return b })},
		{"epochs not ascending", mut(func(b []byte) []byte { binary.BigEndian.PutUint64(b[secondEntry:], 0); return b })},
		{"secrets newer than current", mut(func(b []byte) []byte { binary.BigEndian.PutUint64(b[epochOff:], 0); return b })},
		{"current epoch missing", mut(func(b []byte) []byte { binary.BigEndian.PutUint64(b[epochOff:], 2); return b })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g2 Group
			if err := g2.UnmarshalBinary(tt.data); !errors.Is(err, ErrGroupMalformed) {
				t.Fatalf("got %v, want ErrGroupMalformed", err)
			}
		})
	}
	for n := range len(good) {
		var g2 Group
		if err := g2.UnmarshalBinary(good[:n]); !errors.Is(err, ErrGroupMalformed) {
			t.Fatalf("truncated to %d bytes: %v", n, err)
		}
	}
}

func TestParseGroupID(t *testing.T) {
	g, _ := testGroup(t)
	id, err := ParseGroupID(g.ID.String())
	if err != nil || id != g.ID {
		t.Fatalf("round trip: %v", err)
	}
	for _, s := range []string{"", "zz", g.ID.String()[2:], g.ID.String() + "00"} {
		if _, err := ParseGroupID(s); !errors.Is(err, ErrGroupMalformed) {
			t.Fatalf("%q: %v", s, err)
		}
	}
}

func FuzzGroupUnmarshal(f *testing.F) {
	g, _ := testGroup(f)
	s1, _ := keymgmt.NewEpochSecrets()
	_ = g.AddEpoch(2, s1.ReadOnly())
	b, err := g.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	g.Hosts = nil
	b, _ = g.MarshalBinary()
	f.Add(b)
	// Records holding a key tree path, and a manager's with the seed.
	tg, me, _ := treeFixture(f)
	for _, tree := range []*Group{tg.m.g, me.g} {
		if tree.Tree == nil {
			f.Fatal("the tree fixture's records hold no path")
		}
		b, _ = tree.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var g Group
		if err := g.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, ErrGroupMalformed) {
				t.Fatalf("unexpected error type: %v", err)
			}
			return
		}
		out, err := g.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded group does not encode: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("non-canonical encoding accepted")
		}
	})
}
