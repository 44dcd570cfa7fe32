package admission

import (
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Reason names why something was refused. Reasons are the label values of
// meshnode_admission_refusals_total and what `meshnode status` lists.
type Reason string

// Refusal reasons.
const (
	// Streams.
	ReasonStreamsBusy   Reason = "streams_busy"        // a gate's active limits (total, reserved share, prefix, peer)
	ReasonIdleEvicted   Reason = "idle_stream_evicted" // a pending stream reset to make room for a newer one
	ReasonIdleTimeout   Reason = "idle_stream_timeout" // a stream that sent no request in time
	ReasonPrefixStreams Reason = "prefix_streams"      // a prefix's inbound streams over all protocols
	ReasonSubscriptions Reason = "subscriptions"       // gossip subscriptions past a peer's, prefix's or the total limit
	// Rates.
	ReasonRatePeer   Reason = "rate_peer"        // one peer's envelope or page rate
	ReasonRatePrefix Reason = "rate_prefix"      // one prefix's envelope or page rate
	ReasonRateNew    Reason = "rate_new_traffic" // all envelopes into mailboxes that are not established
	// New mailboxes.
	ReasonNewMailboxPrefix Reason = "new_mailbox_rate_prefix" // a prefix's rate of new mailboxes
	ReasonNewMailboxRate   Reason = "new_mailbox_rate"        // the total rate of new mailboxes (no proof option)
	ReasonProofRequired    Reason = "proof_required"          // the total rate is spent: a proof of work is needed
	ReasonProofInvalid     Reason = "proof_invalid"           // a proof of work that did not check
	// Storage.
	ReasonPrefixBytes  Reason = "quota_prefix_bytes" // a prefix's byte budget for new mailboxes
	ReasonQuotaNew     Reason = "quota_new_mailbox"  // a new mailbox's own byte budget
	ReasonQuotaReserve Reason = "quota_reserved"     // the store's share reserved for established mailboxes
	ReasonQuotaMailbox Reason = "quota_mailbox"      // a mailbox's quota
	ReasonQuotaGlobal  Reason = "quota_global"       // the whole store's quota
	ReasonMemoryBusy   Reason = "memory_busy"        // the resource manager had no memory for a page
)

var allReasons = []Reason{
	ReasonStreamsBusy, ReasonIdleEvicted, ReasonIdleTimeout, ReasonPrefixStreams, ReasonSubscriptions,
	ReasonRatePeer, ReasonRatePrefix, ReasonRateNew,
	ReasonNewMailboxPrefix, ReasonNewMailboxRate, ReasonProofRequired, ReasonProofInvalid,
	ReasonPrefixBytes, ReasonQuotaNew, ReasonQuotaReserve, ReasonQuotaMailbox, ReasonQuotaGlobal,
	ReasonMemoryBusy,
}

// Refusals counts refusals by reason: in all (a Prometheus counter) and
// over the last PressureWindow (per-second buckets), which is what makes
// a host report itself under pressure.
type Refusals struct {
	window  time.Duration
	now     func() time.Time
	counter *prometheus.CounterVec

	mu     sync.Mutex
	total  map[Reason]uint64
	recent map[Reason]*ring
}

// ring counts events in one-second buckets over a window.
type ring struct {
	buckets []uint64
	stamps  []int64 // the second each bucket counts
}

func newRing(seconds int) *ring {
	return &ring{buckets: make([]uint64, seconds), stamps: make([]int64, seconds)}
}

func (r *ring) add(sec int64, n uint64) {
	i := int(sec % int64(len(r.buckets)))
	if r.stamps[i] != sec {
		r.stamps[i], r.buckets[i] = sec, 0
	}
	r.buckets[i] += n
}

func (r *ring) sum(sec int64) uint64 {
	var s uint64
	for i, b := range r.buckets {
		if sec-r.stamps[i] < int64(len(r.buckets)) {
			s += b
		}
	}
	return s
}

// NewRefusals returns a counter set; with reg it registers
// meshnode_admission_refusals_total on it.
func NewRefusals(window time.Duration, reg prometheus.Registerer) (*Refusals, error) {
	r := &Refusals{
		window: window, now: time.Now,
		counter: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "meshnode", Subsystem: "admission", Name: "refusals_total",
			Help: "Requests, streams and envelopes an open host refused, by reason.",
		}, []string{"reason"}),
		total:  map[Reason]uint64{},
		recent: map[Reason]*ring{},
	}
	for _, reason := range allReasons {
		r.counter.WithLabelValues(string(reason))
	}
	if reg != nil {
		if err := reg.Register(r.counter); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Add counts one refusal.
func (r *Refusals) Add(reason Reason) {
	if r == nil {
		return
	}
	r.counter.WithLabelValues(string(reason)).Inc()
	sec := r.now().Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total[reason]++
	rg := r.recent[reason]
	if rg == nil {
		rg = newRing(max(1, int(r.window/time.Second)))
		r.recent[reason] = rg
	}
	rg.add(sec, 1)
}

// ReasonCount is one reason's refusals: since start and within the
// pressure window.
type ReasonCount struct {
	Reason Reason
	Total  uint64
	Recent uint64
}

// Counts returns every reason refused at least once, the most recent
// first (then the most in all).
func (r *Refusals) Counts() []ReasonCount {
	if r == nil {
		return nil
	}
	sec := r.now().Unix()
	r.mu.Lock()
	out := make([]ReasonCount, 0, len(r.total))
	for reason, n := range r.total {
		out = append(out, ReasonCount{Reason: reason, Total: n, Recent: r.recent[reason].sum(sec)})
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b ReasonCount) int {
		switch {
		case a.Recent != b.Recent:
			return cmpDesc(a.Recent, b.Recent)
		case a.Total != b.Total:
			return cmpDesc(a.Total, b.Total)
		}
		if a.Reason < b.Reason {
			return -1
		}
		return 1
	})
	return out
}

// Recent is the refusals within the pressure window, all reasons.
func (r *Refusals) Recent() uint64 {
	var n uint64
	for _, c := range r.Counts() {
		n += c.Recent
	}
	return n
}

func cmpDesc(a, b uint64) int {
	if a > b {
		return -1
	}
	return 1
}
