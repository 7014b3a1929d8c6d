package mediagw

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// flowMetrics are the pre-resolved gateway-wide counters of one direction, so the packet
// path does an atomic add and no label lookup.
type flowMetrics struct {
	rtpPackets, rtpBytes, rtcpPackets, rtcpBytes prometheus.Counter
}

// metrics are the gateway-wide metrics (see docs/mediagw-api.md). Every label has a
// bounded set of values (reason, direction, kind, result, type, from): a call's own
// figures (its id, its Call-ID, which carries the caller's address) never become a
// label, since each call would add series without bound and hand call data to whoever
// scrapes. Per-call figures are in GET /v1/terminations/{id} and in the log line of a
// termination's end; the distribution of call quality is in the histograms below.
type metrics struct {
	terminations     prometheus.GaugeFunc
	ended            *prometheus.CounterVec
	packets, bytes   *prometheus.CounterVec
	drops            *prometheus.CounterVec
	dropByReason     [numDropReasons]prometheus.Counter
	dtmf             prometheus.Counter
	attaches         *prometheus.CounterVec
	events           *prometheus.CounterVec
	wsToUDP, udpToWS flowMetrics
	// lossRatio and jitter are observed once per direction of each ended termination
	// that received RTP that way: from udp (the far end) and from ws (the browser).
	lossRatio, jitter *prometheus.HistogramVec
}

func newMetrics(g *Gateway, reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		terminations: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mediagw_terminations",
			Help: "Live terminations."}, func() float64 { return float64(g.count()) }),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mediagw_terminations_ended_total",
			Help: "Terminations ended, by reason."}, []string{"reason"}),
		packets: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mediagw_packets_total",
			Help: "Packets relayed, by direction and kind."}, []string{"direction", "kind"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mediagw_bytes_total",
			Help: "Bytes relayed, by direction and kind."}, []string{"direction", "kind"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mediagw_drops_total",
			Help: "Packets dropped, by reason."}, []string{"reason"}),
		dtmf: prometheus.NewCounter(prometheus.CounterOpts{Name: "mediagw_dtmf_packets_total",
			Help: "RFC 4733 telephone-event packets sent."}),
		attaches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mediagw_ws_attaches_total",
			Help: "WebSocket attach attempts, by result."}, []string{"result"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mediagw_events_total",
			Help: "Owner events, by type and delivery result."}, []string{"type", "result"}),
		// Loss from 0.1 % (inaudible) to 50 % (unusable); 0 lands in the first bucket.
		lossRatio: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mediagw_call_loss_ratio",
			Help:    "RTP loss of ended terminations (RFC 3550 A.3 lost/expected), by sender (udp: far end, ws: browser).",
			Buckets: []float64{0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5}}, []string{"from"}),
		// Jitter from 1 ms to about half a second: beyond a jitter buffer's reach.
		jitter: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mediagw_call_jitter_seconds",
			Help:    "Interarrival jitter (RFC 3550 A.8) of ended terminations at their end, by sender.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 10)}, []string{"from"}),
	}
	for i := dropReason(1); i < numDropReasons; i++ {
		m.dropByReason[i] = m.drops.WithLabelValues(dropNames[i])
	}
	for _, f := range []struct {
		fm  *flowMetrics
		dir string
	}{{&m.wsToUDP, "ws_to_udp"}, {&m.udpToWS, "udp_to_ws"}} {
		f.fm.rtpPackets = m.packets.WithLabelValues(f.dir, "rtp")
		f.fm.rtcpPackets = m.packets.WithLabelValues(f.dir, "rtcp")
		f.fm.rtpBytes = m.bytes.WithLabelValues(f.dir, "rtp")
		f.fm.rtcpBytes = m.bytes.WithLabelValues(f.dir, "rtcp")
	}
	cs := []prometheus.Collector{m.terminations, m.ended, m.packets, m.bytes, m.drops, m.dtmf,
		m.attaches, m.events, m.lossRatio, m.jitter}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("mediagw: register metrics: %w", err)
		}
	}
	return m, nil
}

// observeEnd records an ended termination's receive quality in the histograms.
func (m *metrics) observeEnd(cs Counters) {
	for _, s := range []struct {
		from string
		rs   *ReceiveStats
	}{{"udp", cs.FromUDP}, {"ws", cs.FromWS}} {
		if s.rs == nil || s.rs.Expected == 0 {
			continue
		}
		m.lossRatio.WithLabelValues(s.from).Observe(max(0, float64(s.rs.Lost)) / float64(s.rs.Expected))
		m.jitter.WithLabelValues(s.from).Observe(s.rs.JitterMS / 1000)
	}
}
