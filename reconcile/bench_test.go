package reconcile

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkReconcile measures a whole session between two MemSets of n =
// 100,000 IDs where d IDs differ, half missing on each side. Metrics per
// session: bytes both ways, rounds, and the naive exchange of all IDs.
//
//	go test -run '^$' -bench Reconcile -benchtime 20x ./reconcile
func BenchmarkReconcile(b *testing.B) {
	const n = 100_000
	for _, d := range []int{0, 10, 1000} {
		b.Run(fmt.Sprintf("n=%d/d=%d", n, d), func(b *testing.B) {
			r := rand.New(rand.NewPCG(uint64(d), 14))
			common := randomIDs(r, n-d/2)
			aIDs := append(randomIDs(r, d/2), common...)
			bIDs := append(randomIDs(r, d-d/2), common...)
			sa, sb := NewMemSet(aIDs...), NewMemSet(bIDs...)
			var st Stats
			b.ResetTimer()
			for b.Loop() {
				var err error
				if st, err = Simulate(sa, sb, DefaultParams()); err != nil {
					b.Fatal(err)
				}
			}
			if len(st.Have)+len(st.Need) != d {
				b.Fatalf("learnt %d differences, want %d", len(st.Have)+len(st.Need), d)
			}
			b.ReportMetric(float64(st.Bytes()), "bytes/session")
			b.ReportMetric(float64(st.BytesAToB), "bytesAtoB/session")
			b.ReportMetric(float64(st.BytesBToA), "bytesBtoA/session")
			b.ReportMetric(float64(st.Rounds), "rounds/session")
			b.ReportMetric(float64(st.NaiveBytes), "naive-bytes")
		})
	}
}

// BenchmarkMemSetFingerprint measures one range fingerprint of a 100,000-ID
// MemSet.
func BenchmarkMemSetFingerprint(b *testing.B) {
	r := rand.New(rand.NewPCG(15, 15))
	ids := randomIDs(r, 100_000)
	s := NewMemSet(ids...)
	for b.Loop() {
		lo, hi := BoundOf(ids[r.IntN(len(ids))]), BoundOf(ids[r.IntN(len(ids))])
		s.Fingerprint(lo, hi)
	}
}
