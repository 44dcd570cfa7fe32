package node

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	stored, duplicates, rejected, listenerDrops prometheus.Counter
	processed                                   prometheus.Counter
	// Member refusals and flags by reason code (rejections.go), and
	// evidence found (equivocations, splits).
	rejectedMsgs, flaggedMsgs *prometheus.CounterVec
	equivocations, splits     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		stored:        prometheus.NewCounter(prometheus.CounterOpts{Namespace: "meshnode", Subsystem: "node", Name: "envelopes_stored_total", Help: "Envelopes newly stored by this node."}),
		duplicates:    prometheus.NewCounter(prometheus.CounterOpts{Namespace: "meshnode", Subsystem: "node", Name: "envelopes_duplicate_total", Help: "Envelopes received that were already stored."}),
		rejected:      prometheus.NewCounter(prometheus.CounterOpts{Namespace: "meshnode", Subsystem: "node", Name: "envelopes_rejected_total", Help: "Valid envelopes the store refused (quota, retention, errors)."}),
		listenerDrops: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "meshnode", Subsystem: "node", Name: "listener_drops_total", Help: "Arrival notifications dropped for slow listeners."}),
	}
	m.processed = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "meshnode", Subsystem: "member", Name: "messages_processed_total", Help: "Group messages decrypted and verified."})
	m.rejectedMsgs = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "meshnode", Subsystem: "member", Name: "messages_rejected_total",
		Help: "Envelopes in group mailboxes refused by the member, by reason (see `meshnode group rejections`)."}, []string{"reason"})
	m.flaggedMsgs = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "meshnode", Subsystem: "member", Name: "messages_flagged_total",
		Help: "Group messages shown with a mark (sent time out of bounds, in flight at a removal), by reason."}, []string{"reason"})
	m.equivocations = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "meshnode", Subsystem: "member", Name: "equivocations_total",
		Help: "Pairs of different messages one member signed with one sequence number."})
	m.splits = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "meshnode", Subsystem: "member", Name: "splits_total",
		Help: "Splits detected: two state events a manager signed on one parent."})
	if reg != nil {
		reg.MustRegister(m.stored, m.duplicates, m.rejected, m.listenerDrops, m.processed, m.rejectedMsgs, m.flaggedMsgs, m.equivocations, m.splits)
	}
	return m
}
