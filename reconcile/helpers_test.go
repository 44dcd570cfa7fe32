package reconcile

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/meshnode/meshnode/envelope"
)

// randomIDs returns n IDs drawn from r (uniform, like SHA-256 outputs).
func randomIDs(r *rand.Rand, n int) []envelope.ID {
	ids := make([]envelope.ID, n)
	for i := range ids {
		for j := 0; j < IDSize; j += 8 {
			v := r.Uint64()
			for k := range 8 {
				ids[i][j+k] = byte(v >> (8 * k))
			}
		}
	}
	return ids
}

// difference returns the IDs of a not in b, ascending.
func difference(a, b []envelope.ID) []envelope.ID {
	in := make(map[envelope.ID]bool, len(b))
	for _, id := range b {
		in[id] = true
	}
	var out []envelope.ID
	for _, id := range a {
		if !in[id] {
			out = append(out, id)
		}
	}
	slices.SortFunc(out, compareIDs)
	return slices.Compact(out)
}

// checkSimulate runs a session between a and b and fails unless each side
// learnt exactly what it holds and the other lacks (Simulate checks that
// the other side expects exactly those).
func checkSimulate(t testing.TB, a, b Set, aIDs, bIDs []envelope.ID, p Params) Stats {
	t.Helper()
	st, err := Simulate(a, b, p)
	if err != nil {
		t.Fatalf("Simulate: %v", err)
	}
	wantHave, wantBHave := difference(aIDs, bIDs), difference(bIDs, aIDs)
	if !slices.Equal(st.Have, wantHave) {
		t.Fatalf("a's have: got %d IDs, want %d", len(st.Have), len(wantHave))
	}
	if !slices.Equal(st.BHave, wantBHave) {
		t.Fatalf("b's have: got %d IDs, want %d", len(st.BHave), len(wantBHave))
	}
	return st
}
