package mediagw

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// BaseURL is where the API is mounted, without /v1 (e.g. "http://127.0.0.1:8080").
	BaseURL string
	// Secret is the shared API secret sent as a bearer token.
	Secret string
	// HTTPClient is used for requests; nil uses one with a 10 s timeout, because every
	// call is a quick local operation and a hung gateway must not hang call setup.
	HTTPClient *http.Client
}

// Client is the Go client of the media gateway API. It is safe for concurrent use.
type Client struct {
	base   string
	auth   string
	client *http.Client
}

// NewClient checks cfg and returns a Client.
func NewClient(cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("mediagw: client base url %q: want http(s)://host[:port]", cfg.BaseURL)
	}
	if len(cfg.Secret) < minSecretLen {
		return nil, fmt.Errorf("mediagw: client secret shorter than %d bytes", minSecretLen)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return &Client{base: strings.TrimRight(cfg.BaseURL, "/"), auth: "Bearer " + cfg.Secret, client: hc}, nil
}

// AddLocal allocates a port pair: the answer is what goes into the SDP offer.
func (c *Client) AddLocal(ctx context.Context, req AddLocalRequest) (*LocalTermination, error) {
	var out LocalTermination
	if err := c.do(ctx, http.MethodPost, "/v1/terminations", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AddRemote sets the far end from the SDP answer and returns the browser's media URL.
func (c *Client) AddRemote(ctx context.Context, id string, remote Remote) (*MediaURL, error) {
	var out MediaURL
	if err := c.do(ctx, http.MethodPut, "/v1/terminations/"+url.PathEscape(id)+"/remote", remote, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// NewURL returns a fresh media URL (new token) for a termination that has a remote.
func (c *Client) NewURL(ctx context.Context, id string) (*MediaURL, error) {
	var out MediaURL
	if err := c.do(ctx, http.MethodPost, "/v1/terminations/"+url.PathEscape(id)+"/token", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Modify changes hold state, remote address or payload types.
func (c *Client) Modify(ctx context.Context, id string, req ModifyRequest) (*Termination, error) {
	var out Termination
	if err := c.do(ctx, http.MethodPatch, "/v1/terminations/"+url.PathEscape(id), req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Delete removes a termination. An unknown id returns an error matching ErrNotFound,
// which callers ending a call may treat as done.
func (c *Client) Delete(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/terminations/"+url.PathEscape(id), nil, nil)
}

// Get returns one termination with its counters.
func (c *Client) Get(ctx context.Context, id string) (*Termination, error) {
	var out Termination
	if err := c.do(ctx, http.MethodGet, "/v1/terminations/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// List returns the live terminations, only those of owner when owner is not empty.
func (c *Client) List(ctx context.Context, owner string) ([]Termination, error) {
	p := "/v1/terminations"
	if owner != "" {
		p += "?owner=" + url.QueryEscape(owner)
	}
	var out TerminationList
	if err := c.do(ctx, http.MethodGet, p, nil, &out); err != nil {
		return nil, err
	}
	return out.Terminations, nil
}

// SendDTMF queues RFC 4733 telephone-events toward the far end.
func (c *Client) SendDTMF(ctx context.Context, id string, req DTMFRequest) error {
	return c.do(ctx, http.MethodPost, "/v1/terminations/"+url.PathEscape(id)+"/dtmf", req, nil)
}

// maxResponse bounds what the client reads: a list of a few thousand terminations fits.
const maxResponse = 64 << 20

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("mediagw: %s %s: encode: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("mediagw: %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", c.auth)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("mediagw: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("mediagw: %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		ae := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(data, ae) != nil || ae.Code == "" {
			ae.Code = codeForStatus(resp.StatusCode)
			ae.Message = strings.TrimSpace(string(data))
		}
		return fmt.Errorf("mediagw: %s %s: %w", method, path, ae)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("mediagw: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

func codeForStatus(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return CodeUnauthorized
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusConflict:
		return CodeConflict
	case http.StatusServiceUnavailable:
		return CodeUnavailable
	case http.StatusMethodNotAllowed:
		return CodeMethodNotAllowed
	case http.StatusRequestEntityTooLarge:
		return CodeTooLarge
	}
	if status >= 400 && status < 500 {
		return CodeBadRequest
	}
	return "http_" + fmt.Sprint(status)
}
