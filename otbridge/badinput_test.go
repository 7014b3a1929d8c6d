package otbridge_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"dsmgw/internal/testpeer"
	"dsmgw/otbridge"
	"dsmgw/store"
)

// TestBadInput: each bad input gets its clear error (or close code), the connection stays
// usable where the protocol says so, and nothing at all is written to Redis.
func TestBadInput(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	rdb := newRedisClient(t, r.Addr)
	in := startInstance(t, rdb, otbridge.Config{OpsPerSecond: 5, MaxSubs: 3, MaxFrameBytes: 8192}, store.Config{MaxFields: 4}, nil)
	sess := in.session(t, "bob")
	own := "players/" + sess.Client + "/audio"
	other := "players/aaaaaaaaaaaaaaaaaaaaaaaaaa/audio"
	now := time.Now()
	expired := otbridge.SignToken(secret, otbridge.Claims{Client: sess.Client, Exp: now.Add(-time.Second).Unix()})
	forged := otbridge.SignToken([]byte("not the gateway's secret, 32 b.."), otbridge.Claims{Client: sess.Client, Exp: now.Add(time.Hour).Unix()})
	op := func(obj, ops string) string { return `{"t":"op","obj":"` + obj + `","seq":1,"ops":` + ops + `}` }

	type check struct {
		send    []string // after hello (unless noHello)
		want    string   // expected code of an error or nack ("" when closeCode is checked)
		nack    bool     // the answer is a nack rather than an error
		close   int      // the connection must be closed with this code
		hello   bool     // send hello first
		token   string   // hello with this token instead
		binary  bool
		rehello bool // no hello was accepted: one must work afterwards
	}
	cases := map[string]check{
		"malformed JSON":       {hello: true, send: []string{`{"t":"sub",`}, want: otbridge.CodeBadJSON},
		"not an object":        {hello: true, send: []string{`["sub"]`}, want: otbridge.CodeBadJSON},
		"binary frame":         {hello: true, binary: true, send: []string{`{"t":"ping"}`}, want: otbridge.CodeBadJSON},
		"unknown type":         {hello: true, send: []string{`{"t":"launch"}`}, want: otbridge.CodeBadMessage},
		"missing seq":          {hello: true, send: []string{`{"t":"op","obj":"` + own + `","ops":[{"o":"set","f":"a","v":"b"}]}`}, want: otbridge.CodeBadMessage},
		"missing obj":          {hello: true, send: []string{`{"t":"sub"}`}, want: otbridge.CodeBadMessage},
		"bad address":          {hello: true, send: []string{`{"t":"sub","obj":"players//x"}`}, want: otbridge.CodeBadMessage},
		"set without value":    {hello: true, send: []string{op(own, `[{"o":"set","f":"a"}]`)}, want: otbridge.CodeBadMessage},
		"before hello":         {send: []string{`{"t":"sub","obj":"users"}`}, want: otbridge.CodeNotAuthenticated},
		"write other player":   {hello: true, send: []string{op(other, `[{"o":"set","f":"a","v":"b"}]`)}, want: otbridge.CodeForbidden, nack: true},
		"read other player":    {hello: true, send: []string{`{"t":"sub","obj":"` + other + `"}`}, want: otbridge.CodeForbidden},
		"read players index":   {hello: true, send: []string{`{"t":"sub","obj":"players"}`}, want: otbridge.CodeForbidden},
		"other index entry":    {hello: true, send: []string{op("players", `[{"o":"set","f":"`+other+`","v":"audio"}]`)}, want: otbridge.CodeForbidden, nack: true},
		"write users":          {hello: true, send: []string{op("users/bob", `[{"o":"set","f":"name","v":"x"}]`)}, want: otbridge.CodeForbidden, nack: true},
		"value too long":       {hello: true, send: []string{op(own, `[{"o":"set","f":"a","v":"`+strings.Repeat("x", 4097)+`"}]`)}, want: otbridge.CodeValueTooLong, nack: true},
		"too many ops":         {hello: true, send: []string{op(own, "["+strings.Repeat(`{"o":"del","f":"a"},`, 32)+`{"o":"del","f":"a"}]`)}, want: otbridge.CodeTooManyOps, nack: true},
		"too many fields":      {hello: true, send: []string{op(own, `[{"o":"set","f":"a","v":"1"},{"o":"set","f":"b","v":"1"},{"o":"set","f":"c","v":"1"},{"o":"set","f":"d","v":"1"},{"o":"set","f":"e","v":"1"}]`)}, want: otbridge.CodeTooManyFields, nack: true},
		"base ahead":           {hello: true, send: []string{`{"t":"op","obj":"` + own + `","base":7,"seq":1,"ops":[{"o":"set","f":"a","v":"b"}]}`}, want: otbridge.CodeBaseAhead, nack: true},
		"expect failed":        {hello: true, send: []string{op(own, `[{"o":"expect","f":"a","v":"x"},{"o":"set","f":"a","v":"b"}]`)}, want: otbridge.CodeExpectFailed, nack: true},
		"too many subs":        {hello: true, send: []string{`{"t":"sub","obj":"users"}`, `{"t":"sub","obj":"users/bob"}`, `{"t":"sub","obj":"users/bob/conf/a"}`, `{"t":"sub","obj":"users/bob/conf/b"}`}, want: otbridge.CodeTooManySubs},
		"flood":                {hello: true, send: flood(op(other, `[{"o":"set","f":"a","v":"b"}]`), 30), want: otbridge.CodeRateLimited, nack: true},
		"forged token":         {token: forged, close: otbridge.CloseBadToken, want: otbridge.CodeBadToken},
		"expired token":        {token: expired, close: otbridge.CloseBadToken, want: otbridge.CodeBadToken},
		"malformed token":      {token: "x.y", close: otbridge.CloseBadToken, want: otbridge.CodeBadToken},
		"oversized frame":      {hello: true, send: []string{`{"t":"ping","id":"` + strings.Repeat("x", 9000) + `"}`}, close: otbridge.CloseTooBig},
		"second hello":         {hello: true, send: []string{`{"t":"hello","token":"` + sess.Token + `"}`}, want: otbridge.CodeBadMessage},
		"unsub not subscribed": {hello: true, send: []string{`{"t":"unsub","obj":"users"}`}, want: otbridge.CodeBadMessage},
		// Strings JSON cannot carry unchanged, numbers no client represents exactly.
		"lone surrogate value": {hello: true, send: []string{op(own, `[{"o":"set","f":"remote","v":"Bj\ud83d"}]`)}, want: otbridge.CodeBadMessage, nack: true},
		"lone surrogate field": {hello: true, send: []string{op(own, `[{"o":"set","f":"\udc00","v":"x"}]`)}, want: otbridge.CodeBadMessage, nack: true},
		"invalid UTF-8 frame":  {hello: true, send: []string{op(own, "[{\"o\":\"set\",\"f\":\"remote\",\"v\":\"\xc3\"}]")}, close: otbridge.CloseInvalidUTF8},
		"seq 2^53":             {hello: true, send: []string{`{"t":"op","obj":"` + own + `","seq":9007199254740992,"ops":[{"o":"set","f":"a","v":"b"}]}`}, want: otbridge.CodeBadMessage},
		"base 2^53":            {hello: true, send: []string{`{"t":"op","obj":"` + own + `","base":9007199254740992,"seq":1,"ops":[{"o":"set","f":"a","v":"b"}]}`}, want: otbridge.CodeBadMessage, nack: true},
		"since 2^53":           {hello: true, send: []string{`{"t":"sub","obj":"` + own + `","since":9007199254740992}`}, want: otbridge.CodeBadMessage},
		"negative seq":         {hello: true, send: []string{`{"t":"op","obj":"` + own + `","seq":-1,"ops":[{"o":"set","f":"a","v":"b"}]}`}, want: otbridge.CodeBadMessage},
		"fractional seq":       {hello: true, send: []string{`{"t":"op","obj":"` + own + `","seq":1.5,"ops":[{"o":"set","f":"a","v":"b"}]}`}, want: otbridge.CodeBadMessage},
		"seq as a string":      {hello: true, send: []string{`{"t":"op","obj":"` + own + `","seq":"1","ops":[{"o":"set","f":"a","v":"b"}]}`}, want: otbridge.CodeBadMessage},
		// Epochs name a page load: a short token of [A-Za-z0-9_-].
		"epoch with a space":      {send: []string{`{"t":"hello","token":"` + sess.Token + `","epoch":"a b"}`}, want: otbridge.CodeBadMessage, rehello: true},
		"epoch too long":          {send: []string{`{"t":"hello","token":"` + sess.Token + `","epoch":"` + strings.Repeat("e", 33) + `"}`}, want: otbridge.CodeBadMessage, rehello: true},
		"own user's registration": {hello: true, send: []string{op("users/bob", `[{"o":"set","f":"registration","v":"registered"}]`)}, want: otbridge.CodeForbidden, nack: true},
		// Addresses and the players index against the schema, and the objects a key may own.
		"dot-dot address":          {hello: true, send: []string{`{"t":"sub","obj":"players/` + sess.Client + `/../x/audio"}`}, want: otbridge.CodeBadMessage},
		"dot-dot index field":      {hello: true, send: []string{op("players", `[{"o":"set","f":"players/`+sess.Client+`/../B/audio","v":"audio"}]`)}, want: otbridge.CodeForbidden, nack: true},
		"index value":              {hello: true, send: []string{op("players", `[{"o":"set","f":"`+own+`","v":"loud"}]`)}, want: otbridge.CodeBadMessage, nack: true},
		"index unknown media":      {hello: true, send: []string{op("players", `[{"o":"set","f":"players/`+sess.Client+`/smell","v":"smell"}]`)}, want: otbridge.CodeBadMessage, nack: true},
		"object beyond schema":     {hello: true, send: []string{op("players/"+sess.Client+"/x1", `[{"o":"set","f":"a","v":"b"}]`)}, want: otbridge.CodeBadMessage, nack: true},
		"object of the key itself": {hello: true, send: []string{op("players/"+sess.Client, `[{"o":"set","f":"a","v":"b"}]`)}, want: otbridge.CodeForbidden, nack: true},
		// Grants of users/*: a token reads its own user only.
		"read other user":      {hello: true, send: []string{`{"t":"sub","obj":"users/alice"}`}, want: otbridge.CodeForbidden},
		"read other user conf": {hello: true, send: []string{`{"t":"sub","obj":"users/alice/conf/c1"}`}, want: otbridge.CodeForbidden},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, in.url)
			if tc.hello {
				c.hello(sess.Token)
			}
			if tc.token != "" {
				c.send(`{"t":"hello","token":"` + tc.token + `"}`)
			}
			for _, s := range tc.send {
				mt := websocket.TextMessage
				if tc.binary {
					mt = websocket.BinaryMessage
				}
				if err := c.ws.WriteMessage(mt, []byte(s)); err != nil {
					t.Fatal(err)
				}
			}
			got := false
			for {
				m, err := c.next()
				if err != nil {
					var ce *websocket.CloseError
					if tc.close == 0 || !errors.As(err, &ce) || ce.Code != tc.close {
						t.Fatalf("connection ended with %v; want close %d", err, tc.close)
					}
					break
				}
				if tc.want == "" || m["code"] != tc.want {
					if m["t"] == "snap" || ((tc.want == otbridge.CodeRateLimited || tc.want == otbridge.CodeTooManySubs) && m["code"] == otbridge.CodeForbidden) {
						continue // the subscriptions and ops that were within the limits
					}
					t.Fatalf("got %v, want code %q", m, tc.want)
				}
				wantT := "error"
				if tc.nack {
					wantT = "nack"
				}
				if m["t"] != wantT || m["msg"] == "" {
					t.Fatalf("got %v, want a %s with a message", m, wantT)
				}
				got = true
				if tc.close == 0 {
					break
				}
			}
			if tc.want != "" && !got {
				t.Fatalf("no %s", tc.want)
			}
			if tc.close == 0 {
				if tc.want == otbridge.CodeNotAuthenticated || tc.rehello {
					c.hello(sess.Token) // still usable: hello works afterwards
				}
				if tc.want != otbridge.CodeRateLimited {
					c.usable()
				}
			}
			if n := objectKeys(t, rdb); n != 0 {
				t.Fatalf("Redis holds %d object keys; bad input must write nothing", n)
			}
		})
	}
}

func flood(msg string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = msg
	}
	return out
}
