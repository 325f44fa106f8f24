// Package http is the HTTP target and the targets built on it: it sends
// each event to a URL — as structured-mode CloudEvents JSON by default, in
// binary mode (ce-* headers, data as the body), or as the body the target's
// transform made — and to API destinations and chat robots:
//
//   - an API destination (config.Destination) gives the URL, whose
//     {$.json.path} placeholders are filled from the event, the method, the
//     timeout, a connection and a rate limit shared by the whole process;
//   - a connection (config.Connection) adds Basic auth, an API key or an
//     OAuth 2.0 bearer token (fetched with golang.org/x/oauth2, cached,
//     refreshed before expiry and once on a 401), and extra headers, query
//     parameters and JSON body fields;
//   - the chat presets dingtalk, wecom, feishu and slack turn a text
//     template into their vendor's message, signed where the vendor wants;
//   - with batch: (batching.go), many events go in one POST, in CloudEvents
//     batch mode or as a JSON array of transformed bodies.
//
// A 2xx answer is success (for DingTalk, WeCom and Feishu also a zero error
// code in the body); 408, 429, 5xx and network errors are retried by the
// dispatcher (429 and 503 honour Retry-After); every other answer is
// permanent and dead-letters the event. Token endpoint failures come back
// as "AUTH_FAILED: ..." errors, classified the same way.
//
// It must not retry on its own, but for the one retry with a fresh token
// after a 401: retry, backoff and dead-lettering are the dispatcher's
// (routers), the same for every sink.
package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	nethttp "net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/sinks"
	"github.com/busbar/busbar/sinks/batch"
)

func init() {
	for _, kind := range []string{config.TypeHTTP, config.TypeDingTalk, config.TypeWeCom, config.TypeFeishu, config.TypeSlack} {
		sinks.Register(kind, New)
	}
}

// ContentTypeStructured is the content type of a structured-mode CloudEvent.
const ContentTypeStructured = "application/cloudevents+json; charset=utf-8"

// maxErrorBody is how much of an error answer is kept for the log and DLQ;
// maxChatAnswer how much of a chat robot's 2xx answer is read for its code.
const (
	maxErrorBody  = 512
	maxChatAnswer = 4 << 10
)

// Sink delivers to one HTTP endpoint, API destination or chat robot.
type Sink struct {
	id      string
	method  string
	url     *value   // with each placeholder's escape set
	fixed   *url.URL // the parsed URL when it has no placeholders
	headers []param
	query   []param
	timeout time.Duration
	binary  bool
	noBody  bool                 // GET and DELETE
	conn    *connection          // nil without a connection
	limiter *limiter             // nil without a rate limit
	chat    *chat                // nil unless a chat robot
	batch   *batch.Batcher[item] // nil unless the target batches
	client  *nethttp.Client
}

// New builds an HTTP sink from a validated target whose config had its
// defaults applied (which links a target to its destination).
func New(t config.Target) (sinks.Sink, error) {
	s := &Sink{
		id:      t.ID,
		method:  strings.ToUpper(t.Method),
		timeout: t.Timeout.D(),
		binary:  t.Mode == config.ModeBinary,
	}
	rawURL := t.URL
	var connCfg *config.Connection
	if d := t.ResolvedDestination(); d != nil {
		rawURL, s.method, s.timeout = d.URL, strings.ToUpper(d.Method), d.Timeout.D()
		if d.Connection != "" {
			if connCfg = d.ResolvedConnection(); connCfg == nil {
				return nil, fmt.Errorf("target %q: destination %q: connection %q is not declared", t.ID, d.Name, d.Connection)
			}
		}
		if d.RateLimitPerSecond > 0 {
			s.limiter = sharedLimiter(d.Name, d.RateLimitPerSecond)
		}
	} else if t.Destination != "" {
		return nil, fmt.Errorf("target %q: destination %q is not declared", t.ID, t.Destination)
	}
	if rawURL == "" {
		return nil, fmt.Errorf("target %q: url is required", t.ID)
	}
	if s.method == "" {
		s.method = nethttp.MethodPost
	}
	s.noBody = s.method == nethttp.MethodGet || s.method == nethttp.MethodDelete
	if s.timeout <= 0 {
		s.timeout = config.DefaultTimeout
	}
	var err error
	if s.url, err = compileURL(rawURL); err != nil {
		return nil, fmt.Errorf("target %q: url: %w", t.ID, err)
	}
	if s.url.static() {
		if raw, _, err := s.url.render(nil); err == nil {
			s.fixed, _ = url.Parse(raw) // nil: parsed (and refused) per request
		}
	}
	if s.headers, err = compileParams(t.Headers); err != nil {
		return nil, fmt.Errorf("target %q: headers: %w", t.ID, err)
	}
	if s.query, err = compileParams(t.Query); err != nil {
		return nil, fmt.Errorf("target %q: query: %w", t.ID, err)
	}
	if connCfg != nil {
		if s.conn, err = newConnection(connCfg, s.timeout); err != nil {
			return nil, fmt.Errorf("target %q: %w", t.ID, err)
		}
	}
	if config.IsChat(t.Type) {
		s.method, s.noBody, s.binary = nethttp.MethodPost, false, false
		s.chat = &chat{kind: t.Type}
		if s.chat.secret, err = config.ReadSecret(t.Secret); err != nil {
			return nil, fmt.Errorf("target %q: secret: %w", t.ID, err)
		}
		if t.Text != "" {
			if s.chat.text, err = compileValue(t.Text, '<', '>'); err != nil {
				return nil, fmt.Errorf("target %q: text: %w", t.ID, err)
			}
		}
	}
	conc := t.Concurrency
	if conc <= 0 {
		conc = config.DefaultConcurrency
	}
	if t.BatchesRequests() {
		if err := s.startBatching(t); err != nil {
			return nil, fmt.Errorf("target %q: batch: %w", t.ID, err)
		}
		conc = s.batch.Limits().MaxInFlight // requests at once
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

// compileURL compiles a URL with {$.json.path} placeholders, escaping each
// filled-in value for where it stands: the path or the query.
func compileURL(raw string) (*value, error) {
	v, err := compileValue(raw, '{', '}')
	if err != nil {
		return nil, err
	}
	inQuery := false
	for i := range v.paths {
		inQuery = inQuery || strings.ContainsRune(v.lits[i], '?')
		if inQuery {
			v.escape[i] = url.QueryEscape
		} else {
			v.escape[i] = url.PathEscape
		}
	}
	return v, nil
}

// Deliver sends one event, or, when the target batches, hands it to the
// batcher and waits for the result of its batch's request.
func (s *Sink) Deliver(ctx context.Context, d sinks.Delivery) error {
	if s.batch != nil {
		return s.deliverBatched(ctx, d)
	}
	return s.send(ctx, func(ctx context.Context) (*nethttp.Request, error) { return s.request(ctx, d) })
}

// send makes the request build returns. When a destination refuses an
// OAuth 2.0 token (401), the token is thrown away and the request built and
// made once more with a new one.
func (s *Sink) send(ctx context.Context, build func(context.Context) (*nethttp.Request, error)) error {
	refreshed := false
	for {
		status, gen, err := s.attempt(ctx, build)
		if status == nethttp.StatusUnauthorized && s.conn != nil && s.conn.oauth != nil {
			if !refreshed {
				s.conn.oauth.invalidate(gen)
				refreshed = true
				continue
			}
			return fmt.Errorf("%w (also with a newly fetched token)", err)
		}
		return err
	}
}

// attempt makes one request; status is the answer's (0 without one) and
// gen the generation of the OAuth 2.0 token it carried. The request waits
// for the destination's rate limit last, once it is ready to go, so that
// nothing (a token being fetched) stands between the limiter letting it
// through and sending it. The timeout runs from then; waiting for a token
// has a timeout of its own.
func (s *Sink) attempt(ctx context.Context, build func(context.Context) (*nethttp.Request, error)) (status int, gen uint64, err error) {
	req, err := build(ctx)
	if err != nil {
		return 0, 0, sinks.Permanent(err)
	}
	if s.conn != nil {
		authCtx, authCancel := context.WithTimeout(ctx, s.timeout)
		gen, err = s.conn.authorize(authCtx, req)
		authCancel()
		if err != nil {
			return 0, 0, err
		}
	}
	if s.limiter != nil {
		if err := s.limiter.Wait(ctx); err != nil {
			return 0, gen, fmt.Errorf("waiting for the rate limit: %w", err)
		}
	}
	sendCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req = req.WithContext(sendCtx)
	where := s.where(req.URL)
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, whose query may hold a key
		}
		return 0, gen, fmt.Errorf("%s %s: %w", s.method, where, err)
	}
	defer resp.Body.Close()
	limit := int64(maxErrorBody)
	if s.chat != nil {
		limit = maxChatAnswer
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, limit))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	status = resp.StatusCode
	if status >= 200 && status < 300 {
		if s.chat != nil {
			if err := s.chat.check(body); err != nil {
				return status, gen, fmt.Errorf("%s %s: %w", s.method, where, err)
			}
		}
		return status, gen, nil
	}
	err = &sinks.StatusError{Status: status,
		Err: fmt.Errorf("%s %s: %s: %s", s.method, where, resp.Status, excerpt(body))}
	switch {
	case status == nethttp.StatusTooManyRequests || status == nethttp.StatusServiceUnavailable:
		if after, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return status, gen, &sinks.RetryAfterError{Err: err, After: after}
		}
		return status, gen, err
	case status == nethttp.StatusRequestTimeout || status >= 500:
		return status, gen, err
	default:
		return status, gen, sinks.Permanent(err)
	}
}

// where names the request in errors: scheme, host and path, without user
// info or query, which may hold credentials; a chat robot's webhook, whose
// path is its token, only by scheme and host.
func (s *Sink) where(u *url.URL) string {
	if s.chat != nil {
		return u.Scheme + "://" + u.Host
	}
	return u.Scheme + "://" + u.Host + u.EscapedPath()
}

// request builds the request of one event.
// targetURL is the URL of one request: a copy of the fixed one, or the
// URL with the event's values in its placeholders.
func (s *Sink) targetURL(src []byte, eventID string) (*url.URL, error) {
	if s.fixed != nil {
		u := *s.fixed // requests may change the query; Userinfo is immutable
		return &u, nil
	}
	raw, missing, err := s.url.render(src)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	if missing != "" {
		return nil, fmt.Errorf("url placeholder {%s}: event %s has no value there", missing, eventID)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("the URL made from event %s does not parse", eventID)
	}
	return u, nil
}

func (s *Sink) request(ctx context.Context, d sinks.Delivery) (*nethttp.Request, error) {
	// Placeholders read the event, masked when the transform masked it.
	src := d.Event
	if d.Body != nil && isCloudEvent(d.ContentType) {
		src = d.Body
	}
	u, err := s.targetURL(src, d.EventID)
	if err != nil {
		return nil, err
	}
	if err := s.addQuery(u, src); err != nil {
		return nil, err
	}

	var body []byte
	var ctype string
	switch {
	case s.chat != nil:
		webhook, b, err := s.chatMessage(u.String(), d, src)
		if err != nil {
			return nil, err
		}
		if u, err = url.Parse(webhook); err != nil {
			return nil, fmt.Errorf("the signed webhook URL does not parse")
		}
		body, ctype = b, "application/json; charset=utf-8"
	case d.Body != nil:
		body, ctype = d.Body, d.ContentType
	case !s.binary:
		body, ctype = d.Event, ContentTypeStructured
	}
	if s.conn != nil && body != nil && isJSON(ctype) {
		body = s.conn.mergeBody(body)
	}
	if s.noBody {
		body = nil
	}
	req, err := s.newRequest(ctx, u, body, ctype, src)
	if err != nil {
		return nil, err
	}
	if s.binary && d.Body == nil && s.chat == nil {
		if err := s.writeBinary(ctx, req, d); err != nil {
			return nil, err
		}
	}
	return req, nil
}

// newRequest makes the request to u with body (none when nil): the
// connection's headers, then the target's, whose placeholders read src
// (one that finds no value is left out).
func (s *Sink) newRequest(ctx context.Context, u *url.URL, body []byte, ctype string, src []byte) (*nethttp.Request, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	// u is already parsed (and this request's own copy): hand it over
	// instead of formatting it for NewRequest to parse again, which cost
	// ~2% of busbar's CPU per delivered event.
	req, err := nethttp.NewRequestWithContext(ctx, s.method, "", r)
	if err != nil {
		return nil, err
	}
	u.Host = strings.TrimSuffix(u.Host, ":") // as NewRequest does
	req.URL, req.Host = u, u.Host
	if s.conn != nil {
		for k, v := range s.conn.headers {
			req.Header[k] = v
		}
	}
	for _, h := range s.headers {
		v, missing, err := h.val.render(src)
		if err != nil {
			return nil, fmt.Errorf("header %s: %w", h.name, err)
		}
		if missing == "" {
			req.Header.Set(h.name, v)
		}
	}
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	return req, nil
}

// addQuery adds the connection's query parameters, then the target's
// (whose values may come from the event; one whose placeholder finds no
// value is left out).
func (s *Sink) addQuery(u *url.URL, src []byte) error {
	if len(s.query) == 0 && (s.conn == nil || len(s.conn.query) == 0) {
		return nil
	}
	q := u.Query()
	if s.conn != nil {
		for k, v := range s.conn.query {
			q[k] = v
		}
	}
	for _, p := range s.query {
		v, missing, err := p.val.render(src)
		if err != nil {
			return fmt.Errorf("query %s: %w", p.name, err)
		}
		if missing == "" {
			q.Set(p.name, v)
		}
	}
	u.RawQuery = q.Encode()
	return nil
}

// writeBinary writes the event in CloudEvents binary mode: attributes as
// ce-* headers, data as the body (merged with the connection's body fields
// when JSON; none for GET and DELETE).
func (s *Sink) writeBinary(ctx context.Context, req *nethttp.Request, d sinks.Delivery) error {
	ev, err := pipeline.Decode(d.Event)
	if err != nil {
		return fmt.Errorf("event %s cannot be decoded for binary mode: %w", d.EventID, err)
	}
	if err := cehttp.WriteRequest(ctx, binding.ToMessage(ev), req); err != nil {
		return fmt.Errorf("event %s: binary mode: %w", d.EventID, err)
	}
	if !s.noBody && (s.conn == nil || len(s.conn.body) == 0 || !isJSON(req.Header.Get("Content-Type"))) {
		return nil
	}
	var b []byte
	if req.Body != nil {
		if b, err = io.ReadAll(req.Body); err != nil {
			return err
		}
		req.Body.Close()
	}
	if s.noBody {
		req.Body, req.GetBody, req.ContentLength = nethttp.NoBody, nil, 0
		req.Header.Del("Content-Type")
		return nil
	}
	b = s.conn.mergeBody(b)
	req.Body = io.NopCloser(bytes.NewReader(b))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	req.ContentLength = int64(len(b))
	return nil
}

// chatMessage builds a chat robot's URL and body for one event. The
// message's text is the target's text filled from the event; without a
// text, the transformed body: a JSON object is the whole vendor message
// (markdown, cards), anything else the text.
func (s *Sink) chatMessage(webhook string, d sinks.Delivery, src []byte) (string, []byte, error) {
	var text string
	var raw map[string]any
	switch {
	case s.chat.text != nil:
		t, _, err := s.chat.text.render(src)
		if err != nil {
			return "", nil, fmt.Errorf("text: %w", err)
		}
		text = t
	case d.Body != nil:
		if !isJSON(d.ContentType) || isCloudEvent(d.ContentType) || json.Unmarshal(d.Body, &raw) != nil {
			raw = nil // not a vendor message: the body is the text
		}
		text = string(d.Body)
	default:
		text = string(d.Event)
	}
	return s.chat.message(webhook, text, raw, time.Now())
}

// isJSON reports whether a content type is JSON (application/json, or any
// +json type such as structured CloudEvents).
func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

func isCloudEvent(ct string) bool {
	mt, _, _ := mime.ParseMediaType(ct)
	return mt == "application/cloudevents+json"
}

// Close delivers the events waiting for a batch (and waits for the batches
// in flight), then releases idle connections.
func (s *Sink) Close() error {
	if s.batch != nil {
		s.batch.Close()
	}
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
