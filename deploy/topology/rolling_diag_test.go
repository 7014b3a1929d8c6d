package topology

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// What the rolling restart tells when the phone's calls fail: which users were refused,
// from when and by which instance, who held the claim of the user's player then (the
// claim key's value "<instance>/<generation>" and the player's fields, sampled through
// the run), and what the gateways logged about that player around the first refusal (their
// log files hold every incarnation, the restarted ones too). A user refused for tens of
// seconds is a player left claimed somewhere; this says where.

// claimSample is a user's player as seen at one moment: its claim key's value ("" for no
// claim) and the player's call fields.
type claimSample struct {
	At     time.Time
	Claim  string
	Player string // player_state/mgw_state call_id
}

// claimWatch samples the claims and players of the callees through the run, keeping each
// change.
type claimWatch struct {
	mu   sync.Mutex
	hist map[string][]claimSample // by user
	stop chan struct{}
	done chan struct{}
}

// claimWatchEvery is how often the claims are read: a call lasts a second, a refusal storm
// tens of seconds.
const claimWatchEvery = 100 * time.Millisecond

// watchClaims starts sampling the claim of each user's page's player until stopped.
func watchClaims(rdb *redis.Client, pages map[string]*goPage) *claimWatch {
	w := &claimWatch{hist: map[string][]claimSample{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(claimWatchEvery)
		defer tick.Stop()
		for {
			for user, p := range pages {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				v, err := rdb.Get(ctx, claimKey(p.addr())).Result()
				cancel()
				switch {
				case err == redis.Nil:
					v = ""
				case err != nil:
					v = "(unread: " + err.Error() + ")"
				}
				f := p.fields()
				w.add(user, claimSample{At: time.Now(), Claim: v,
					Player: f["player_state"] + "/" + f["mgw_state"] + " " + f["call_id"]})
			}
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// add records s if it differs from the user's last sample.
func (w *claimWatch) add(user string, s claimSample) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.hist[user]
	if n := len(h); n > 0 && h[n-1].Claim == s.Claim && h[n-1].Player == s.Player {
		return
	}
	w.hist[user] = append(h, s)
}

// close stops the sampling.
func (w *claimWatch) close() {
	close(w.stop)
	<-w.done
}

// around returns the user's samples in effect from before until after: the one in effect
// at from, then every change up to to (at most max of them).
func (w *claimWatch) around(user string, from, to time.Time, max int) []claimSample {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []claimSample
	for _, s := range w.hist[user] {
		if s.At.After(to) || len(out) > max {
			break
		}
		if !s.At.After(from) {
			out = out[:0]
		}
		out = append(out, s)
	}
	return out
}

// refusal is how the phone's calls to one user were refused.
type refusal struct {
	User  string
	N     int
	First sipPacket
	By    map[string]int // by gateway and status
}

// refusalsByUser returns the users whose INVITEs a gateway refused (final status >= 300),
// in the order of their first refusal.
func refusalsByUser(pkts []sipPacket, gateways map[string]string) []*refusal {
	by := map[string]*refusal{}
	var out []*refusal
	for _, p := range pkts {
		gw, ok := gateways[p.Src]
		if !ok || p.CSeq != "INVITE" || p.Status < 300 {
			continue
		}
		r := by[p.ToUser]
		if r == nil {
			r = &refusal{User: p.ToUser, First: p, By: map[string]int{}}
			by[p.ToUser] = r
			out = append(out, r)
		}
		r.N++
		r.By[fmt.Sprintf("%s %d", gw, p.Status)]++
	}
	return out
}

// logLinesAbout returns the lines of a gateway's log (JSON lines of log/slog) that mention
// any of about and were written between from and to.
func logLinesAbout(out string, about []string, from, to time.Time) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if !slices.ContainsFunc(about, func(a string) bool { return strings.Contains(l, a) }) {
			continue
		}
		var m struct {
			Time time.Time `json:"time"`
		}
		if json.Unmarshal([]byte(l), &m) != nil || m.Time.Before(from) || m.Time.After(to) {
			continue
		}
		lines = append(lines, l)
	}
	return lines
}

// explainRefusals logs, for each refused user, when and by whom it was refused, its
// claim and player around the first refusal, and the gateways' log lines about it.
func explainRefusals(t *testing.T, s *Stack, pkts []sipPacket, claims *claimWatch, pages map[string]*goPage) {
	t.Helper()
	gws := gatewayAddrs(s)
	for _, r := range refusalsByUser(pkts, gws) {
		p := pages[r.User]
		player := "(not a page user)"
		if p != nil {
			player = p.addr()
		}
		at := r.First.At
		var b strings.Builder
		fmt.Fprintf(&b, "user %q (player %s) refused %d times %v; first at %s: %d from %s, Call-ID %s\n",
			r.User, player, r.N, r.By, at.UTC().Format("15:04:05.000"), r.First.Status, gws[r.First.Src], r.First.CallID)
		b.WriteString("  claim key and player (status/mgw_state call_id) from before the first refusal:\n")
		for _, c := range claims.around(r.User, at, at.Add(10*time.Second), 20) {
			fmt.Fprintf(&b, "    %s claim=%q player=%s\n", c.At.UTC().Format("15:04:05.000"), c.Claim, c.Player)
		}
		if p != nil {
			for _, name := range []string{"gw1", "gw2", "gw3"} {
				lines := logLinesAbout(s.Service(t, name).Output(), []string{player, `"user":"` + r.User + `"`},
					at.Add(-15*time.Second), at.Add(time.Second))
				if len(lines) > 40 {
					lines = append([]string{fmt.Sprintf("(%d lines before)", len(lines)-40)}, lines[len(lines)-40:]...)
				}
				fmt.Fprintf(&b, "  %s's log about the player or user, the 15 s up to the first refusal:\n    %s\n",
					name, strings.Join(lines, "\n    "))
			}
		}
		t.Log(b.String())
	}
}

func TestRefusalsByUser(t *testing.T) {
	at := func(s int) time.Time { return time.Unix(int64(s), 0) }
	gws := map[string]string{"10.0.0.11": "gw1", "10.0.0.12": "gw2"}
	pkts := []sipPacket{
		{At: at(1), Src: "10.0.0.1", Dst: "10.0.0.20", Method: "INVITE", CallID: "a", CSeq: "INVITE", ToUser: "u4"},
		{At: at(2), Src: "10.0.0.12", Status: 486, CallID: "a", CSeq: "INVITE", ToUser: "u4"},
		{At: at(3), Src: "10.0.0.11", Status: 486, CallID: "b", CSeq: "INVITE", ToUser: "u4"},
		{At: at(4), Src: "10.0.0.11", Status: 200, CallID: "c", CSeq: "INVITE", ToUser: "u1"},
		{At: at(5), Src: "10.0.0.11", Status: 481, CallID: "d", CSeq: "BYE", ToUser: "u2"},
		{At: at(6), Src: "10.0.0.20", Status: 486, CallID: "e", CSeq: "INVITE", ToUser: "u3"},
	}
	rs := refusalsByUser(pkts, gws)
	if len(rs) != 1 || rs[0].User != "u4" || rs[0].N != 2 || !rs[0].First.At.Equal(at(2)) ||
		rs[0].By["gw2 486"] != 1 || rs[0].By["gw1 486"] != 1 {
		t.Fatalf("%+v", rs)
	}
}

func TestClaimWatchAround(t *testing.T) {
	at := func(s int) time.Time { return time.Unix(int64(s), 0) }
	w := &claimWatch{hist: map[string][]claimSample{}}
	for i, c := range []string{"", "gw1/1", "gw1/1", "", "gw2/1", "gw2/1"} {
		w.add("u1", claimSample{At: at(i), Claim: c})
	}
	got := w.around("u1", at(3), at(10), 5)
	if len(got) != 2 || got[0].Claim != "" || got[1].Claim != "gw2/1" {
		t.Fatalf("%+v", got)
	}
	if got := w.around("u1", at(1), at(1), 5); len(got) != 1 || got[0].Claim != "gw1/1" {
		t.Fatalf("%+v", got)
	}
}

func TestLogLinesAbout(t *testing.T) {
	out := `{"time":"2026-11-26T11:53:50Z","msg":"a","player":"players/x/audio"}
{"time":"2026-11-26T11:53:51Z","msg":"b","player":"players/y/audio"}
{"time":"2026-11-26T11:53:52Z","msg":"c","user":"u4"}
not json players/x/audio
{"time":"2026-11-26T11:54:30Z","msg":"d","player":"players/x/audio"}`
	from, _ := time.Parse(time.RFC3339, "2026-11-26T11:53:40Z")
	got := logLinesAbout(out, []string{"players/x/audio", `"user":"u4"`}, from, from.Add(20*time.Second))
	if len(got) != 2 || !strings.Contains(got[0], `"a"`) || !strings.Contains(got[1], `"c"`) {
		t.Fatalf("%q", got)
	}
}
