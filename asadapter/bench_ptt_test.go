package asadapter

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"dsmgw/imsdemo"
	"dsmgw/store"
)

// floorWatch follows the floor_state of players on the DSM's change feed, as the bridge
// that pushes changes to the pages does: each value set is handed over as it is seen.
type floorWatch struct {
	e      *env
	states map[string]chan string
	marks  chan string // the bench field of the baseline, as written
	cancel func()
}

func newFloorWatch(e *env, players ...string) *floorWatch {
	w := &floorWatch{e: e, states: map[string]chan string{}, marks: make(chan string, 64)}
	for _, p := range players {
		w.states[p] = make(chan string, 64)
	}
	w.cancel = e.feed.Subscribe(func(c store.Change) {
		ch := w.states[c.Obj]
		if ch == nil {
			return
		}
		for _, o := range c.Ops {
			if o.Kind != store.OpSet || o.Value == nil {
				continue
			}
			switch o.Field {
			case "floor_state":
				select {
				case ch <- *o.Value:
				default:
				}
			case "bench_mark":
				select {
				case w.marks <- *o.Value:
				default:
				}
			}
		}
	})
	e.t.Cleanup(w.cancel)
	return w
}

// wait returns once player's floor_state is set to want (earlier values are skipped).
func (w *floorWatch) wait(player, want string) {
	w.e.t.Helper()
	timeout := time.After(waitFor)
	for {
		select {
		case v := <-w.states[player]:
			if v == want {
				return
			}
		case <-timeout:
			w.e.t.Fatalf("%s: floor_state %s never came", player, want)
		}
	}
}

// write commits ops to a player as its page does (through the same commit path).
func (w *floorWatch) write(player string, ops ...store.Op) {
	w.e.t.Helper()
	client, _, _ := w.e.st.Schema().ParsePlayerAddress(player)
	if _, err := w.e.st.Commit(w.e.ctx, store.Commit{Obj: player, Client: "browser/" + client, Base: -1, Ops: ops}); err != nil {
		w.e.t.Fatalf("page write %s: %v", player, err)
	}
}

// BenchmarkFloorThroughDSM measures push-to-talk floor control as a page sees it: two
// poc players in a talk group of the demo conference server (in process, on loopback),
// one adapter, the in-process media gateway, Redis. Per iteration:
//
//   - request→grant: the page's write of floor=request until floor_state=granted comes
//     back on the change feed (DSM commit, feed, the call's wake-up and read, Floor
//     Request and Floor Granted over UDP, the gate opened at the media gateway's API, the
//     floor state committed and fed back);
//   - release→next grant: the holder's floor=release until the queued player's
//     floor_state=granted comes back;
//   - baseline: a page's write of a field until it comes back on the feed (the DSM's own
//     round trip, which both of the above contain twice).
//
// It reports p50 and p99 of each in milliseconds. Run:
//
//	go test -run XXX -bench FloorThroughDSM -benchtime 200x ./asadapter/
func BenchmarkFloorThroughDSM(b *testing.B) {
	e := newEnv(b)
	conf := startTalkGroups(b, imsdemo.Config{})
	e.dir.login("amy", "amycl")
	e.writeUser("amy", "Amy", store.Set("sip_uri", "sip:amy@dsmgw.test"),
		store.Set("registration", "registered"))
	e.dir.login("ben", "bencl")
	e.writeUser("ben", "Ben", store.Set("sip_uri", "sip:ben@dsmgw.test"),
		store.Set("registration", "registered"))
	gw := e.adapter("gw1", func(c *Config) {
		c.OutboundProxy = "sip:" + conf.Addr("udp")
		c.TalkGroupDomain = tgDomain
		c.Floor.BindAddr = "127.0.0.1"
	})
	waitIdentity(b, gw.a, "amycl", true)
	waitIdentity(b, gw.a, "bencl", true)
	amy, ben := "players/amycl/audio", "players/bencl/audio"
	e.joinTalkGroup(amy, "bench")
	e.joinTalkGroup(ben, "bench")
	w := newFloorWatch(e, amy, ben)

	var grant, handover, base []time.Duration
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		w.write(amy, store.Set("bench_mark", strconv.Itoa(i)))
		for v := range w.marks {
			if v == strconv.Itoa(i) {
				break
			}
		}
		base = append(base, time.Since(t0))

		t0 = time.Now()
		w.write(amy, store.Set("floor", "request"))
		w.wait(amy, "granted")
		grant = append(grant, time.Since(t0))

		w.write(ben, store.Set("floor", "request"))
		w.wait(ben, "queued")
		t0 = time.Now()
		w.write(amy, store.Set("floor", "release"))
		w.wait(ben, "granted")
		handover = append(handover, time.Since(t0))

		w.write(ben, store.Set("floor", "release"))
		w.wait(amy, "idle")
	}
	b.StopTimer()
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"grant", grant}, {"handover", handover}, {"dsm", base}} {
		p50, p99 := percentile(m.d, 50), percentile(m.d, 99)
		b.ReportMetric(ms(p50), m.name+"-p50-ms")
		b.ReportMetric(ms(p99), m.name+"-p99-ms")
		if b.N > 1 {
			b.Logf("%s over %d: p50 %v, p99 %v", m.name, len(m.d), p50, p99)
		}
	}
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
