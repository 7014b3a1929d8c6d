package users

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the registration and subscription metrics.
type metrics struct {
	registrations *prometheus.GaugeVec   // users held here by registration state
	registers     *prometheus.CounterVec // REGISTER outcomes
	subscriptions prometheus.Gauge       // established conference subscriptions
	notifies      *prometheus.CounterVec // NOTIFYs by outcome
	parseErrors   prometheus.Counter     // conference-info bodies refused
	claims        prometheus.Counter     // user leases taken
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		registrations: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "asadapter_registrations",
			Help: "Web users held by this instance, by registration state.",
		}, []string{"state"}),
		registers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "asadapter_register_requests_total",
			Help: "REGISTER transactions by outcome (ok, unregistered, challenged_again, rejected, error).",
		}, []string{"result"}),
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "asadapter_conference_subscriptions",
			Help: "Established conference subscriptions of this instance.",
		}),
		notifies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "asadapter_notifies_total",
			Help: "Conference NOTIFYs processed, by outcome (applied, stale, gap, malformed, too_large, bad_event, no_subscription, store_error, empty, ending: after our unsubscribe).",
		}, []string{"result"}),
		parseErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "asadapter_confinfo_parse_errors_total",
			Help: "conference-info bodies that could not be parsed.",
		}),
		claims: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "asadapter_user_claims_total",
			Help: "User registration leases taken by this instance (new users and takeovers).",
		}),
	}
	for _, c := range []prometheus.Collector{m.registrations, m.registers, m.subscriptions, m.notifies, m.parseErrors, m.claims} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("users: register metrics: %w", err)
		}
	}
	return m, nil
}
