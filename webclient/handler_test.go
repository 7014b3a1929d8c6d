package webclient

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"dsmgw/store"
)

func newHandler(t *testing.T, cfg Config) *Handler {
	t.Helper()
	h, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func TestHandlerServesAssets(t *testing.T) {
	t.Parallel()
	h := newHandler(t, Config{})
	tests := map[string]struct {
		path, ctype string
		status      int
	}{
		"index":     {"/", "text/html; charset=utf-8", 200},
		"page":      {"/index.html", "text/html; charset=utf-8", 200},
		"module":    {"/dsm.js", "text/javascript; charset=utf-8", 200},
		"transform": {"/transform.js", "text/javascript; charset=utf-8", 200},
		"css":       {"/app.css", "text/css; charset=utf-8", 200},
		"schema":    {SchemaPath, "application/json", 200},
		"missing":   {"/nope.js", "", 404},
		"test file": {"/test/wsclient.js", "", 404},
		"go source": {"/handler.go", "", 404},
		"package":   {"/package.json", "", 404},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := get(t, h, "GET", tc.path, nil)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			if tc.status != 200 {
				return
			}
			if got := res.Header.Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type %q, want %q", got, tc.ctype)
			}
			if res.Header.Get("Cache-Control") != "no-cache" || res.Header.Get("ETag") == "" {
				t.Errorf("caching headers: %v", res.Header)
			}
			if res.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("no nosniff")
			}
			if strings.HasPrefix(tc.ctype, "text/html") && res.Header.Get("Content-Security-Policy") == "" {
				t.Errorf("html without CSP")
			}
		})
	}
}

func TestHandlerSchemaIsTheStoreSchema(t *testing.T) {
	t.Parallel()
	h := newHandler(t, Config{})
	res := get(t, h, "GET", SchemaPath, nil)
	b, _ := io.ReadAll(res.Body)
	if !bytes.Equal(b, store.SchemaJSON()) {
		t.Fatalf("schema differs from store.SchemaJSON()")
	}
}

func TestHandlerRevalidationGzipAndMethods(t *testing.T) {
	t.Parallel()
	h := newHandler(t, Config{MaxAge: time.Hour})
	res := get(t, h, "GET", "/dsm.js", nil)
	plain, _ := io.ReadAll(res.Body)
	etag := res.Header.Get("ETag")
	if res.Header.Get("Cache-Control") != "public, max-age=3600" {
		t.Errorf("Cache-Control %q", res.Header.Get("Cache-Control"))
	}
	for _, inm := range []string{etag, "W/" + etag, `"x", ` + etag, "*"} {
		if res := get(t, h, "GET", "/dsm.js", map[string]string{"If-None-Match": inm}); res.StatusCode != 304 {
			t.Errorf("If-None-Match %s: status %d, want 304", inm, res.StatusCode)
		}
	}
	if res := get(t, h, "GET", "/dsm.js", map[string]string{"If-None-Match": `"other"`}); res.StatusCode != 200 {
		t.Errorf("stale ETag: status %d", res.StatusCode)
	}
	res = get(t, h, "GET", "/dsm.js", map[string]string{"Accept-Encoding": "br, gzip;q=0.8"})
	if res.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("no gzip: %v", res.Header)
	}
	zr, err := gzip.NewReader(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	unz, _ := io.ReadAll(zr)
	if !bytes.Equal(unz, plain) {
		t.Fatal("gzip body differs")
	}
	if res := get(t, h, "GET", "/dsm.js", map[string]string{"Accept-Encoding": "gzip;q=0"}); res.Header.Get("Content-Encoding") != "" {
		t.Error("gzip despite q=0")
	}
	if res := get(t, h, "HEAD", "/dsm.js", nil); res.StatusCode != 200 || res.ContentLength != int64(len(plain)) {
		t.Errorf("HEAD: %d %d", res.StatusCode, res.ContentLength)
	}
	if res := get(t, h, "POST", "/dsm.js", nil); res.StatusCode != 405 || res.Header.Get("Allow") == "" {
		t.Errorf("POST: %d", res.StatusCode)
	}
}

// FuzzRequestHeaders feeds arbitrary If-None-Match and Accept-Encoding values: the parsers
// must never panic and an exact ETag always matches.
func FuzzRequestHeaders(f *testing.F) {
	f.Add(`"abc"`, "gzip")
	f.Add(`W/"abc", *`, "gzip;q=0, br")
	f.Add(",,,", ";;;q=")
	f.Fuzz(func(t *testing.T, inm, ae string) {
		_ = etagMatch(inm, `"abc"`)
		_ = acceptsGzip(ae)
		if !etagMatch(inm+`, "abc"`, `"abc"`) {
			t.Fatalf("exact ETag after %q did not match", inm)
		}
	})
}

// TestHandlerDefaultsFromDefaultConfig: a zero Config serves with DefaultConfig's knobs,
// and a given CSP replaces the default one.
func TestHandlerDefaultsFromDefaultConfig(t *testing.T) {
	t.Parallel()
	res := get(t, newHandler(t, Config{}), "GET", "/", nil)
	if got, want := res.Header.Get("Content-Security-Policy"), DefaultConfig().CSP; got != want {
		t.Errorf("CSP %q, want the default %q", got, want)
	}
	res = get(t, newHandler(t, Config{CSP: "default-src 'none'"}), "GET", "/", nil)
	if got := res.Header.Get("Content-Security-Policy"); got != "default-src 'none'" {
		t.Errorf("CSP %q, want the configured one", got)
	}
}
