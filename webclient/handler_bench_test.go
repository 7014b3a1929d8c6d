package webclient

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/fstest"
	"time"
)

// BenchmarkServeModule serves dsm.js (gzip accepted, as browsers ask) from the Handler and,
// in the same run, from http.FileServer over an in-memory copy as the baseline. It reports
// ns/op of both and their ratio (handler / baseline).
func BenchmarkServeModule(b *testing.B) {
	h, err := New(Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	body, err := assets.ReadFile("dsm.js")
	if err != nil {
		b.Fatal(err)
	}
	base := http.FileServerFS(fstest.MapFS{"dsm.js": {Data: body, ModTime: time.Unix(1, 0)}})
	run := func(hd http.Handler, n int) time.Duration {
		r := httptest.NewRequest("GET", "/dsm.js", nil)
		r.Header.Set("Accept-Encoding", "gzip, deflate, br")
		start := time.Now()
		for range n {
			w := httptest.NewRecorder()
			hd.ServeHTTP(w, r)
			if w.Code != 200 {
				b.Fatalf("status %d", w.Code)
			}
		}
		return time.Since(start)
	}
	b.ReportAllocs()
	b.ResetTimer()
	th := run(h, b.N)
	b.StopTimer()
	tb := run(base, b.N)
	b.ReportMetric(float64(th.Nanoseconds())/float64(b.N), "handler-ns/op")
	b.ReportMetric(float64(tb.Nanoseconds())/float64(b.N), "fileserver-ns/op")
	b.ReportMetric(float64(th)/float64(tb), "ratio")
}
