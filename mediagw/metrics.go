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

// metrics are the gateway-wide metrics (see docs/mediagw-api.md).
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
		m.attaches, m.events, newTermCollector(g)}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("mediagw: register metrics: %w", err)
		}
	}
	return m, nil
}

// termCollector reports per-termination series at scrape time from the live
// terminations only, so an ended call leaves no stale series behind.
type termCollector struct {
	g                            *Gateway
	packets, drops, lost, jitter *prometheus.Desc
}

func newTermCollector(g *Gateway) *termCollector {
	return &termCollector{g: g,
		packets: prometheus.NewDesc("mediagw_termination_packets_total",
			"Packets relayed by one live termination.", []string{"termination", "call_id", "direction"}, nil),
		drops: prometheus.NewDesc("mediagw_termination_drops_total",
			"Packets dropped by one live termination.", []string{"termination", "call_id", "reason"}, nil),
		lost: prometheus.NewDesc("mediagw_termination_lost_packets",
			"RTP packets lost toward one live termination (RFC 3550 A.3).", []string{"termination", "call_id", "from"}, nil),
		jitter: prometheus.NewDesc("mediagw_termination_jitter_seconds",
			"Interarrival jitter toward one live termination (RFC 3550 A.8).", []string{"termination", "call_id", "from"}, nil),
	}
}

// Describe sends the per-termination descriptors.
func (c *termCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.packets
	ch <- c.drops
	ch <- c.lost
	ch <- c.jitter
}

// send passes a const metric on; NewConstMetric fails only on a label count mismatch,
// which the fixed label lists here rule out (and MustNewConstMetric would panic).
func send(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	if m, err := prometheus.NewConstMetric(d, t, v, labels...); err == nil {
		ch <- m
	}
}

// Collect reports every live termination.
func (c *termCollector) Collect(ch chan<- prometheus.Metric) {
	for _, t := range c.g.snapshotTerms() {
		cs := t.c.snapshot()
		send(ch, c.packets, prometheus.CounterValue,
			float64(cs.WSToUDP.RTPPackets+cs.WSToUDP.RTCPPackets), t.id, t.callID, "ws_to_udp")
		send(ch, c.packets, prometheus.CounterValue,
			float64(cs.UDPToWS.RTPPackets+cs.UDPToWS.RTCPPackets), t.id, t.callID, "udp_to_ws")
		for reason, n := range cs.Drops {
			send(ch, c.drops, prometheus.CounterValue, float64(n), t.id, t.callID, reason)
		}
		for _, s := range []struct {
			from string
			rs   *ReceiveStats
		}{{"udp", cs.FromUDP}, {"ws", cs.FromWS}} {
			if s.rs == nil {
				continue
			}
			send(ch, c.lost, prometheus.GaugeValue, float64(s.rs.Lost), t.id, t.callID, s.from)
			send(ch, c.jitter, prometheus.GaugeValue, s.rs.JitterMS/1000, t.id, t.callID, s.from)
		}
	}
}
