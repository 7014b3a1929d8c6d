package otbridge

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the bridge's prometheus collectors, registered on the Registerer given to New.
type metrics struct {
	committed   prometheus.Counter
	commitTime  prometheus.Histogram
	connections prometheus.Gauge
	resyncs     prometheus.Counter
	rejects     *prometheus.CounterVec
	slow        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		committed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dsm_ops_committed_total", Help: "Ops from WebSocket clients committed to Redis (resends excluded).",
		}),
		commitTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "dsm_op_commit_seconds", Help: "Time from receiving an op to Redis's commit answer.",
			// 50 µs to ~0.4 s: a loopback commit takes ~100 µs, a loaded one a few ms.
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 14),
		}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dsm_connections", Help: "Open DSM WebSocket connections.",
		}),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dsm_resyncs_total", Help: "Resync messages sent (outside writes, lost feed entries, unbridgeable gaps).",
		}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dsm_rejects_total", Help: "Client messages refused, by error code.",
		}, []string{"reason"}),
		slow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dsm_slow_consumer_cutoffs_total", Help: "Connections closed with 4008 because their send queue was full.",
		}),
	}
	for _, c := range []prometheus.Collector{m.committed, m.commitTime, m.connections, m.resyncs, m.rejects, m.slow} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("otbridge: register metrics: %w", err)
		}
	}
	return m, nil
}
