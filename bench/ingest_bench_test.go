package bench

import (
	"context"
	"testing"

	"github.com/meshnode/meshnode/envelope"
)

// BenchmarkIngestNetwork runs the network part of Ingest alone (no limit
// rounds, envelopes signed beforehand), for profiling the host's ingest
// path: go test ./bench -run '^$' -bench IngestNetwork -benchtime 3x
// -cpuprofile /tmp/ingest.prof.
func BenchmarkIngestNetwork(b *testing.B) {
	p := DefaultIngestParams()
	p.N = 20_000
	envs := make([][]*envelope.Envelope, p.Writers)
	for w := range envs {
		k, err := writeKey()
		if err != nil {
			b.Fatal(err)
		}
		if envs[w], err = makeEnvelopes(k, p.N/p.Writers, p.Size); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var total, commits, batches float64
	for range b.N {
		run, err := ingestNetwork(context.Background(), b.TempDir(), envs, p.InFlight, false)
		if err != nil {
			b.Fatal(err)
		}
		total += run.elapsed.Seconds()
		commits += float64(run.commits)
		batches += run.batchSum
	}
	b.ReportMetric(float64(b.N*p.N)/total, "envelopes/s")
	b.ReportMetric(batches/commits, "envelopes/commit")
}
