package reconcile

import (
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/meshnode/meshnode/envelope"
)

// randomBound returns a bound that is often an ID of ids, sometimes a
// prefix, Lowest or Infinity.
func randomBound(r *rand.Rand, ids []envelope.ID) Bound {
	switch r.IntN(6) {
	case 0:
		return Lowest()
	case 1:
		return Infinity()
	case 2:
		var b Bound
		b.v[0] = byte(r.Uint32())
		return b
	}
	if len(ids) == 0 {
		return Lowest()
	}
	return BoundOf(ids[r.IntN(len(ids))])
}

func TestMemSetMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	all := randomIDs(r, 3000)
	s := NewMemSet(all[:1000]...)
	s.Add(all[500:2000]...) // overlapping batch
	s.Add(all[2000:]...)
	s.Add()
	want := slices.Clone(all)
	slices.SortFunc(want, compareIDs)
	if got := s.IDs(); !slices.Equal(got, want) || s.Len() != len(want) {
		t.Fatalf("IDs: %d, want %d sorted distinct", len(got), len(want))
	}
	if !s.Has(all[42]) || s.Has(envelope.ID{1, 2, 3}) {
		t.Fatal("Has is wrong")
	}
	for range 500 {
		lo, hi := randomBound(r, all), randomBound(r, all)
		var in []envelope.ID
		for _, id := range want {
			if InRange(lo, hi, id) {
				in = append(in, id)
			}
		}
		fp, n, err := s.Fingerprint(lo, hi)
		if err != nil || n != len(in) || fp != referenceFingerprint(in) {
			t.Fatalf("Fingerprint(%v, %v): %d IDs, err %v; want %d", lo, hi, n, err, len(in))
		}
		var got []envelope.ID
		if err := s.Range(lo, hi, func(id envelope.ID) bool { got = append(got, id); return true }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, in) {
			t.Fatalf("Range(%v, %v): %d IDs, want %d", lo, hi, len(got), len(in))
		}
		// Early stop after k IDs.
		k, seen := r.IntN(len(in)+1), 0
		s.Range(lo, hi, func(envelope.ID) bool { seen++; return seen < k })
		if want := min(max(k, 1), len(in)); seen != want {
			t.Fatalf("Range stopped after %d, want %d", seen, want)
		}
		if len(in) > 0 {
			j := r.IntN(len(in))
			id, ok, err := s.Nth(lo, j)
			if err != nil || !ok || id != in[j] {
				t.Fatalf("Nth(%v, %d) = %x %v %v", lo, j, id, ok, err)
			}
		}
	}
	if _, ok, _ := s.Nth(Lowest(), len(want)); ok {
		t.Fatal("Nth past the end")
	}
	if _, ok, _ := s.Nth(Lowest(), -1); ok {
		t.Fatal("Nth(-1)")
	}
}

func TestMemSetRangeEdges(t *testing.T) {
	var top envelope.ID
	for i := range top {
		top[i] = 0xff
	}
	r := rand.New(rand.NewPCG(4, 4))
	ids := append(randomIDs(r, 600), top, envelope.ID{})
	s := NewMemSet(ids...)
	var got []envelope.ID
	s.Range(Lowest(), Infinity(), func(id envelope.ID) bool { got = append(got, id); return true })
	if len(got) != len(ids) || got[0] != (envelope.ID{}) || got[len(got)-1] != top {
		t.Fatalf("Range over everything: %d IDs, want %d with both extremes", len(got), len(ids))
	}
	// fn may call back into the set (no lock held).
	s.Range(Lowest(), Infinity(), func(id envelope.ID) bool { s.Has(id); s.Add(id); return true })
}

func TestMemSetConcurrent(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	ids := randomIDs(r, 4000)
	s := NewMemSet(ids[:1000]...)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 1000; i < len(ids); i += 100 {
			s.Add(ids[i : i+100]...)
		}
	}()
	go func() {
		defer wg.Done()
		for range 200 {
			if _, n, _ := s.Fingerprint(Lowest(), Infinity()); n < 1000 {
				t.Errorf("count %d fell below 1000", n)
			}
			s.Range(Lowest(), Infinity(), func(envelope.ID) bool { return true })
		}
	}()
	wg.Wait()
	if s.Len() != len(ids) {
		t.Fatalf("Len %d, want %d", s.Len(), len(ids))
	}
}
