package store

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Rejection reasons (label values of meshnode_store_rejections_total).
const (
	reasonTooLarge     = "too_large"
	reasonQuotaMailbox = "quota_mailbox"
	reasonQuotaGlobal  = "quota_global"
	reasonExpired      = "expired"
	reasonError        = "error"
	reasonDiskFull     = "disk_full"
)

// Eviction reasons (label values of meshnode_store_evictions_total).
const (
	evictAge   = "age"
	evictCount = "count"
	evictBytes = "bytes"
)

type metrics struct {
	puts       prometheus.Counter
	duplicates prometheus.Counter
	rejections *prometheus.CounterVec
	bytes      prometheus.Counter
	evictions  *prometheus.CounterVec
	tombPurged prometheus.Counter
	batchSize  prometheus.Histogram
	commit     prometheus.Histogram
	gcRewrites prometheus.Counter
	// retentionChecked counts mailboxes retention passes looked at.
	retentionChecked prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, usage func() Usage) (*metrics, error) {
	const ns, sub = "meshnode", "store"
	m := &metrics{
		puts: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "puts_total", Help: "Envelopes stored (durably committed)."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "duplicates_total", Help: "Puts of an envelope the store already held."}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "rejections_total", Help: "Puts rejected, by reason."}, []string{"reason"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "put_bytes_total", Help: "Envelope bytes stored."}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "evictions_total", Help: "Envelopes removed by retention, by the limit that was exceeded."}, []string{"reason"}),
		tombPurged: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "tombstones_purged_total", Help: "Expired tombstones removed."}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "batch_size", Help: "Operations per group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11)}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "commit_seconds", Help: "Latency of one group commit including fsync.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16)}),
		gcRewrites: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "vlog_gc_rewrites_total", Help: "Value-log files rewritten by GC."}),
		retentionChecked: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "retention_checks_total", Help: "Mailboxes retention passes looked at (only those due: see the retention schedule)."}),
	}
	for _, r := range []string{reasonTooLarge, reasonQuotaMailbox, reasonQuotaGlobal, reasonExpired, reasonError, reasonDiskFull} {
		m.rejections.WithLabelValues(r)
	}
	for _, r := range []string{evictAge, evictCount, evictBytes} {
		m.evictions.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	gauges := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "envelopes", Help: "Envelopes held."}, func() float64 { return float64(usage().Count) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "bytes", Help: "Envelope bytes held."}, func() float64 { return float64(usage().Bytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "tombstones", Help: "Tombstones held."}, func() float64 { return float64(usage().Tombstones) }),
	}
	cs := append([]prometheus.Collector{m.puts, m.duplicates, m.rejections, m.bytes, m.evictions,
		m.tombPurged, m.batchSize, m.commit, m.gcRewrites, m.retentionChecked}, gauges...)
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("%w: registering metrics (use one registry per store): %v", ErrInvalidParams, err)
		}
	}
	return m, nil
}
