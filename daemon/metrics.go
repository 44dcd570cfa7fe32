package daemon

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the daemon's own series. With no registry they are counted
// but not exported.
type metrics struct {
	apiRequests *prometheus.CounterVec
}

// newRegistry is the daemon's own registry (not the global one, so two
// daemons in one test process do not collide): Go and process collectors,
// build info; the node registers its series on it too.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace:   "meshnode",
		Name:        "build_info",
		Help:        "Always 1; the version label is the meshnode version.",
		ConstLabels: prometheus.Labels{"version": Version()},
	})
	info.Set(1)
	reg.MustRegister(info)
	return reg
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "meshnode", Subsystem: "api", Name: "requests_total",
			Help: "Control API requests by HTTP status code.",
		}, []string{"code"}),
	}
	if reg != nil {
		reg.MustRegister(m.apiRequests)
	}
	return m
}

func (m *metrics) request(status int) {
	m.apiRequests.WithLabelValues(strconv.Itoa(status)).Inc()
}

// metricsHandler serves /metrics and nothing else.
func metricsHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}
