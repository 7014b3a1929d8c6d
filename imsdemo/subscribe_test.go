package imsdemo

import (
	"strings"
	"testing"
	"time"

	"dsmgw/imsdemo/mixer"
)

// RFC 6665 on the notifier side: refusals, a refresh brings full state again, an
// unsubscribe is answered and ends with a terminating NOTIFY, a fetch (Expires 0 at
// once) gets the state once.
func TestSubscriptionLifecycle(t *testing.T) {
	t.Parallel()
	s, _ := startServer(t, Config{SubscribeMinExpires: 30 * time.Second, SubscribeMaxExpires: 300 * time.Second})
	room := "sip:lifecycle@" + s.Addr("udp")

	bad := newSubscriber(t, "bad", "")
	if code := bad.subscribe(room, 10); code != 423 {
		t.Fatalf("Expires 10 below the minimum: %d", code)
	}
	bad.callID = "other"
	if res := bad.send(600, "presence"); res.StatusCode != 489 || res.GetHeader("Allow-Events") == nil {
		t.Fatalf("Event: presence: %d", res.StatusCode)
	}

	sub := newSubscriber(t, "watcher", "")
	if code := sub.subscribe(room, 3600); code != 200 || sub.expires != 300 {
		t.Fatalf("SUBSCRIBE: %d, granted %d (max 300)", code, sub.expires)
	}
	if ci := sub.next(); ci.State != "full" || ci.Version != 1 {
		t.Fatalf("first NOTIFY %+v", ci)
	}
	if !strings.HasPrefix(sub.states[0], "active;expires=") {
		t.Fatalf("Subscription-State %q", sub.states[0])
	}
	p := newPhone(t, "alice", mixer.PCMU, 440, "")
	p.call(room)
	sub.waitFor(map[string]string{p.aor(): who("Alice", "connected")})

	// Refresh: 200, then the full state with the next version.
	if res := sub.send(120, "conference"); res.StatusCode != 200 {
		t.Fatalf("refresh: %d", res.StatusCode)
	}
	last := sub.docs[len(sub.docs)-1].Version
	if ci := sub.next(); ci.State != "full" || ci.Version != last+1 || len(ci.Users.List) != 1 {
		t.Fatalf("NOTIFY after refresh: %+v", ci)
	}

	// Unsubscribe: 200, then a terminating NOTIFY without a body.
	if res := sub.send(0, "conference"); res.StatusCode != 200 {
		t.Fatalf("unsubscribe: %d", res.StatusCode)
	}
	if ci := sub.next(); ci != nil || sub.states[len(sub.states)-1] != "terminated;reason=timeout" {
		t.Fatalf("final NOTIFY: %+v %q", ci, sub.states[len(sub.states)-1])
	}
	if res := sub.send(600, "conference"); res.StatusCode != 481 {
		t.Fatalf("refresh after the end: %d", res.StatusCode)
	}

	// A subscription not refreshed in time ends with reason timeout.
	short := newSubscriber(t, "short", "")
	if code := short.subscribe(room, 30); code != 200 {
		t.Fatalf("short: %d", code)
	}
	short.next()
	s.mu.Lock()
	ss := s.subs[short.callID]
	s.mu.Unlock()
	ss.mu.Lock()
	ss.expires = time.Now() // as if 30 s had passed
	ss.mu.Unlock()
	for short.next(); short.states[len(short.states)-1] != "terminated;reason=timeout"; short.next() {
	}

	// A fetch: one NOTIFY with the state, terminated.
	fetch := newSubscriber(t, "fetch", "")
	if code := fetch.subscribe(room, 0); code != 200 {
		t.Fatalf("fetch: %d", code)
	}
	if ci := fetch.next(); ci == nil || ci.State != "full" || len(ci.Users.List) != 1 ||
		fetch.states[0] != "terminated;reason=timeout" {
		t.Fatalf("fetch NOTIFY %+v %q", ci, fetch.states)
	}
	p.hangup()
}

// A full state too large for a UDP datagram goes over TCP (RFC 3261 section 18.1.1).
func TestLargeStateGoesOverTCP(t *testing.T) {
	t.Parallel()
	s, _ := startServer(t, Config{})
	room := "sip:big@" + s.Addr("udp")
	var want = map[string]string{}
	var phones []*testPhone
	for _, n := range []string{"anna", "boris", "chloe", "dmitri", "erin", "farid", "gina", "hugo"} {
		p := newPhone(t, n, mixer.PCMU, 400, "")
		p.call(room)
		phones = append(phones, p)
		want[p.aor()] = who(p.display, "connected")
	}
	sub := newSubscriber(t, "watcher", "")
	if code := sub.subscribe(room, 600); code != 200 {
		t.Fatalf("SUBSCRIBE: %d", code)
	}
	sub.waitFor(want)
	for _, p := range phones {
		p.hangup()
	}
}

// The server ends a session whose participant stopped sending, and says why.
func TestMediaTimeoutEndsTheSession(t *testing.T) {
	t.Parallel()
	s, _ := startServer(t, Config{MediaTimeout: 2 * time.Second})
	room := "sip:quiet@" + s.Addr("udp")
	sub := newSubscriber(t, "watcher", "")
	sub.subscribe(room, 600)
	p := newPhone(t, "alice", mixer.PCMU, 440, "")
	p.call(room)
	sub.waitFor(map[string]string{p.aor(): who("Alice", "connected")})
	p.mu.Lock()
	p.sending = false // the phone goes quiet but stays in the call
	p.mu.Unlock()
	bye := p.waitBye(30 * time.Second)
	if r := bye.GetHeader("Reason"); r == nil || !strings.Contains(r.Value(), "media timeout") {
		t.Fatalf("BYE without the reason: %v", bye)
	}
	sub.waitFor(map[string]string{p.aor(): who("Alice", "disconnected")})
	last := sub.docs[len(sub.docs)-1]
	ep := last.Users.List[0].Endpoints[0]
	if *ep.Status != "disconnected" {
		t.Fatalf("endpoint %+v", ep)
	}
}

// On shutdown every participant gets a BYE and every subscriber a terminating NOTIFY
// (noresource); a participant gone from the state after the linger time is deleted.
func TestShutdownEndsEverything(t *testing.T) {
	t.Parallel()
	s, stop := startServer(t, Config{DepartedLinger: time.Second})
	room := "sip:closing@" + s.Addr("udp")
	sub := newSubscriber(t, "watcher", "")
	sub.subscribe(room, 600)
	a := newPhone(t, "alice", mixer.PCMU, 440, "")
	b := newPhone(t, "bob", mixer.PCMA, 880, "")
	a.call(room)
	b.call(room)
	sub.waitFor(map[string]string{a.aor(): who("Alice", "connected"), b.aor(): who("Bob", "connected")})
	b.hangup()
	// Bob lingers as disconnected, then is deleted.
	sub.waitFor(map[string]string{a.aor(): who("Alice", "connected"), b.aor(): who("Bob", "disconnected")})
	sub.waitFor(map[string]string{a.aor(): who("Alice", "connected")})

	stop()
	bye := a.waitBye(10 * time.Second)
	if r := bye.GetHeader("Reason"); r == nil || !strings.Contains(r.Value(), "480") {
		t.Fatalf("BYE reason: %v", bye.GetHeader("Reason"))
	}
	for {
		if sub.next(); strings.HasPrefix(sub.states[len(sub.states)-1], "terminated") {
			break
		}
	}
	if st := sub.states[len(sub.states)-1]; st != "terminated;reason=noresource" {
		t.Fatalf("final Subscription-State %q", st)
	}
	if got := sub.participants()[a.aor()]; got != who("Alice", "disconnected") {
		t.Fatalf("alice before the end: %s", got)
	}
}
