package hostsync

import (
	"context"
	"testing"
)

// TestBenchSmall runs Bench on a small set: every case converges (Bench
// checks both stores hold n) and meets the byte and round targets, which
// depend on the protocol, not on timing.
func TestBenchSmall(t *testing.T) {
	leakCheck(t)
	bp := DefaultBenchParams()
	bp.N, bp.D = 3000, []int{0, 1, 10, 300}
	bp.Dir = t.TempDir()
	res, err := Bench(context.Background(), bp)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Results) != len(bp.D) {
		t.Fatalf("%d results for %d cases", len(res.Results), len(bp.D))
	}
	for _, c := range res.Results {
		t.Logf("%+v", c)
		if c.N != bp.N || c.Received+c.Sent != c.D || !c.MeetsTargets {
			t.Errorf("case d=%d: %+v", c.D, c)
		}
	}
}

// BenchmarkSync runs the benchmark (n = 100,000 1-KiB envelopes,
// d = 0, 10, 1000) once and reports its figures; see also
// `meshnode bench sync --json`.
//
//	go test -run '^$' -bench Sync -benchtime 1x ./hostsync
func BenchmarkSync(b *testing.B) {
	for b.Loop() {
		res, err := Bench(context.Background(), DefaultBenchParams())
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range res.Results {
			b.Logf("n=%d d=%d: %d reconcile bytes in %d rounds, %d transfer bytes, %.3f s (targets %d bytes, %.1f rounds: %v)",
				c.N, c.D, c.ReconcileBytes, c.Rounds, c.TransferBytes, c.Seconds, c.TargetBytes, c.TargetRounds, c.MeetsTargets)
		}
	}
}
