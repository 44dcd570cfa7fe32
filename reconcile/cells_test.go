package reconcile

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestPeel decodes difference tables of 1 to 64 cells: every difference
// that decodes gives exactly the keys each side lacks, small differences
// in large enough tables always decode, and a table that cannot hold the
// difference reports failure rather than a wrong answer.
func TestPeel(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	h := hasher{}
	decoded := 0
	for trial := range 2000 {
		c := []int{1, 3, 6, 12, 64}[trial%5]
		d := 1 + trial%9
		common := make([]uint64, 30)
		for i := range common {
			common[i] = r.Uint64()
		}
		var theirs, ours []uint64
		for range d {
			if r.IntN(2) == 0 {
				theirs = append(theirs, r.Uint64())
			} else {
				ours = append(ours, r.Uint64())
			}
		}
		table := make([]cell, c)
		for _, k := range append(slices.Clone(common), theirs...) {
			h.addKey(table, k, 1)
		}
		for _, k := range append(slices.Clone(common), ours...) {
			h.addKey(table, k, -1)
		}
		gotTheirs, gotOurs, ok := h.peel(table)
		if !ok {
			if c >= 12 && d <= 2 {
				t.Fatalf("a table of %d cells failed on %d differences", c, d)
			}
			continue
		}
		decoded++
		slices.Sort(gotTheirs)
		slices.Sort(gotOurs)
		slices.Sort(theirs)
		slices.Sort(ours)
		if !slices.Equal(gotTheirs, theirs) || !slices.Equal(gotOurs, ours) {
			t.Fatalf("c=%d d=%d: decoded %v / %v, want %v / %v", c, d, gotTheirs, gotOurs, theirs, ours)
		}
	}
	if decoded < 800 {
		t.Fatalf("only %d of 2000 tables decoded (about half are too small for their difference)", decoded)
	}
	// One cell holds one difference exactly.
	one := make([]cell, 1)
	h.addKey(one, 42, 1)
	if th, _, ok := h.peel(one); !ok || len(th) != 1 || th[0] != 42 {
		t.Fatalf("one cell: %v %v", th, ok)
	}
}
