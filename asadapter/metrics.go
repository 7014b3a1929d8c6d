package asadapter

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the adapter's Prometheus collectors.
type metrics struct {
	calls      *prometheus.GaugeVec     // live calls owned here, by direction
	attempts   *prometheus.CounterVec   // call attempts, by direction
	results    *prometheus.CounterVec   // call ends, by result
	setup      prometheus.Histogram     // connecting seen → media URL committed
	takeovers  *prometheus.CounterVec   // calls of a lost instance taken over, by outcome
	claimWaits prometheus.Counter       // incoming calls that waited for an ending call's claim
	fenced     prometheus.Counter       // calls this instance stopped acting on (lease.go)
	pauses     *prometheus.CounterVec   // pauses of calls whose lease ran short, by outcome (pause.go)
	renewals   *prometheus.HistogramVec // claim renewals by phase: tick lateness, round trip (lease.go)
	wakeDrops  prometheus.Counter       // wake-ups dropped on a full queue
	sipBad     prometheus.Counter       // requests answered 4xx as malformed or unknown
	dsmErrors  prometheus.Counter       // DSM commits that failed for other reasons than expects
	mgwErrors  *prometheus.CounterVec   // media gateway calls that failed, by operation
	reinvites  prometheus.Counter       // re-INVITEs answered
	dtmfDigits prometheus.Counter       // DTMF digits sent
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		calls: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "asadapter_calls", Help: "Live calls owned by this instance.",
		}, []string{"direction"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "asadapter_call_attempts_total", Help: "Calls started, by direction.",
		}, []string{"direction"}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "asadapter_call_results_total", Help: "Calls ended, by result.",
		}, []string{"result"}),
		setup: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "asadapter_setup_seconds",
			Help:    "Time from seeing player_state connecting to committing the media URL.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		takeovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "asadapter_takeovers_total",
			Help: "Calls of a lost instance taken over, by outcome: continued here, or ended (refused re-INVITE, ringing, hung up).",
		}, []string{"outcome"}),
		claimWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "asadapter_incoming_claim_waits_total",
			Help: "Incoming calls that waited for the claim of the user's previous call, which was ending.",
		}),
		fenced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "asadapter_fenced_total",
			Help: "Calls this instance stopped acting on because it could not renew their claim in time (or another instance held it).",
		}),
		pauses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "asadapter_pauses_total",
			Help: "Calls paused because their lease ran short (outcome paused), and how pauses ended: resumed (a renewal proved the claim ours) or fenced.",
		}, []string{"outcome"}),
		renewals: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "asadapter_claim_renewal_seconds",
			Help:    "Claim renewals of live calls: how late the renewal tick ran (phase tick) and how long Redis took to answer (phase answer). A call is fenced when the two exceed three quarters of the lease.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"phase"}),
		wakeDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "asadapter_wake_drops_total", Help: "Wake-ups dropped because the queue was full.",
		}),
		sipBad: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "asadapter_sip_rejected_total", Help: "SIP requests rejected as malformed or out of dialog.",
		}),
		dsmErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "asadapter_dsm_errors_total", Help: "DSM reads or commits that failed.",
		}),
		mgwErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "asadapter_mgw_errors_total", Help: "Media gateway requests that failed, by operation.",
		}, []string{"op"}),
		reinvites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "asadapter_reinvites_total", Help: "re-INVITEs and UPDATEs answered.",
		}),
		dtmfDigits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "asadapter_dtmf_digits_total", Help: "DTMF digits sent.",
		}),
	}
	for _, c := range []prometheus.Collector{m.calls, m.attempts, m.results, m.setup, m.takeovers, m.claimWaits, m.fenced, m.pauses, m.renewals,
		m.wakeDrops, m.sipBad, m.dsmErrors, m.mgwErrors, m.reinvites, m.dtmfDigits} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("asadapter: register metrics: %w", err)
		}
	}
	return m, nil
}
