// Package webclient is the browser half of dsmgw: plain ES modules (the DSM client, the
// media player and user adapters, a demo page) embedded in the binary, and the
// http.Handler that serves them together with the shared schema at /dsm/schema.json.
package webclient

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"dsmgw/store"
)

//go:embed *.js *.html *.css
var assets embed.FS

// SchemaPath is where the handler serves store/schema.json; cmd/gateway must route it here
// (it lies under the bridge's /dsm prefix).
const SchemaPath = "/dsm/schema.json"

// PageConfigPath is where the demo page reads what it needs of the gateway's
// configuration (PageConfig as JSON).
const PageConfigPath = "/dsm/page.json"

// PageConfig is what the demo page is told of the deployment.
type PageConfig struct {
	// SIPDomain completes what a person types: "bob" calls sip:bob@<SIPDomain>.
	SIPDomain string `json:"sip_domain"`
	// SignInRefresh, when above 0, says that demo sign-in registers the page's user with
	// the network (asadapter/users, demo.go): a signed-in page writes the sign_in field of
	// its users/<user> object at once and again every SignInRefresh seconds.
	SignInRefresh int64 `json:"sign_in_refresh,omitempty"`
}

// Config tunes the Handler. Zero fields take their value from DefaultConfig.
type Config struct {
	// MaxAge is the Cache-Control max-age of the assets. The default 0 means "no-cache":
	// the module file names carry no content hash (there is no build step), so a browser
	// must revalidate every time; the ETag makes that a cheap 304.
	// Page is served at PageConfigPath for the demo page.
	Page   PageConfig
	MaxAge time.Duration
	// CSP is the Content-Security-Policy of HTML pages (default: scripts, styles and workers
	// from the page's origin only; WebSocket connections anywhere, since the media gateway
	// may be on another host).
	CSP string
}

// DefaultConfig returns every knob at its default.
func DefaultConfig() Config {
	return Config{
		MaxAge: 0,
		CSP: "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; " +
			"img-src 'self' data:; media-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
	}
}

// withDefaults fills the zero fields of c from DefaultConfig (the only place that does).
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxAge <= 0 {
		c.MaxAge = d.MaxAge
	}
	if c.CSP == "" {
		c.CSP = d.CSP
	}
	return c
}

// minGzipBytes: smaller files gain nothing from compression but still cost the header.
const minGzipBytes = 1024

// asset is one file, prepared once at start.
type asset struct {
	body  []byte
	gz    []byte // nil when not worth it
	ctype string
	etag  string
	html  bool
}

// Handler serves the embedded browser files and the schema. It is safe for concurrent use.
type Handler struct {
	cfg   Config
	log   *slog.Logger
	files map[string]*asset // URL path → asset
	cache string
}

// New prepares the embedded files (content types, ETags, gzip) and the schema. A nil log
// discards.
func New(cfg Config, log *slog.Logger) (*Handler, error) {
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{
		cfg:   cfg,
		log:   log.With("component", "webclient"),
		files: make(map[string]*asset),
		cache: "no-cache",
	}
	if cfg.MaxAge > 0 {
		h.cache = "public, max-age=" + strconv.Itoa(int(cfg.MaxAge/time.Second))
	}
	err := fs.WalkDir(assets, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		a, err := prepare(p, b)
		if err != nil {
			return err
		}
		h.files["/"+p] = a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("webclient: embedded files: %w", err)
	}
	if idx, ok := h.files["/index.html"]; ok {
		h.files["/"] = idx
	}
	sa, err := prepare("schema.json", store.SchemaJSON())
	if err != nil {
		return nil, fmt.Errorf("webclient: schema: %w", err)
	}
	h.files[SchemaPath] = sa
	pc, err := json.Marshal(cfg.Page)
	if err != nil {
		return nil, fmt.Errorf("webclient: page config: %w", err)
	}
	pa, err := prepare("page.json", pc)
	if err != nil {
		return nil, fmt.Errorf("webclient: page config: %w", err)
	}
	h.files[PageConfigPath] = pa
	h.log.Debug("browser files ready", "files", len(h.files))
	return h, nil
}

func prepare(name string, b []byte) (*asset, error) {
	ctype := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) {
	case ".js", ".mjs":
		// Module scripts must be served with a JavaScript MIME type; the system table may
		// lack it or say application/javascript, which is fine but not the standard one.
		ctype = "text/javascript; charset=utf-8"
	case ".json":
		ctype = "application/json"
	case ".html":
		ctype = "text/html; charset=utf-8"
	case ".css":
		ctype = "text/css; charset=utf-8"
	}
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	sum := sha256.Sum256(b)
	a := &asset{body: b, ctype: ctype, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`, html: strings.HasSuffix(name, ".html")}
	if len(b) >= minGzipBytes {
		var buf bytes.Buffer
		zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if err != nil {
			return nil, err
		}
		if _, err := zw.Write(b); err != nil {
			return nil, fmt.Errorf("gzip %s: %w", name, err)
		}
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("gzip %s: %w", name, err)
		}
		if buf.Len() < len(b) {
			a.gz = buf.Bytes()
		}
	}
	return a, nil
}

// Paths lists the URL paths the handler serves (for routing and tests).
func (h *Handler) Paths() []string {
	out := make([]string, 0, len(h.files))
	for p := range h.files {
		out = append(out, p)
	}
	return out
}

// ServeHTTP serves GET and HEAD for the embedded files and the schema; anything else is
// 404 or 405.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a, ok := h.files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.ctype)
	hd.Set("ETag", a.etag)
	hd.Set("Cache-Control", h.cache)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Vary", "Accept-Encoding")
	if a.html {
		hd.Set("Content-Security-Policy", h.cfg.CSP)
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Permissions-Policy", "microphone=(self), camera=()")
	}
	if etagMatch(r.Header.Get("If-None-Match"), a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.body
	if a.gz != nil && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		body = a.gz
		hd.Set("Content-Encoding", "gzip")
	}
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

// etagMatch implements the weak comparison of If-None-Match (RFC 9110 13.1.2).
func etagMatch(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(name) != "gzip" {
			continue
		}
		q := strings.ReplaceAll(params, " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}
