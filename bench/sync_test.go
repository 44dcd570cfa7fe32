package bench

import (
	"context"
	"testing"
)

// TestSyncSmall runs Sync on small sets in both store kinds: every case
// converges (Sync checks both stores hold n) and meets the byte and round
// targets, which depend on the protocol, not on timing.
func TestSyncSmall(t *testing.T) {
	p := DefaultSyncParams()
	p.N, p.D = []int{3000}, []int{0, 1, 10, 300}
	p.Stores = []string{StoreMemory, StoreDisk}
	p.Dir = t.TempDir()
	res, err := Sync(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Cases) != 2*len(p.D) {
		t.Fatalf("%d results for %d cases", len(res.Cases), 2*len(p.D))
	}
	for _, c := range res.Cases {
		t.Logf("%+v", c)
		if c.N != 3000 || c.Received+c.Sent != c.D || !c.MeetsTargets || c.PeakHeapBytes == 0 {
			t.Errorf("case %s d=%d: %+v", c.Store, c.D, c)
		}
	}
}

// TestSyncReuse runs the cases on one pair of stores: each adds its d, and
// the last case's union is n.
func TestSyncReuse(t *testing.T) {
	p := DefaultSyncParams()
	p.N, p.D, p.Reuse = []int{2000}, []int{0, 10, 100, 1}, true
	res, err := Sync(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	wantN := []int{2000 - 111, 2000 - 101, 2000 - 1, 2000}
	for i, c := range res.Cases {
		if c.N != wantN[i] || c.D != p.D[i] || c.Received+c.Sent != c.D || !c.MeetsTargets {
			t.Errorf("case %d: %+v", i, c)
		}
	}
}

// BenchmarkSync runs the sync benchmark at n = 100,000 (see also
// `meshnode bench sync --json`):
//
//	go test -run '^$' -bench Sync -benchtime 1x ./bench
func BenchmarkSync(b *testing.B) {
	for b.Loop() {
		res, err := Sync(context.Background(), DefaultSyncParams())
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range res.Cases {
			b.Logf("%s n=%d d=%d: %d reconcile bytes (%.1f per difference) in %d rounds, %d transfer bytes, %.3f s, peak heap +%d",
				c.Store, c.N, c.D, c.ReconcileBytes, c.BytesPerDifference, c.Rounds, c.TransferBytes, c.Seconds, c.PeakHeapGrowthBytes)
		}
	}
}
