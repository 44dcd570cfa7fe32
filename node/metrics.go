package node

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	stored, duplicates, rejected, listenerDrops prometheus.Counter
	processed, rejectedMsgs                     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		stored:        prometheus.NewCounter(prometheus.CounterOpts{Namespace: "meshnode", Subsystem: "node", Name: "envelopes_stored_total", Help: "Envelopes newly stored by this node."}),
		duplicates:    prometheus.NewCounter(prometheus.CounterOpts{Namespace: "meshnode", Subsystem: "node", Name: "envelopes_duplicate_total", Help: "Envelopes received that were already stored."}),
		rejected:      prometheus.NewCounter(prometheus.CounterOpts{Namespace: "meshnode", Subsystem: "node", Name: "envelopes_rejected_total", Help: "Valid envelopes the store refused (quota, retention, errors)."}),
		listenerDrops: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "meshnode", Subsystem: "node", Name: "listener_drops_total", Help: "Arrival notifications dropped for slow listeners."}),
	}
	m.processed = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "meshnode", Subsystem: "member", Name: "messages_processed_total", Help: "Group messages decrypted and verified."})
	m.rejectedMsgs = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "meshnode", Subsystem: "member", Name: "messages_rejected_total", Help: "Envelopes in group mailboxes that were not valid group messages."})
	if reg != nil {
		reg.MustRegister(m.stored, m.duplicates, m.rejected, m.listenerDrops, m.processed, m.rejectedMsgs)
	}
	return m
}
