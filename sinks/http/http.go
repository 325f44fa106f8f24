// Package http is the HTTP target: it POSTs (or PUTs, …) each event to a URL,
// as structured-mode CloudEvents JSON by default or in binary mode (ce-*
// headers, data as the body). A 2xx answer is success; 408, 429, 5xx and
// network errors are retried by the dispatcher (429 and 503 honour
// Retry-After); every other answer is permanent and dead-letters the event.
//
// It must not retry on its own: retry, backoff and dead-lettering are the
// dispatcher's (routers), the same for every sink.
package http

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/sinks"
)

func init() { sinks.Register("http", New) }

// ContentTypeStructured is the content type of a structured-mode CloudEvent.
const ContentTypeStructured = "application/cloudevents+json; charset=utf-8"

// maxErrorBody is how much of an error answer is kept for the log and DLQ.
const maxErrorBody = 512

// Sink delivers to one HTTP endpoint.
type Sink struct {
	id      string
	url     string
	method  string
	headers nethttp.Header
	timeout time.Duration
	binary  bool
	client  *nethttp.Client
}

// New builds an HTTP sink from a validated target.
func New(t config.Target) (sinks.Sink, error) {
	if t.URL == "" {
		return nil, fmt.Errorf("target %q: url is required", t.ID)
	}
	s := &Sink{
		id:      t.ID,
		url:     t.URL,
		method:  strings.ToUpper(t.Method),
		headers: nethttp.Header{},
		timeout: t.Timeout.D(),
		binary:  t.Mode == "binary",
	}
	if s.method == "" {
		s.method = nethttp.MethodPost
	}
	if s.timeout <= 0 {
		s.timeout = 5 * time.Second
	}
	for k, v := range t.Headers {
		s.headers.Set(k, v)
	}
	conc := t.Concurrency
	if conc <= 0 {
		conc = 16
	}
	tr := &nethttp.Transport{
		Proxy:               nethttp.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conc * 2,
		MaxIdleConnsPerHost: conc * 2,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	s.client = &nethttp.Client{
		Transport: tr,
		// A redirect to elsewhere is the receiver's business; follow a few.
		CheckRedirect: func(req *nethttp.Request, via []*nethttp.Request) error {
			if len(via) >= 3 {
				return fmt.Errorf("stopped after 3 redirects")
			}
			return nil
		},
	}
	return s, nil
}

// Deliver sends one event.
func (s *Sink) Deliver(ctx context.Context, d sinks.Delivery) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := s.request(ctx, d)
	if err != nil {
		return sinks.Permanent(err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", s.method, s.url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err = &sinks.StatusError{Status: resp.StatusCode,
		Err: fmt.Errorf("%s %s: %s: %s", s.method, s.url, resp.Status, strings.TrimSpace(string(body)))}
	switch {
	case resp.StatusCode == nethttp.StatusTooManyRequests || resp.StatusCode == nethttp.StatusServiceUnavailable:
		if after, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return &sinks.RetryAfterError{Err: err, After: after}
		}
		return err
	case resp.StatusCode == nethttp.StatusRequestTimeout || resp.StatusCode >= 500:
		return err
	default:
		return sinks.Permanent(err)
	}
}

func (s *Sink) request(ctx context.Context, d sinks.Delivery) (*nethttp.Request, error) {
	if d.Body != nil {
		req, err := nethttp.NewRequestWithContext(ctx, s.method, s.url, bytes.NewReader(d.Body))
		if err != nil {
			return nil, err
		}
		for k, v := range s.headers {
			req.Header[k] = v
		}
		req.Header.Set("Content-Type", d.ContentType)
		return req, nil
	}
	if !s.binary {
		req, err := nethttp.NewRequestWithContext(ctx, s.method, s.url, bytes.NewReader(d.Event))
		if err != nil {
			return nil, err
		}
		for k, v := range s.headers {
			req.Header[k] = v
		}
		req.Header.Set("Content-Type", ContentTypeStructured)
		return req, nil
	}
	ev, err := pipeline.Decode(d.Event)
	if err != nil {
		return nil, fmt.Errorf("event %s cannot be decoded for binary mode: %w", d.EventID, err)
	}
	req, err := nethttp.NewRequestWithContext(ctx, s.method, s.url, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range s.headers {
		req.Header[k] = v
	}
	if err := cehttp.WriteRequest(ctx, binding.ToMessage(ev), req); err != nil {
		return nil, fmt.Errorf("event %s: binary mode: %w", d.EventID, err)
	}
	return req, nil
}

// Close releases idle connections.
func (s *Sink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := nethttp.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}
