package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/sinks"
)

// destSink builds the sink of an http target delivering to a destination,
// through config.Parse so that the config is validated, defaulted and
// linked as busbar serve does it.
func destSink(t *testing.T, yaml string) sinks.Sink {
	t.Helper()
	c, err := config.Parse([]byte(yaml), "busbar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := sinks.New(c.Rules[0].Targets[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func deliver(s sinks.Sink, event string) error {
	return s.Deliver(context.Background(), sinks.Delivery{EventID: "e-1", Event: []byte(event)})
}

// recorder is a destination that keeps the last request it got.
type recorder struct {
	mu     sync.Mutex
	method string
	path   string
	query  url.Values
	header nethttp.Header
	body   []byte
	n      int
}

func (rc *recorder) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.method, rc.path, rc.query, rc.header, rc.body = r.Method, r.URL.EscapedPath(), r.URL.Query(), r.Header.Clone(), b
	rc.n++
}

func TestBasicConnection(t *testing.T) {
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "busbar" || p != "s3cret" {
			w.WriteHeader(401)
			return
		}
		w.WriteHeader(204)
	}))
	defer srv.Close()
	t.Setenv("FD_PASSWORD", "s3cret")
	s := destSink(t, fmt.Sprintf(`
connections:
  - {name: fd, type: basic, basic: {username: busbar, password: "${FD_PASSWORD}"}}
destinations:
  - {name: api, url: %q, connection: fd}
rules:
  - {name: r, targets: [{id: t, type: http, destination: api}]}
`, srv.URL))
	if err := deliver(s, testEvent); err != nil {
		t.Fatal(err)
	}

	// The same password from a file: the loader checks the file, the sink reads it.
	f := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(f, []byte("s3cret\n"), 0o600)
	s = destSink(t, fmt.Sprintf(`
connections:
  - {name: fd, type: basic, basic: {username: busbar, password: "file:%s"}}
destinations:
  - {name: api, url: %q, connection: fd}
rules:
  - {name: r, targets: [{id: t, type: http, destination: api}]}
`, f, srv.URL))
	if err := deliver(s, testEvent); err != nil {
		t.Fatalf("password from a file: %v", err)
	}
}

func TestAPIKeyConnection(t *testing.T) {
	for _, in := range []string{"header", "query"} {
		t.Run(in, func(t *testing.T) {
			rc := &recorder{}
			srv := httptest.NewServer(rc)
			defer srv.Close()
			t.Setenv("KEY", "k-123&x")
			s := destSink(t, fmt.Sprintf(`
connections:
  - {name: c, type: api_key, api_key: {name: X-Api-Key, value: "${KEY}", in: %s}}
destinations:
  - {name: api, url: %q, connection: c}
rules:
  - {name: r, targets: [{id: t, type: http, destination: api}]}
`, in, srv.URL))
			if err := deliver(s, testEvent); err != nil {
				t.Fatal(err)
			}
			got := rc.header.Get("X-Api-Key")
			if in == "query" {
				got = rc.query.Get("X-Api-Key")
				if rc.header.Get("X-Api-Key") != "" {
					t.Error("a query key was also sent as a header")
				}
			}
			if got != "k-123&x" {
				t.Errorf("key = %q", got)
			}
		})
	}
}

// TestErrorsNeverShowKeys: a key in the query string must not reach the
// error (and so the log and the dead-letter queue) of a failed request.
func TestErrorsNeverShowKeys(t *testing.T) {
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {}))
	addr := srv.URL
	srv.Close()
	t.Setenv("KEY", "very-secret-key")
	s := destSink(t, fmt.Sprintf(`
connections:
  - {name: c, type: api_key, api_key: {name: token, value: "${KEY}", in: query}, query: {extra: also-secret}}
destinations:
  - {name: api, url: "%s/v1/things?fixed=1", connection: c}
rules:
  - {name: r, targets: [{id: t, type: http, destination: api}]}
`, addr))
	err := deliver(s, testEvent)
	if err == nil || sinks.IsPermanent(err) {
		t.Fatalf("connection refused should be retryable: %v", err)
	}
	if strings.Contains(err.Error(), "very-secret-key") || strings.Contains(err.Error(), "also-secret") {
		t.Errorf("error shows a secret: %v", err)
	}
	if !strings.Contains(err.Error(), "/v1/things") {
		t.Errorf("error does not say where: %v", err)
	}
}

func TestDestinationParameters(t *testing.T) {
	rc := &recorder{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s := destSink(t, fmt.Sprintf(`
connections:
  - name: c
    type: api_key
    api_key: {name: Authorization, value: "Token abc"}
    headers: {X-Tenant: acme, X-Order: from-connection}
    query: {region: eu}
    body: {client: busbar}
destinations:
  - {name: api, url: "%s/orders/{$.data.orderId}/lines/{$.subject}?v={$.data.amount}", method: PUT, connection: c}
rules:
  - name: r
    targets:
      - id: t
        type: http
        destination: api
        headers: {X-Order: "order-{$.data.orderId}", X-Missing: "{$.data.nope}"}
        query: {src: "{$.source}", absent: "{$.data.nope}"}
`, srv.URL))
	ev := `{"specversion":"1.0","id":"e-1","source":"erp/sap","type":"order.created","subject":"a b/c","data":{"orderId":"o 7","amount":12.5}}`
	if err := deliver(s, ev); err != nil {
		t.Fatal(err)
	}
	if rc.method != "PUT" {
		t.Errorf("method %s", rc.method)
	}
	if rc.path != "/orders/o%207/lines/a%20b%2Fc" {
		t.Errorf("path %s", rc.path)
	}
	want := url.Values{"v": {"12.5"}, "region": {"eu"}, "src": {"erp/sap"}}
	if fmt.Sprint(rc.query) != fmt.Sprint(want) {
		t.Errorf("query %v, want %v", rc.query, want)
	}
	if rc.header.Get("X-Tenant") != "acme" || rc.header.Get("X-Order") != "order-o 7" || rc.header.Get("Authorization") != "Token abc" {
		t.Errorf("headers %v", rc.header)
	}
	if _, ok := rc.header["X-Missing"]; ok {
		t.Error("a header whose placeholder found nothing was sent")
	}
	var body map[string]any
	if err := json.Unmarshal(rc.body, &body); err != nil || body["client"] != "busbar" || body["id"] != "e-1" {
		t.Errorf("body fields not merged into the event: %s", rc.body)
	}

	// A path parameter the event lacks fails the event for good: the URL
	// would name some other resource.
	err := deliver(s, `{"specversion":"1.0","id":"e-2","source":"erp","type":"x","data":{}}`)
	if err == nil || !sinks.IsPermanent(err) || !strings.Contains(err.Error(), "$.data.orderId") {
		t.Errorf("missing path parameter: %v", err)
	}
}

func TestGetAndDeleteSendNoBody(t *testing.T) {
	for _, m := range []string{"GET", "DELETE"} {
		rc := &recorder{}
		srv := httptest.NewServer(rc)
		s := destSink(t, fmt.Sprintf(`
destinations: [{name: api, url: "%s/orders/{$.data.orderId}", method: %s}]
rules: [{name: r, targets: [{id: t, type: http, destination: api}]}]
`, srv.URL, m))
		if err := deliver(s, testEvent); err != nil {
			t.Fatal(err)
		}
		srv.Close()
		if rc.method != m || rc.path != "/orders/o-7" || len(rc.body) != 0 || rc.header.Get("Content-Type") != "" {
			t.Errorf("%s: %s %s body %q ct %q", m, rc.method, rc.path, rc.body, rc.header.Get("Content-Type"))
		}
	}
}

// tokenServer is an OAuth 2.0 token endpoint issuing numbered tokens.
type tokenServer struct {
	calls    atomic.Int64
	lifetime int // expires_in, seconds; 0 leaves it out
	fail     atomic.Int64
	mu       sync.Mutex
	issued   map[string]time.Time // token -> expiry
	lastReq  *nethttp.Request
	lastForm url.Values
}

func newTokenServer(lifetime int) *tokenServer {
	return &tokenServer{lifetime: lifetime, issued: map[string]time.Time{}}
}

func (ts *tokenServer) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) {
	n := ts.calls.Add(1)
	r.ParseForm()
	ts.mu.Lock()
	ts.lastReq, ts.lastForm = r, r.Form
	ts.mu.Unlock()
	if st := ts.fail.Load(); st != 0 {
		w.WriteHeader(int(st))
		io.WriteString(w, `{"error":"invalid_client","error_description":"no such client"}`)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.Form.Get("client_id"), r.Form.Get("client_secret")
	}
	if id != "busbar" || secret != "cs-1" || r.Form.Get("grant_type") != "client_credentials" {
		w.WriteHeader(401)
		io.WriteString(w, `{"error":"invalid_client"}`)
		return
	}
	tok := fmt.Sprintf("tok-%d", n)
	ts.mu.Lock()
	ts.issued[tok] = time.Now().Add(time.Duration(ts.lifetime) * time.Second)
	ts.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	out := map[string]any{"access_token": tok, "token_type": "bearer"}
	if ts.lifetime > 0 {
		out["expires_in"] = ts.lifetime
	}
	json.NewEncoder(w).Encode(out)
}

// valid reports whether an Authorization header carries a live token.
func (ts *tokenServer) valid(auth string) bool {
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		return false
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	exp, ok := ts.issued[tok]
	return ok && (ts.lifetime == 0 || time.Now().Before(exp))
}

func oauthConfig(tokenURL, destURL string, extra string) string {
	return fmt.Sprintf(`
connections:
  - name: crm
    type: oauth2_client_credentials
    oauth2:
      token_url: %q
      client_id: busbar
      client_secret: "${CLIENT_SECRET}"
%s
destinations:
  - {name: api, url: %q, connection: crm}
rules:
  - {name: r, targets: [{id: t, type: http, destination: api}]}
`, tokenURL, extra, destURL)
}

// TestOAuth2RefreshOnce401: a destination that refuses the first token —
// every request carrying it, 16 at once — causes exactly one refresh, and
// every event is delivered with the new token.
func TestOAuth2RefreshOnce401(t *testing.T) {
	ts := newTokenServer(3600)
	tsrv := httptest.NewServer(ts)
	defer tsrv.Close()
	var refused, ok atomic.Int64
	release := make(chan struct{})
	dest := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if r.Header.Get("Authorization") == "Bearer tok-1" {
			<-release // hold until all 16 carry the first token
			refused.Add(1)
			w.WriteHeader(401)
			return
		}
		if !ts.valid(r.Header.Get("Authorization")) {
			w.WriteHeader(401)
			return
		}
		ok.Add(1)
	}))
	defer dest.Close()
	t.Setenv("CLIENT_SECRET", "cs-1")
	s := destSink(t, oauthConfig(tsrv.URL, dest.URL, ""))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- deliver(s, testEvent)
		}()
	}
	time.Sleep(300 * time.Millisecond)
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := ts.calls.Load(); n != 2 {
		t.Errorf("token endpoint called %d times, want 2 (the first token and one refresh)", n)
	}
	if refused.Load() != 16 || ok.Load() != 16 {
		t.Errorf("refused %d, delivered %d; want 16 and 16", refused.Load(), ok.Load())
	}

	// A destination that refuses the new token too: the event fails for
	// good, after one refresh only.
	before := ts.calls.Load()
	never := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) { w.WriteHeader(401) }))
	defer never.Close()
	s = destSink(t, oauthConfig(tsrv.URL, never.URL, ""))
	err := deliver(s, testEvent)
	if err == nil || !sinks.IsPermanent(err) || sinks.StatusOf(err) != 401 || !strings.Contains(err.Error(), "newly fetched token") {
		t.Errorf("401 with a fresh token: %v", err)
	}
	if n := ts.calls.Load() - before; n != 1 {
		t.Errorf("%d refreshes for one event, want 1", n)
	}
}

// TestOAuth2TokensCachedAndRenewedEarly: short-lived tokens are reused for
// their life and replaced before they expire, so the destination never
// sees an expired one.
func TestOAuth2TokensCachedAndRenewedEarly(t *testing.T) {
	ts := newTokenServer(1)
	tsrv := httptest.NewServer(ts)
	defer tsrv.Close()
	var expired, ok atomic.Int64
	dest := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if !ts.valid(r.Header.Get("Authorization")) {
			expired.Add(1)
			w.WriteHeader(401)
			return
		}
		ok.Add(1)
	}))
	defer dest.Close()
	t.Setenv("CLIENT_SECRET", "cs-1")
	s := destSink(t, oauthConfig(tsrv.URL, dest.URL, ""))
	start := time.Now()
	n := 0
	for time.Since(start) < 3*time.Second {
		if err := deliver(s, testEvent); err != nil {
			t.Fatal(err)
		}
		n++
		time.Sleep(5 * time.Millisecond)
	}
	lifetimes := time.Since(start).Seconds() / 0.8 // renewed with a fifth of the life left
	calls := ts.calls.Load()
	t.Logf("%d deliveries, %d tokens, %d refused", n, calls, expired.Load())
	if float64(calls) > lifetimes+2 || calls < 3 {
		t.Errorf("%d tokens fetched in %.1f token lifetimes", calls, lifetimes)
	}
	if expired.Load() > 1 {
		t.Errorf("%d requests carried an expired token", expired.Load())
	}
}

func TestOAuth2TokenEndpointFailures(t *testing.T) {
	ts := newTokenServer(3600)
	tsrv := httptest.NewServer(ts)
	defer tsrv.Close()
	dest := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {}))
	defer dest.Close()
	t.Setenv("CLIENT_SECRET", "cs-1")

	ts.fail.Store(401)
	s := destSink(t, oauthConfig(tsrv.URL, dest.URL, "      auth_style: header"))
	err := deliver(s, testEvent)
	want := `AUTH_FAILED: connection "crm": token endpoint returned 401: {"error":"invalid_client","error_description":"no such client"}`
	if err == nil || !sinks.IsPermanent(err) || !strings.Contains(err.Error(), want) {
		t.Errorf("token endpoint 401:\n got %v\nwant %s (permanent)", err, want)
	}
	if strings.Contains(err.Error(), "cs-1") {
		t.Error("the error shows the client secret")
	}

	ts.fail.Store(503)
	err = deliver(s, testEvent)
	if err == nil || sinks.IsPermanent(err) || !strings.Contains(err.Error(), "AUTH_FAILED") {
		t.Errorf("token endpoint 503 should be retried: %v", err)
	}

	ts.fail.Store(0)
	if err := deliver(s, testEvent); err != nil {
		t.Errorf("after the token endpoint recovered: %v", err)
	}

	// A token endpoint nobody answers at.
	gone := httptest.NewServer(ts)
	gone.Close()
	s = destSink(t, oauthConfig(gone.URL, dest.URL, ""))
	err = deliver(s, testEvent)
	if err == nil || sinks.IsPermanent(err) || !strings.HasPrefix(err.Error(), `AUTH_FAILED: connection "crm": token endpoint: `) {
		t.Errorf("unreachable token endpoint: %v", err)
	}
}

// TestOAuth2TokenRequestOptions: scopes, extra body/header/query
// parameters, credentials in the body, and GET token requests.
func TestOAuth2TokenRequestOptions(t *testing.T) {
	ts := newTokenServer(3600)
	tsrv := httptest.NewServer(ts)
	defer tsrv.Close()
	rc := &recorder{}
	dest := httptest.NewServer(rc)
	defer dest.Close()
	t.Setenv("CLIENT_SECRET", "cs-1")
	for _, method := range []string{"POST", "GET"} {
		s := destSink(t, oauthConfig(tsrv.URL+"/token", dest.URL, fmt.Sprintf(`      scopes: [orders.write, orders.read]
      method: %s
      auth_style: body
      body: {audience: "https://api.example.com"}
      headers: {X-Tenant: acme}
      query: {realm: main}`, method)))
		if err := deliver(s, testEvent); err != nil {
			t.Fatal(err)
		}
		ts.mu.Lock()
		r, f := ts.lastReq, ts.lastForm
		ts.mu.Unlock()
		if r.Method != method || r.Header.Get("X-Tenant") != "acme" || r.URL.Query().Get("realm") != "main" {
			t.Errorf("%s: token request %s %s %v", method, r.Method, r.URL, r.Header)
		}
		if f.Get("audience") != "https://api.example.com" || f.Get("scope") != "orders.write orders.read" || f.Get("client_id") != "busbar" {
			t.Errorf("%s: token request form %v", method, f)
		}
		if method == "GET" && r.URL.Query().Get("grant_type") != "client_credentials" {
			t.Errorf("GET token request without the form in its query: %s", r.URL)
		}
		if !strings.HasPrefix(rc.header.Get("Authorization"), "Bearer tok-") {
			t.Errorf("destination got %q", rc.header.Get("Authorization"))
		}
	}
}

func TestLimiterKeepsToTheLimit(t *testing.T) {
	l := newLimiter(100)
	var sent []time.Time
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 30; i++ {
				if err := l.Wait(context.Background()); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				sent = append(sent, time.Now())
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if d := time.Since(start); d < 2300*time.Millisecond {
		t.Errorf("240 requests at 100/s took only %v", d)
	}
	for i := range sent {
		n := 0
		for j := range sent {
			if !sent[j].Before(sent[i]) && sent[j].Sub(sent[i]) < time.Second {
				n++
			}
		}
		if n > 100 {
			t.Fatalf("%d requests within one second", n)
		}
	}
	if sharedLimiter("d", 5) != sharedLimiter("d", 5) || sharedLimiter("d", 5) == sharedLimiter("d", 6) {
		t.Error("limiters are not shared by destination and limit")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := newLimiter(1).Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled wait: %v", err)
	}
}
