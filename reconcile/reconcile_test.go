package reconcile

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestReconcileProperty: random sets of many sizes and differences, in
// both directions, split, and disjoint; both sides must learn exactly the
// symmetric difference.
func TestReconcileProperty(t *testing.T) {
	sizes := []int{0, 1, 17, 300, 5000, 100_000}
	diffs := []int{0, 1, 2, 10, 1000}
	shapes := []struct {
		name string
		a, b func(d int) int // extra IDs on each side
	}{
		{"a-has-more", func(d int) int { return d }, func(int) int { return 0 }},
		{"b-has-more", func(int) int { return 0 }, func(d int) int { return d }},
		{"split", func(d int) int { return d / 2 }, func(d int) int { return d - d/2 }},
	}
	seed := uint64(0)
	for _, n := range sizes {
		for _, d := range diffs {
			for _, sh := range shapes {
				seed++
				t.Run(fmt.Sprintf("n=%d/d=%d/%s", n, d, sh.name), func(t *testing.T) {
					r := rand.New(rand.NewPCG(seed, 7))
					common := randomIDs(r, n)
					aIDs := append(randomIDs(r, sh.a(d)), common...)
					bIDs := append(randomIDs(r, sh.b(d)), common...)
					st := checkSimulate(t, NewMemSet(aIDs...), NewMemSet(bIDs...), aIDs, bIDs, DefaultParams())
					if d == 0 && st.Rounds != 1 {
						t.Errorf("equal sets took %d rounds", st.Rounds)
					}
				})
			}
		}
		t.Run(fmt.Sprintf("n=%d/disjoint", n), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(n), 8))
			aIDs, bIDs := randomIDs(r, n), randomIDs(r, n)
			p := DefaultParams()
			p.MaxLearnt = max(1, 2*n)
			checkSimulate(t, NewMemSet(aIDs...), NewMemSet(bIDs...), aIDs, bIDs, p)
		})
	}
}

// TestReconcileSmallMessages forces deferrals: messages of the smallest
// size, and few nodes a message may open.
func TestReconcileSmallMessages(t *testing.T) {
	p := DefaultParams()
	p.MaxMessageSize = MinMessageSize
	p.MaxRounds = 1 << 12
	for i, c := range []struct{ n, d int }{{20_000, 3000}, {5000, 5000}, {100, 2000}} {
		r := rand.New(rand.NewPCG(uint64(i), 9))
		common := randomIDs(r, c.n)
		aIDs := append(randomIDs(r, c.d/2), common...)
		bIDs := append(randomIDs(r, c.d-c.d/2), common...)
		st := checkSimulate(t, NewMemSet(aIDs...), NewMemSet(bIDs...), aIDs, bIDs, p)
		t.Logf("n=%d d=%d: %d bytes in %d rounds", c.n, c.d, st.Bytes(), st.Rounds)
	}
}

// TestReconcileCost checks the targets on bytes and rounds, which
// depend only on the protocol: at most 100 bytes per difference at n =
// 100,000, d = 1,000; at most 3 KB in 4 rounds at n = 1,000,000, d = 1;
// and rounds within 2·log16(n/d) + 2 throughout.
func TestReconcileCost(t *testing.T) {
	cases := []struct {
		n, d      int
		maxBytes  int
		maxRounds float64
	}{
		{100_000, 0, 2 << 10, 1},
		{100_000, 1, 3 << 10, 4},
		{100_000, 10, 16 << 10, 2*math.Log(1e4)/math.Log(16) + 2},
		{100_000, 1000, 100_000, 2*math.Log(100)/math.Log(16) + 2},
		{100_000, 10_000, 2_000_000, 2*math.Log(10)/math.Log(16) + 2},
		{1_000_000, 1, 3000, 4},
	}
	if testing.Short() {
		cases = cases[:4]
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("n=%d/d=%d", c.n, c.d), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(i), 10))
			common := randomIDs(r, c.n-c.d)
			aIDs := append(randomIDs(r, c.d/2), common...)
			bIDs := append(randomIDs(r, c.d-c.d/2), common...)
			st := checkSimulate(t, NewMemSet(aIDs...), NewMemSet(bIDs...), aIDs, bIDs, DefaultParams())
			t.Logf("n=%d d=%d: %d bytes (%.1f per difference) in %d rounds, %v", c.n, c.d, st.Bytes(),
				float64(st.Bytes())/math.Max(1, float64(c.d)), st.Rounds, st.Elapsed)
			if st.Bytes() > c.maxBytes || float64(st.Rounds) > c.maxRounds {
				t.Errorf("%d bytes in %d rounds; want at most %d bytes in %.1f rounds", st.Bytes(), st.Rounds, c.maxBytes, c.maxRounds)
			}
		})
	}
}
