package builtin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jetworker/jetworker/modules/processor"
)

// HTTPConfig bounds the http processor.
type HTTPConfig struct {
	// AllowHosts lists the hosts it may call (exact names, or ".example.com"
	// for a domain and its subdomains); empty allows any.
	AllowHosts []string `yaml:"allow_hosts"`
}

// HTTPRequest is the http processor's params (JSON), or just a URL.
type HTTPRequest struct {
	Method  string            `json:"method"` // default GET (POST when there is a body)
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
	// ExpectStatus is the status that means success (0: any 2xx).
	ExpectStatus int `json:"expect_status"`
}

// HTTP calls a URL: the params are a URL (GET, any 2xx succeeds) or an
// HTTPRequest in JSON. The result is the status and the start of the
// body; the instance's time limit bounds the call (30 s without one).
type HTTP struct {
	cfg    HTTPConfig
	client *http.Client
}

// NewHTTP builds the processor.
func NewHTTP(cfg HTTPConfig) *HTTP {
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	return &HTTP{cfg: cfg, client: &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext, TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 4}}}
}

// Process implements processor.Processor.
func (h *HTTP) Process(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
	var req HTTPRequest
	p := strings.TrimSpace(params(tc))
	if strings.HasPrefix(p, "{") {
		if err := json.Unmarshal([]byte(p), &req); err != nil {
			return processor.Fail("params: not an HTTP request in JSON: " + err.Error()), nil
		}
	} else {
		req.URL = p
	}
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return processor.Fail(fmt.Sprintf("url: %q is not an http or https URL", req.URL)), nil
	}
	if !h.allowed(u.Hostname()) {
		return processor.Fail(fmt.Sprintf("url: host %q is not in this worker's allow-list (worker.builtin.http.allow_hosts: %v)", u.Hostname(), h.cfg.AllowHosts)), nil
	}
	if req.Method == "" {
		req.Method = http.MethodGet
		if req.Body != "" {
			req.Method = http.MethodPost
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	hr, err := http.NewRequestWithContext(ctx, strings.ToUpper(req.Method), req.URL, strings.NewReader(req.Body))
	if err != nil {
		return processor.Fail("request: " + err.Error()), nil
	}
	for k, v := range req.Headers {
		hr.Header.Set(k, v)
	}
	tc.Logger.Info("http request", "method", hr.Method, "url", req.URL)
	resp, err := h.client.Do(hr)
	if err != nil {
		if ctx.Err() != nil {
			return processor.Result{}, fmt.Errorf("http %s %s: %w", hr.Method, req.URL, ctx.Err())
		}
		return processor.Fail(fmt.Sprintf("%s %s: %v", hr.Method, req.URL, err)), nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	tc.Logger.Info("http response", "status", resp.StatusCode, "bytes", len(body))
	msg := strings.TrimSpace(resp.Status + " " + clip(strings.TrimSpace(string(body)), 200))
	ok := resp.StatusCode == req.ExpectStatus || (req.ExpectStatus == 0 && resp.StatusCode/100 == 2)
	if !ok {
		want := "2xx"
		if req.ExpectStatus != 0 {
			want = fmt.Sprint(req.ExpectStatus)
		}
		return processor.Fail(fmt.Sprintf("%s (expected %s)", msg, want)), nil
	}
	return processor.OK(msg), nil
}

func (h *HTTP) allowed(host string) bool {
	if len(h.cfg.AllowHosts) == 0 {
		return true
	}
	host = strings.ToLower(host)
	return slices.ContainsFunc(h.cfg.AllowHosts, func(a string) bool {
		a = strings.ToLower(a)
		if strings.HasPrefix(a, ".") {
			return host == a[1:] || strings.HasSuffix(host, a)
		}
		return host == a
	})
}
