package reconcile

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/meshnode/meshnode/envelope"
)

func TestBetween(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	check := func(prev, next envelope.ID) {
		t.Helper()
		m := between(prev, next)
		if m.CompareID(prev) <= 0 || m.CompareID(next) > 0 {
			t.Fatalf("between(%x, %x) = %v: not in (prev, next]", prev, next, m)
		}
		// Shortest: dropping the last significant byte must not separate.
		if n := m.prefixLen(); n > 0 {
			shorter := m
			shorter.v[n-1] = 0
			if shorter.CompareID(prev) > 0 {
				t.Fatalf("between(%x, %x) = %v is not the shortest", prev, next, m)
			}
		}
	}
	for range 1000 {
		ids := randomIDs(r, 2)
		if c := compareIDs(ids[0], ids[1]); c > 0 {
			ids[0], ids[1] = ids[1], ids[0]
		} else if c == 0 {
			continue
		}
		check(ids[0], ids[1])
	}
	var lo, hi envelope.ID
	hi[31] = 1
	check(lo, hi) // differ in the last byte: the bound is next itself
	for i := range lo {
		lo[i], hi[i] = 0xff, 0xff
	}
	lo[0] = 0xfe
	check(lo, hi)
}

func TestBoundOrderAndEncoding(t *testing.T) {
	var id envelope.ID
	id[0], id[1] = 0x12, 0x34
	cases := []struct {
		b    Bound
		wire []byte
		str  string
	}{
		{Lowest(), []byte{0}, ""},
		{BoundOf(id), []byte{2, 0x12, 0x34}, "1234"},
		{Infinity(), []byte{0xff}, "inf"},
	}
	for i, c := range cases {
		if got := appendBound(nil, c.b); !bytes.Equal(got, c.wire) {
			t.Errorf("%d: encoded %x, want %x", i, got, c.wire)
		}
		if c.b.encodedLen() != len(c.wire) {
			t.Errorf("%d: encodedLen %d, want %d", i, c.b.encodedLen(), len(c.wire))
		}
		if c.b.String() != c.str {
			t.Errorf("%d: String %q, want %q", i, c.b.String(), c.str)
		}
		d := decoder{b: c.wire}
		got, err := d.bound()
		if err != nil || got != c.b {
			t.Errorf("%d: decoded %v, %v", i, got, err)
		}
		for j, o := range cases {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if c.b.Compare(o.b) != want {
				t.Errorf("Compare(%v, %v) = %d, want %d", c.b, o.b, c.b.Compare(o.b), want)
			}
		}
	}
	if !InRange(Lowest(), Infinity(), id) || InRange(BoundOf(id), BoundOf(id), id) || !InRange(BoundOf(id), Infinity(), id) {
		t.Error("InRange is wrong at the edges")
	}
	if v, ok := Infinity().Value(); ok || v != (envelope.ID{}) {
		t.Error("Infinity has a value")
	}
	if v, ok := BoundOf(id).Value(); !ok || v != id {
		t.Error("BoundOf(id).Value() is not id")
	}
}
