package http

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	nethttp "net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/sinks"
)

// OAuth 2.0 client credentials: golang.org/x/oauth2/clientcredentials makes
// and reads the token requests; this file caches the token, refreshes it
// before it expires, throws it away when a destination answers 401, and
// turns failures into AUTH_FAILED errors the dispatcher can classify.

// maxEarlyRefresh bounds how long before its expiry a token is replaced;
// short-lived tokens are replaced when a fifth of their life is left.
const maxEarlyRefresh = 10 * time.Second

// tokenSource is the token cache of one connection, shared by every sink of
// the process built from the same connection settings.
type tokenSource struct {
	conn    string // the connection's name, for errors
	cfg     *clientcredentials.Config
	client  *nethttp.Client // token requests, with the connection's extras
	timeout time.Duration   // of one token request

	mu      sync.Mutex
	tok     *oauth2.Token
	gen     uint64    // counts tokens fetched; 0 = none yet
	renewAt time.Time // when tok is due for replacement (zero: never)
	call    *tokenCall
}

// tokenCall is a token request in progress; callers that need a token
// meanwhile wait for it rather than make their own.
type tokenCall struct {
	done chan struct{}
	tok  *oauth2.Token
	gen  uint64
	err  error
}

var tokenSources = struct {
	sync.Mutex
	m map[string]*tokenSource
}{m: map[string]*tokenSource{}}

// sharedTokenSource returns the token cache for a connection's OAuth 2.0
// settings, made on first use. Settings are keyed by a hash of all of them
// (the secret included), so a changed config gets a new cache.
func sharedTokenSource(name string, o *config.OAuth2, secret string, timeout time.Duration) *tokenSource {
	h := sha256.New()
	for _, s := range []string{name, o.TokenURL, o.ClientID, secret, strings.Join(o.Scopes, " "), o.Method, o.AuthStyle,
		fmt.Sprint(sortedPairs(o.Headers)), fmt.Sprint(sortedPairs(o.Query)), fmt.Sprint(sortedPairs(o.Body)), timeout.String()} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	key := hex.EncodeToString(h.Sum(nil))
	tokenSources.Lock()
	defer tokenSources.Unlock()
	if ts := tokenSources.m[key]; ts != nil {
		return ts
	}
	ts := newTokenSource(name, o, secret, timeout)
	tokenSources.m[key] = ts
	return ts
}

func sortedPairs(m map[string]string) [][2]string {
	out := make([][2]string, 0, len(m))
	for k, v := range m {
		out = append(out, [2]string{k, v})
	}
	slices.SortFunc(out, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return out
}

func newTokenSource(name string, o *config.OAuth2, secret string, timeout time.Duration) *tokenSource {
	cfg := &clientcredentials.Config{
		ClientID:     o.ClientID,
		ClientSecret: secret,
		TokenURL:     o.TokenURL,
		Scopes:       o.Scopes,
	}
	switch o.AuthStyle {
	case config.OAuth2AuthStyleHead:
		cfg.AuthStyle = oauth2.AuthStyleInHeader
	case config.OAuth2AuthStyleBody:
		cfg.AuthStyle = oauth2.AuthStyleInParams
	}
	if len(o.Body) > 0 {
		cfg.EndpointParams = url.Values{}
		for k, v := range o.Body {
			cfg.EndpointParams.Set(k, v)
		}
	}
	rt := &tokenTransport{base: nethttp.DefaultTransport, get: strings.EqualFold(o.Method, "GET"), headers: nethttp.Header{}, query: url.Values{}}
	for k, v := range o.Headers {
		rt.headers.Set(k, v)
	}
	for k, v := range o.Query {
		rt.query.Set(k, v)
	}
	return &tokenSource{
		conn:    name,
		cfg:     cfg,
		client:  &nethttp.Client{Transport: rt, Timeout: timeout},
		timeout: timeout,
	}
}

// Token returns a valid token and its generation (for invalidate), from the
// cache or from the token endpoint. ctx bounds only the wait: a request to
// the token endpoint runs to its own timeout, for whoever waits for it.
func (s *tokenSource) Token(ctx context.Context) (*oauth2.Token, uint64, error) {
	s.mu.Lock()
	if s.tok != nil && (s.renewAt.IsZero() || time.Now().Before(s.renewAt)) {
		tok, gen := s.tok, s.gen
		s.mu.Unlock()
		return tok, gen, nil
	}
	c := s.call
	if c == nil {
		c = &tokenCall{done: make(chan struct{})}
		s.call = c
		go s.fetch(c)
	}
	s.mu.Unlock()
	select {
	case <-c.done:
		return c.tok, c.gen, c.err
	case <-ctx.Done():
		return nil, 0, fmt.Errorf("AUTH_FAILED: connection %q: waiting for a token: %w", s.conn, ctx.Err())
	}
}

// fetch asks the token endpoint for a token and completes c.
func (s *tokenSource) fetch(c *tokenCall) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	start := time.Now()
	tok, err := s.cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, s.client))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.call = nil
	if err != nil {
		c.err = s.authError(err)
	} else {
		s.gen++
		s.tok, c.tok, c.gen = tok, tok, s.gen
		s.renewAt = time.Time{}
		if !tok.Expiry.IsZero() {
			early := min(tok.Expiry.Sub(start)/5, maxEarlyRefresh)
			s.renewAt = tok.Expiry.Add(-early)
		}
	}
	close(c.done)
}

// invalidate drops the token of generation gen, which a destination
// refused, so that the next Token fetches a new one. A token fetched since
// is kept: many requests refused at once cause one refresh.
func (s *tokenSource) invalidate(gen uint64) {
	s.mu.Lock()
	if s.gen == gen {
		s.tok = nil
	}
	s.mu.Unlock()
}

// authError turns a token request failure into an AUTH_FAILED error that
// says what the token endpoint did. 4xx answers other than 408 and 429 are
// permanent (wrong credentials do not heal by retrying: fix them and
// redrive); network errors, timeouts and 5xx are retried.
func (s *tokenSource) authError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		st := re.Response.StatusCode
		e := &sinks.StatusError{Status: st, Err: fmt.Errorf("AUTH_FAILED: connection %q: token endpoint returned %d: %s", s.conn, st, excerpt(re.Body))}
		switch {
		case st == nethttp.StatusTooManyRequests || st == nethttp.StatusServiceUnavailable:
			if after, ok := parseRetryAfter(re.Response.Header.Get("Retry-After"), time.Now()); ok {
				return &sinks.RetryAfterError{Err: e, After: after}
			}
			return e
		case st == nethttp.StatusRequestTimeout || st >= 500:
			return e
		}
		return sinks.Permanent(e)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // url.Error repeats the URL, whose query may carry secrets
	}
	return fmt.Errorf("AUTH_FAILED: connection %q: token endpoint: %v", s.conn, err)
}

// excerpt is the start of an answer's body, on one line, for errors.
func excerpt(b []byte) string {
	if len(b) > maxErrorBody {
		b = b[:maxErrorBody]
	}
	return strings.Join(strings.Fields(string(b)), " ")
}

// tokenTransport adds a connection's extra headers and query parameters to
// token requests, and turns them into GETs (form in the query) when the
// connection says so.
type tokenTransport struct {
	base    nethttp.RoundTripper
	get     bool
	headers nethttp.Header
	query   url.Values
}

func (t *tokenTransport) RoundTrip(req *nethttp.Request) (*nethttp.Response, error) {
	r := req.Clone(req.Context())
	for k, v := range t.headers {
		r.Header[k] = v
	}
	q := r.URL.Query()
	for k, v := range t.query {
		q[k] = v
	}
	if t.get && r.Body != nil {
		form, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		vals, err := url.ParseQuery(string(form))
		if err != nil {
			return nil, err
		}
		for k, v := range vals {
			q[k] = v
		}
		r.Method = nethttp.MethodGet
		r.Body, r.GetBody, r.ContentLength = nil, nil, 0
		r.Header.Del("Content-Type")
	}
	if len(q) > 0 {
		r.URL.RawQuery = q.Encode()
	}
	return t.base.RoundTrip(r)
}
