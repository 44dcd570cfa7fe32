package store

import (
	"context"
	"crypto/ed25519"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/meshnode/meshnode/envelope"
)

// BenchmarkPut measures durable Puts of 1 KiB envelopes on disk (each
// acknowledged only after its group commit is fsynced), with 2×P
// concurrent writers for P = GOMAXPROCS×parallelism, over 8 mailboxes.
func BenchmarkPut(b *testing.B) {
	for _, par := range []int{1, 8, 64} {
		b.Run("disk/writers="+strconv.Itoa(par*runtime.GOMAXPROCS(0)), func(b *testing.B) {
			p := DefaultParams()
			p.RetentionInterval, p.GCInterval = 0, 0
			benchPut(b, openStore(b, b.TempDir(), p), par)
		})
	}
	b.Run("memory/writers="+strconv.Itoa(8*runtime.GOMAXPROCS(0)), func(b *testing.B) {
		p := InMemoryParams()
		p.RetentionInterval = 0
		p.Default, p.GlobalQuotaBytes = MailboxPolicy{}, 0
		benchPut(b, openStore(b, "", p), 8)
	})
}

func benchPut(b *testing.B, s *Store, parallelism int) {
	keys := make([]ed25519.PrivateKey, 8)
	for i := range keys {
		keys[i] = newKey(b)
	}
	envs := make([]*envelope.Envelope, b.N)
	for i := range envs {
		envs[i] = seal(b, keys[i%len(keys)], 1024)
	}
	var next atomic.Int64
	b.SetBytes(1024)
	b.SetParallelism(parallelism)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e := envs[next.Add(1)-1]
			if _, err := s.Put(context.Background(), e); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if u := s.Usage(); u.Count != int64(b.N) {
		b.Fatalf("stored %d of %d", u.Count, b.N)
	}
	var m dto.Metric
	if err := s.m.batchSize.Write(&m); err == nil && m.GetHistogram().GetSampleCount() > 0 {
		b.ReportMetric(m.GetHistogram().GetSampleSum()/float64(m.GetHistogram().GetSampleCount()), "puts/commit")
	}
}

// BenchmarkPage measures reading pages of 100 1-KiB envelopes from a
// 10,000-envelope mailbox, resuming from the previous page's cursor.
func BenchmarkPage(b *testing.B) {
	for _, mode := range []string{"disk", "memory"} {
		b.Run(mode, func(b *testing.B) {
			var s *Store
			if mode == "disk" {
				p := DefaultParams()
				p.RetentionInterval, p.GCInterval = 0, 0
				s = openStore(b, b.TempDir(), p)
			} else {
				p := InMemoryParams()
				p.RetentionInterval = 0
				s = openStore(b, "", p)
			}
			k := newKey(b)
			m := mailboxOf(k)
			const n = 10_000
			envs := make([]*envelope.Envelope, n)
			for i := range envs {
				envs[i] = seal(b, k, 1024)
			}
			fill(b, s, envs)
			b.SetBytes(100 * 1024)
			b.ReportAllocs()
			b.ResetTimer()
			var cur Cursor
			for b.Loop() {
				pg, err := s.Page(m, cur, 100, 1<<20)
				if err != nil {
					b.Fatal(err)
				}
				cur = pg.Next
				if !pg.More {
					cur = nil
				}
			}
		})
	}
}

// fill stores envs with 32 concurrent writers (to use group commit).
func fill(b *testing.B, s *Store, envs []*envelope.Envelope) {
	var next atomic.Int64
	done := make(chan struct{})
	for range 32 {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(envs)) {
					return
				}
				if _, err := s.Put(context.Background(), envs[i]); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	for range 32 {
		<-done
	}
}

// BenchmarkInMemoryFootprint opens 100 in-memory stores (as the simulator
// does, one per node), stores 100 1-KiB envelopes in each, and reports the
// Go heap in use per store (after a GC). Figures are in doc.go.
func BenchmarkInMemoryFootprint(b *testing.B) {
	const stores, each = 100, 100
	for b.Loop() {
		b.StopTimer()
		heap0 := heapInUse()
		b.StartTimer()
		all := make([]*Store, stores)
		for i := range all {
			p := InMemoryParams()
			p.RetentionInterval = 0
			s, err := Open("", p, WithLogger(quietLogger()))
			if err != nil {
				b.Fatal(err)
			}
			all[i] = s
			k := newKey(b)
			envs := make([]*envelope.Envelope, each)
			for j := range envs {
				envs[j] = seal(b, k, 1024)
			}
			fill(b, s, envs)
		}
		b.StopTimer()
		b.ReportMetric(float64(heapInUse()-heap0)/stores/(1<<20), "heap-MiB/store")
		for _, s := range all {
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
}

func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}
