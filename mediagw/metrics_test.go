package mediagw

import (
	"context"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// boundedLabels are the only label names the gateway's metrics may carry: each takes a
// fixed set of values. A call's id, Call-ID or player never becomes a label.
var boundedLabels = map[string]bool{"reason": true, "direction": true, "kind": true, "result": true,
	"type": true, "from": true}

// With calls up, every series has bounded labels and none names a call; the calls'
// figures are in the API, and their quality lands in the histograms when they end.
func TestMetricsBoundedLabels(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	var names []string
	for i := 0; i < 3; i++ {
		p := newPeer(t)
		c := e.newCall(t, p, true)
		sendWS(t, c.ws, rtpPacket(0, 1, 0, 1, 160))
		recvUDP(t, p.rtp)
		if _, err := p.rtp.WriteToUDP(rtpPacket(0, 1, 0, 2, 160), c.gwRTP); err != nil {
			t.Fatal(err)
		}
		recvWS(t, c.ws)
		sendWS(t, c.ws, rtpPacket(9, 2, 160, 1, 160)) // a drop
		eventually(t, "drop", func() bool { return mustGet(t, e, c.id).Counters.Drops[DropUnknownPT] == 1 })
		names = append(names, c.id, t.Name())
	}
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if !boundedLabels[lp.GetName()] {
					t.Errorf("%s has label %s=%q, not one of the bounded labels", mf.GetName(), lp.GetName(), lp.GetValue())
				}
				for _, n := range names {
					if strings.Contains(lp.GetValue(), n) {
						t.Errorf("%s{%s=%q} names a call", mf.GetName(), lp.GetName(), lp.GetValue())
					}
				}
			}
		}
	}
	// The per-call figures are in the API.
	ts, err := e.cl.List(context.Background(), "test")
	if err != nil || len(ts) != 3 || ts[0].Counters.FromUDP == nil || ts[0].Counters.FromWS == nil {
		t.Fatalf("list: %v %+v", err, ts)
	}
	for _, tm := range ts {
		if err := e.cl.Delete(context.Background(), tm.ID); err != nil {
			t.Fatal(err)
		}
	}
	for _, from := range []string{"udp", "ws"} {
		if n := histogramCount(t, e, "mediagw_call_loss_ratio", from); n != 3 {
			t.Errorf("mediagw_call_loss_ratio{from=%s} count %d, want the 3 ended calls", from, n)
		}
		if n := histogramCount(t, e, "mediagw_call_jitter_seconds", from); n != 3 {
			t.Errorf("mediagw_call_jitter_seconds{from=%s} count %d, want 3", from, n)
		}
	}
}

func histogramCount(t *testing.T, e *env, name, from string) uint64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelIs(m, "from", from) {
				return m.GetHistogram().GetSampleCount()
			}
		}
	}
	return 0
}

func labelIs(m *dto.Metric, name, value string) bool {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name && lp.GetValue() == value {
			return true
		}
	}
	return false
}
