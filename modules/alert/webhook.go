package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Webhook request headers.
const (
	// HeaderSignature is "sha256=<hex HMAC-SHA256 of the body keyed with
	// the channel's secret>"; absent when the channel has no secret.
	HeaderSignature = "Jw-Signature"
	// HeaderAlertID is the event id: receivers deduplicate on it.
	HeaderAlertID = "Jw-Alert-Id"
)

// WebhookVersion is the version field of webhook bodies.
const WebhookVersion = 1

// WebhookBody is the JSON a webhook receives: the event's fields and a
// version.
type WebhookBody struct {
	Version int `json:"version"`
	Event
}

// Sign returns the Jw-Signature value of body under secret, for
// receivers to compare (with hmac.Equal) against the header.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// webhook posts events to one URL.
type webhook struct {
	ch     Channel
	client *http.Client
}

func (w *webhook) send(ctx context.Context, ev Event) (int, error) {
	body, err := json.Marshal(WebhookBody{Version: WebhookVersion, Event: ev})
	if err != nil {
		return 0, fmt.Errorf("encode event: %w", err)
	}
	return retry(ctx, w.ch, func(ctx context.Context) error { return w.post(ctx, ev.ID, body) })
}

func (w *webhook) post(ctx context.Context, id string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.ch.URL, bytes.NewReader(body))
	if err != nil {
		return permanent(err)
	}
	for k, v := range w.ch.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "jetworker-alert")
	req.Header.Set(HeaderAlertID, id)
	if w.ch.Secret != "" {
		req.Header.Set(HeaderSignature, Sign(w.ch.Secret, body))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return err // connection error or timeout: retried
	}
	// Read a little of the body so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusTooManyRequests:
		err := fmt.Errorf("status %d", code)
		if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
			return retryAfterError{err: err, after: time.Duration(s) * time.Second}
		}
		return err
	case code >= 500:
		return fmt.Errorf("status %d", code)
	default:
		// 4xx, and 3xx: redirects are not followed (a 302 would turn
		// the POST into a GET and pass for a delivery).
		return permanent(fmt.Errorf("status %d", code))
	}
}

// newHTTPClient returns the notifier's own client, so that Stop can close
// its idle connections.
func newHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
