package store

import "github.com/prometheus/client_golang/prometheus"

// keyspaceCollector exports the feed's view of notify-keyspace-events on every node.
type keyspaceCollector struct {
	f        *Feed
	ok, sets *prometheus.Desc
	off      *prometheus.Desc
}

// Collector returns the prometheus collector of the feed's keyspace notification state:
// dsm_keyspace_notifications{node} is 1 while the node delivers the events the feed needs
// and 0 when they are missing or cannot be checked (CONFIG refused, node down);
// dsm_keyspace_notifications_set_total{node} counts the times the feed set the setting
// (more than once: the node lost it, by a restart without it or a CONFIG SET);
// dsm_keyspace_notifications_off is 1 when they are turned off by configuration.
func (f *Feed) Collector() prometheus.Collector {
	return &keyspaceCollector{
		f: f,
		ok: prometheus.NewDesc("dsm_keyspace_notifications",
			"1 while the Redis node delivers the keyspace events the DSM feed needs (notify-keyspace-events with K, h, g), 0 otherwise.",
			[]string{"node"}, nil),
		sets: prometheus.NewDesc("dsm_keyspace_notifications_set_total",
			"Times the feed set notify-keyspace-events on the node because it was missing.", []string{"node"}, nil),
		off: prometheus.NewDesc("dsm_keyspace_notifications_off",
			"1 when keyspace notifications are turned off by configuration (DSM_NO_KEYSPACE).", nil, nil),
	}
}

// Describe sends the descriptors of the collector's metrics.
func (c *keyspaceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.ok
	ch <- c.sets
	ch <- c.off
}

// Collect sends the current state of every node.
func (c *keyspaceCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.f.Keyspace()
	off := 0.0
	if s.Off {
		off = 1
	}
	send := func(m prometheus.Metric, err error) {
		if err == nil { // an error is a label count that differs from its Desc: none here
			ch <- m
		}
	}
	send(prometheus.NewConstMetric(c.off, prometheus.GaugeValue, off))
	for _, n := range s.Nodes {
		ok := 0.0
		if n.OK {
			ok = 1
		}
		send(prometheus.NewConstMetric(c.ok, prometheus.GaugeValue, ok, n.Addr))
		send(prometheus.NewConstMetric(c.sets, prometheus.CounterValue, float64(n.Sets), n.Addr))
	}
}
