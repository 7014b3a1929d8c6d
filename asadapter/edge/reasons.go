package edge

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Reason is why a request was refused: a metric label and a key of the summary line, so
// the set is fixed (labels that grow with traffic would hand any scanner the monitoring
// system's memory).
type Reason uint8

// The reasons, at the edge and (the last three) in call control.
const (
	// ReasonUntrusted: an out-of-dialog request from outside the trust domain (403).
	ReasonUntrusted Reason = iota
	// ReasonChallenged: a direct peer's request without valid credentials yet (401).
	ReasonChallenged
	// ReasonBadCredentials: credentials that do not check (403).
	ReasonBadCredentials
	// ReasonRateLimited: above the source's SourceRate (503 with Retry-After).
	ReasonRateLimited
	// ReasonFlood: above the source's SourceDropRate (dropped, no answer).
	ReasonFlood
	// ReasonNoDialog: an in-dialog request or CANCEL that matches nothing of ours (481).
	ReasonNoDialog
	// ReasonMalformed: a message the edge cannot read (dropped; a stream is closed).
	ReasonMalformed
	// ReasonTransactions: the source has SourceTransactions requests in progress (503).
	ReasonTransactions
	// ReasonDialogs: the source has SourceDialogs calls (486).
	ReasonDialogs
	// ReasonConnections: the source has SourceConnections connections (closed at once).
	ReasonConnections
	// ReasonUnknownUser: a call for nobody registered here (404).
	ReasonUnknownUser
	// ReasonNotRegistered: a call for a user whose registration is not live (480).
	ReasonNotRegistered
	// ReasonForeignDomain: a call whose Request-URI is neither a domain of ours nor a
	// contact we registered (404).
	ReasonForeignDomain

	numReasons
)

// String is the reason's label.
func (r Reason) String() string {
	switch r {
	case ReasonUntrusted:
		return "untrusted"
	case ReasonChallenged:
		return "challenged"
	case ReasonBadCredentials:
		return "bad_credentials"
	case ReasonRateLimited:
		return "rate_limited"
	case ReasonFlood:
		return "flood"
	case ReasonNoDialog:
		return "no_dialog"
	case ReasonMalformed:
		return "malformed"
	case ReasonTransactions:
		return "too_many_transactions"
	case ReasonDialogs:
		return "too_many_dialogs"
	case ReasonConnections:
		return "too_many_connections"
	case ReasonUnknownUser:
		return "unknown_user"
	case ReasonNotRegistered:
		return "not_registered"
	case ReasonForeignDomain:
		return "foreign_domain"
	}
	return "unknown"
}

// passClass is how a message got through the edge.
type passClass uint8

const (
	passTrusted       passClass = iota // from the trust domain
	passNextHop                        // in a dialog, from its next hop
	passDialog                         // in a dialog, by its identifiers
	passAuthenticated                  // a direct peer's request with valid credentials
	passAck                            // an ACK (never answered; sipgo matches it or drops it)
	passResponse                       // a response (sipgo matches it to our transaction)
	numPassClasses
)

func (c passClass) String() string {
	switch c {
	case passTrusted:
		return "trusted"
	case passNextHop:
		return "next_hop"
	case passDialog:
		return "dialog"
	case passAuthenticated:
		return "authenticated"
	case passAck:
		return "ack"
	case passResponse:
		return "response"
	}
	return "unknown"
}

// metrics are the edge's collectors, resolved per label once so the packet path does
// not hash label values.
type metrics struct {
	refused  [numReasons]prometheus.Counter
	passed   [numPassClasses]prometheus.Counter
	stripped prometheus.Counter
	sources  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "asadapter_sip_edge_refused_total",
		Help: "SIP messages refused at the edge or by call control, by reason.",
	}, []string{"reason"})
	passed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "asadapter_sip_edge_passed_total",
		Help: "SIP messages let through the edge, by how (trusted peer, dialog, credentials ...).",
	}, []string{"class"})
	m := &metrics{
		stripped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "asadapter_sip_edge_identity_removed_total",
			Help: "P-Asserted-Identity and P-Asserted-Service headers removed from messages from outside the trust domain.",
		}),
		sources: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "asadapter_sip_edge_sources",
			Help: "Untrusted sources tracked for per-source bounds.",
		}),
	}
	for r := range numReasons {
		m.refused[r] = refused.WithLabelValues(r.String())
	}
	for c := range numPassClasses {
		m.passed[c] = passed.WithLabelValues(c.String())
	}
	for _, c := range []prometheus.Collector{refused, passed, m.stripped, m.sources} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("edge: register metrics: %w", err)
		}
	}
	return m, nil
}
