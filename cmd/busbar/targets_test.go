package main

// End-to-end tests of API destinations, connections and chat robot targets
// (docs/targets.md): busbar runs in-process on its embedded transport, the
// token endpoint, the APIs and the robots are real HTTP servers on loopback.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// publishN publishes n events (ids prefix-0 … prefix-(n-1)) to a bus in
// CloudEvents batches of up to 500, calling pause between batches.
func publishN(t *testing.T, base, bus, prefix string, n int, data func(i int) map[string]any, pause func()) {
	t.Helper()
	var batch []map[string]any
	flush := func() {
		body, _ := json.Marshal(batch)
		mustPost(t, base+"/v1/buses/"+bus+"/events", "application/cloudevents-batch+json", body, nil)
		batch = batch[:0]
		if pause != nil {
			pause()
		}
	}
	for i := 0; i < n; i++ {
		ev := map[string]any{"specversion": "1.0", "id": fmt.Sprintf("%s-%d", prefix, i), "source": "shop", "type": "order.created"}
		if data != nil {
			ev["data"] = data(i)
		}
		batch = append(batch, ev)
		if len(batch) == 500 {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
}

// idCounter counts the events a destination accepted, by CloudEvent id.
type idCounter struct {
	mu  sync.Mutex
	ids map[string]int
	at  []time.Time // when each accepted request arrived
}

func newIDCounter() *idCounter { return &idCounter{ids: map[string]int{}} }

func (c *idCounter) add(id string) { c.addAt(id, time.Now()) }

// addAt counts id as arrived at t.
func (c *idCounter) addAt(id string, t time.Time) {
	c.mu.Lock()
	c.ids[id]++
	c.at = append(c.at, t)
	c.mu.Unlock()
}

func (c *idCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids)
}

// onceEach checks that every one of n ids arrived exactly once.
func (c *idCounter) onceEach(t *testing.T, prefix string, n int) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 0; i < n; i++ {
		if got := c.ids[fmt.Sprintf("%s-%d", prefix, i)]; got != 1 {
			t.Errorf("%s-%d delivered %d times", prefix, i, got)
			return
		}
	}
	if len(c.ids) != n {
		t.Errorf("%d distinct ids delivered, want %d", len(c.ids), n)
	}
}

func eventID(r *http.Request) string {
	var ev struct{ ID string }
	json.NewDecoder(r.Body).Decode(&ev)
	return ev.ID
}

// oauthServer is an OAuth 2.0 token endpoint (client credentials) issuing
// tokens that live lifetime seconds, and the API that checks them.
type oauthServer struct {
	lifetime int
	calls    atomic.Int64
	refused  atomic.Int64
	mu       sync.Mutex
	expiry   map[string]time.Time
	first    time.Time
}

func (o *oauthServer) token(w http.ResponseWriter, r *http.Request) {
	n := o.calls.Add(1)
	if id, secret, ok := r.BasicAuth(); !ok || id != "busbar" || secret != "e2e-client-secret" {
		w.WriteHeader(401)
		io.WriteString(w, `{"error":"invalid_client"}`)
		return
	}
	tok := fmt.Sprintf("tok-%d", n)
	o.mu.Lock()
	if o.first.IsZero() {
		o.first = time.Now()
	}
	o.expiry[tok] = time.Now().Add(time.Duration(o.lifetime) * time.Second)
	o.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":%d}`, tok, o.lifetime)
}

func (o *oauthServer) valid(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	o.mu.Lock()
	defer o.mu.Unlock()
	exp, known := o.expiry[tok]
	return ok && known && time.Now().Before(exp)
}

// TestDestinationOAuth2: 5,000 events to an API behind OAuth 2.0 whose
// tokens live one second. The API refuses expired tokens; every event is
// delivered exactly once, and the token endpoint is asked about once per
// token lifetime, not once per event.
func TestDestinationOAuth2(t *testing.T) {
	o := &oauthServer{lifetime: 1, expiry: map[string]time.Time{}}
	tokenURL, _ := listen(t, http.HandlerFunc(o.token))
	got := newIDCounter()
	apiURL, _ := listen(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !o.valid(r) {
			o.refused.Add(1)
			w.WriteHeader(401)
			return
		}
		got.add(eventID(r))
	}))
	t.Setenv("E2E_CLIENT_SECRET", "e2e-client-secret")
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`
connections:
  - name: crm
    type: oauth2_client_credentials
    oauth2: {token_url: %q, client_id: busbar, client_secret: "${E2E_CLIENT_SECRET}", auth_style: header}
destinations:
  - {name: crm-orders, url: "%s/orders/{$.id}", method: PUT, connection: crm}
rules:
  - name: orders
    targets:
      - {id: crm, type: http, destination: crm-orders, concurrency: 32, retry: {initial_interval: 10ms, max_interval: 200ms}}
`, tokenURL+"/oauth/token", apiURL))
	base, _ := startInProcess(t, cfg, filepath.Join(dir, "data"))

	const n = 5000
	publishN(t, base, "default", "o", n, nil, func() { time.Sleep(300 * time.Millisecond) })
	waitFor(t, 120*time.Second, "5000 deliveries", func() (bool, string) {
		return got.count() == n, fmt.Sprint(got.count(), " of ", n)
	})
	got.mu.Lock()
	last := got.at[len(got.at)-1]
	got.mu.Unlock()
	o.mu.Lock()
	span := last.Sub(o.first)
	o.mu.Unlock()
	got.onceEach(t, "o", n)
	lifetimes := span.Seconds() / float64(o.lifetime)
	calls := o.calls.Load()
	t.Logf("%d events over %v: %d tokens fetched (%.1f lifetimes), %d requests refused", n, span.Round(time.Millisecond), calls, lifetimes, o.refused.Load())
	if lifetimes < 2.5 {
		t.Errorf("the deliveries spanned only %.1f token lifetimes", lifetimes)
	}
	// Renewed with a fifth of its life left: at most 1.25 tokens per
	// lifetime, plus one per refusal of a token that expired in flight.
	if max := int64(lifetimes*1.25) + 2 + o.refused.Load(); calls > max {
		t.Errorf("the token endpoint was called %d times in %.1f lifetimes (want at most %d)", calls, lifetimes, max)
	}
	if o.refused.Load() > 5 {
		t.Errorf("%d requests carried an expired token", o.refused.Load())
	}
}

// TestDestinationBasicAndAPIKey: the APIs check Basic auth and API keys in
// a header and in the query string; connection parameters and the event's
// values reach them.
func TestDestinationBasicAndAPIKey(t *testing.T) {
	type seen struct {
		mu    sync.Mutex
		ok    map[string]int
		wrong int
	}
	check := func(s *seen, ok func(r *http.Request) bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if !ok(r) {
				s.wrong++
				w.WriteHeader(401)
				return
			}
			s.ok[r.URL.Path]++
		}
	}
	basic, header, query := &seen{ok: map[string]int{}}, &seen{ok: map[string]int{}}, &seen{ok: map[string]int{}}
	basicURL, _ := listen(t, check(basic, func(r *http.Request) bool {
		u, p, ok := r.BasicAuth()
		return ok && u == "helpdesk-key" && p == "X" && r.Header.Get("X-Tenant") == "acme"
	}))
	headerURL, _ := listen(t, check(header, func(r *http.Request) bool {
		return r.Header.Get("Authorization") == "Bearer ci-token" && r.URL.Query().Get("source") == "shop"
	}))
	queryURL, _ := listen(t, check(query, func(r *http.Request) bool {
		return r.URL.Query().Get("api_key") == "q-key" && r.Header.Get("Authorization") == ""
	}))
	t.Setenv("E2E_HELPDESK_KEY", "helpdesk-key")
	t.Setenv("E2E_CI_TOKEN", "ci-token")
	t.Setenv("E2E_Q_KEY", "q-key")
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`
connections:
  - {name: helpdesk, type: basic, basic: {username: "${E2E_HELPDESK_KEY}", password: X}, headers: {X-Tenant: acme}}
  - {name: ci, type: api_key, api_key: {name: Authorization, value: "Bearer ${E2E_CI_TOKEN}"}}
  - {name: q, type: api_key, api_key: {name: api_key, value: "${E2E_Q_KEY}", in: query}}
destinations:
  - {name: helpdesk, url: "%s/tickets", connection: helpdesk}
  - {name: ci, url: "%s/builds/{$.data.n}", connection: ci}
  - {name: q, url: "%s/hook", connection: q}
rules:
  - name: r
    targets:
      - {id: basic, type: http, destination: helpdesk}
      - {id: header, type: http, destination: ci, query: {source: "{$.source}"}}
      - {id: query, type: http, destination: q}
`, basicURL, headerURL, queryURL))
	base, _ := startInProcess(t, cfg, filepath.Join(dir, "data"))
	publishN(t, base, "default", "a", 20, func(i int) map[string]any { return map[string]any{"n": i} }, nil)
	total := func(s *seen) (int, int) {
		s.mu.Lock()
		defer s.mu.Unlock()
		n := 0
		for _, c := range s.ok {
			n += c
		}
		return n, s.wrong
	}
	waitFor(t, 30*time.Second, "20 events at each API", func() (bool, string) {
		b, bw := total(basic)
		h, hw := total(header)
		q, qw := total(query)
		return b == 20 && h == 20 && q == 20, fmt.Sprintf("basic %d (%d refused), header %d (%d), query %d (%d)", b, bw, h, hw, q, qw)
	})
	for name, s := range map[string]*seen{"basic": basic, "header": header, "query": query} {
		if _, wrong := total(s); wrong != 0 {
			t.Errorf("%s: %d requests without the right credentials", name, wrong)
		}
	}
	header.mu.Lock()
	if len(header.ok) != 20 || header.ok["/builds/7"] != 1 {
		t.Errorf("path parameters: %v", header.ok)
	}
	header.mu.Unlock()
}

// TestDestinationRateLimit: a destination limited to 50 requests a second
// gets 500 events in no less than 9.5 s, and never more than 50 in any one
// second, as the API measures them: by when each request reached its
// socket, stamped by the kernel (SO_TIMESTAMPNS), as a rate-limiting front
// end would count them. Stamping in the handler instead would count a
// pause of this process (a GC cycle, a loaded machine) as a burst that was
// never sent.
func TestDestinationRateLimit(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("kernel receive timestamps (SO_TIMESTAMPNS) are Linux's")
	}
	got := newIDCounter()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			arrived := r.Context().Value(stampedConnKey{}).(*stampedConn).arrived()
			got.addAt(eventID(r), arrived)
		}),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, stampedConnKey{}, c)
		},
	}
	// Set on the listening socket, the option is inherited by accepted ones
	// and stamps data that arrives before Accept returns.
	if err := setTimestamping(ln.(*net.TCPListener)); err != nil {
		t.Fatal(err)
	}
	go srv.Serve(stampingListener{ln.(*net.TCPListener)})
	t.Cleanup(func() { srv.Close() })
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`
destinations:
  - {name: slow-api, url: "http://%s/", rate_limit_per_second: 50}
rules:
  - name: orders
    targets: [{id: slow, type: http, destination: slow-api, concurrency: 64}]
`, ln.Addr()))
	base, _ := startInProcess(t, cfg, filepath.Join(dir, "data"))
	publishN(t, base, "default", "r", 500, nil, nil)
	waitFor(t, 60*time.Second, "500 deliveries", func() (bool, string) {
		return got.count() == 500, fmt.Sprint(got.count(), " of 500")
	})
	got.onceEach(t, "r", 500)
	got.mu.Lock()
	at := append([]time.Time(nil), got.at...)
	got.mu.Unlock()
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	span := at[len(at)-1].Sub(at[0])
	most, j := 0, 0
	for i := range at { // the most requests in a window [at[i], at[i]+1s)
		for j < len(at) && at[j].Sub(at[i]) < time.Second {
			j++
		}
		most = max(most, j-i)
	}
	t.Logf("500 requests in %v; at most %d in one second; %d not stamped by the kernel", span.Round(time.Millisecond), most, unstamped.Load())
	if span < 9500*time.Millisecond {
		t.Errorf("500 requests at 50/s took only %v", span)
	}
	if most > 50 {
		t.Errorf("%d requests within one second; the limit is 50", most)
	}
}

// stampingListener accepts connections that keep the kernel's receive
// timestamp of the data they read.
type stampingListener struct{ *net.TCPListener }

func (l stampingListener) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	if err := setTimestamping(c); err != nil {
		return nil, err
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &stampedConn{TCPConn: c, raw: raw}, nil
}

func setTimestamping(c syscall.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soTimestampNS, 1)
	}); err != nil {
		return err
	}
	return serr
}

// soTimestampNS is SO_TIMESTAMPNS (and SCM_TIMESTAMPNS) on Linux.
const soTimestampNS = 0x23

type stampedConnKey struct{}

// unstamped counts requests the kernel did not stamp.
var unstamped atomic.Int64

// stampedConn reads with recvmsg to get the kernel's receive timestamp of
// each read. HTTP/1.1 clients send a request only after the answer to the
// previous one on the connection, so when a handler runs, the last read
// was its request.
type stampedConn struct {
	*net.TCPConn
	raw  syscall.RawConn
	mu   sync.Mutex
	last time.Time
}

func (c *stampedConn) Read(b []byte) (int, error) {
	oob := make([]byte, 64)
	var n, oobn int
	var rerr error
	err := c.raw.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = syscall.Recvmsg(int(fd), b, oob, 0)
		return rerr != syscall.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return 0, err
	}
	if n == 0 && len(b) > 0 {
		return 0, io.EOF
	}
	msgs, _ := syscall.ParseSocketControlMessage(oob[:oobn])
	c.mu.Lock()
	c.last = time.Time{}
	c.mu.Unlock()
	for _, m := range msgs {
		if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == soTimestampNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			c.mu.Lock()
			c.last = time.Unix(sec, nsec)
			c.mu.Unlock()
		}
	}
	return n, nil
}

// arrived is when the kernel received the data last read; now, should
// the kernel not have stamped it.
func (c *stampedConn) arrived() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last.IsZero() {
		unstamped.Add(1)
		return time.Now()
	}
	return c.last
}

// TestDestinationRetryAndDeadLetters: an API that answers 503 to the first
// three attempts of every event, then 200, gets each event exactly once;
// an event it answers 400 goes to the dead-letter queue after one attempt,
// with the status and the answer's body.
func TestDestinationRetryAndDeadLetters(t *testing.T) {
	var mu sync.Mutex
	attempts := map[string]int{}
	got := newIDCounter()
	url, _ := listen(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			ID   string
			Data struct{ Bad bool }
		}
		json.NewDecoder(r.Body).Decode(&ev)
		mu.Lock()
		attempts[ev.ID]++
		n := attempts[ev.ID]
		mu.Unlock()
		switch {
		case ev.Data.Bad:
			w.WriteHeader(400)
			io.WriteString(w, `{"errors":[{"field":"amount","message":"must be positive"}]}`)
		case n <= 3:
			w.WriteHeader(503)
		default:
			got.add(ev.ID)
		}
	}))
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`
destinations:
  - {name: erp, url: "%s/orders/{$.id}", method: PUT}
rules:
  - name: orders
    targets:
      - {id: erp, type: http, destination: erp, retry: {initial_interval: 10ms, max_interval: 50ms}}
`, url))
	base, _ := startInProcess(t, cfg, filepath.Join(dir, "data"))
	publishN(t, base, "default", "x", 50, func(i int) map[string]any { return map[string]any{"bad": i%10 == 0} }, nil)
	waitFor(t, 60*time.Second, "45 good events delivered and 5 dead-lettered", func() (bool, string) {
		out, _, err := runCLI(t, "dlq", "list", "--url", base, "--target", "erp", "--json")
		var recs []json.RawMessage
		json.Unmarshal([]byte(out), &recs)
		return got.count() == 45 && err == nil && len(recs) == 5, fmt.Sprintf("%d delivered, %d dead letters (%v)", got.count(), len(recs), err)
	})
	time.Sleep(200 * time.Millisecond) // nothing more should come
	mu.Lock()
	for i := 0; i < 50; i++ {
		id := fmt.Sprintf("x-%d", i)
		want := 4
		if i%10 == 0 {
			want = 1
		}
		if attempts[id] != want {
			t.Errorf("%s: %d attempts, want %d", id, attempts[id], want)
		}
	}
	mu.Unlock()
	got.mu.Lock()
	for i := 0; i < 50; i++ {
		if i%10 != 0 {
			if n := got.ids[fmt.Sprintf("x-%d", i)]; n != 1 {
				t.Errorf("x-%d accepted %d times", i, n)
			}
		}
	}
	got.mu.Unlock()
	out, _, err := runCLI(t, "dlq", "list", "--url", base, "--target", "erp", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var recs []struct {
		EventID  string `json:"event_id"`
		Reason   string
		Status   int
		Attempts int
		Error    string
	}
	json.Unmarshal([]byte(out), &recs)
	for _, r := range recs {
		if r.Reason != "permanent-failure" || r.Status != 400 || r.Attempts != 1 ||
			!strings.Contains(r.Error, "must be positive") || !strings.Contains(r.Error, "PUT http://") || !strings.Contains(r.Error, "/orders/"+r.EventID) {
			t.Errorf("dead letter %+v", r)
		}
	}
}

// TestDestinationIsolation: one destination of a rule never answers; the
// rule's other destination gets every event with its usual latency.
func TestDestinationIsolation(t *testing.T) {
	var hung atomic.Int64
	hangURL, stopHang := listen(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hung.Add(1)
		<-r.Context().Done() // never answers
	}))
	var mu sync.Mutex
	latency := map[string]time.Duration{}
	okURL, _ := listen(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			ID   string
			Data struct{ Sent time.Time }
		}
		json.NewDecoder(r.Body).Decode(&ev)
		mu.Lock()
		latency[ev.ID] = time.Since(ev.Data.Sent)
		mu.Unlock()
	}))
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`
destinations:
  - {name: stuck, url: %q, timeout: 30s}
  - {name: fine, url: %q}
rules:
  - name: orders
    targets:
      - {id: stuck, type: http, destination: stuck}
      - {id: fine, type: http, destination: fine}
`, hangURL, okURL))
	base, stop := startInProcess(t, cfg, filepath.Join(dir, "data"))
	for i := 0; i < 40; i++ {
		publishN(t, base, "default", fmt.Sprintf("i%d", i), 1, func(int) map[string]any { return map[string]any{"sent": time.Now()} }, nil)
		time.Sleep(25 * time.Millisecond)
	}
	waitFor(t, 20*time.Second, "40 events at the answering destination", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(latency) == 40, fmt.Sprint(len(latency), " of 40")
	})
	mu.Lock()
	var worst time.Duration
	for _, l := range latency {
		worst = max(worst, l)
	}
	mu.Unlock()
	t.Logf("worst latency %v while %d requests hang at the other destination", worst, hung.Load())
	if worst > 2*time.Second {
		t.Errorf("the answering destination waited up to %v", worst)
	}
	if hung.Load() < 16 {
		t.Errorf("only %d requests reached the hanging destination; it was not saturated", hung.Load())
	}
	stopHang() // let its deliveries fail, so that busbar drains at once
	stop()
}

// TestChatRobots: one event to DingTalk, WeCom, Feishu and Slack robots
// (local stand-ins that check each vendor's documented signature).
func TestChatRobots(t *testing.T) {
	type post struct {
		path  string
		query map[string][]string
		body  map[string]any
	}
	posts := make(chan post, 8)
	robot, _ := listen(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		posts <- post{r.URL.Path, r.URL.Query(), maps.Clone(body)}
		switch {
		case strings.HasPrefix(r.URL.Path, "/robot/send"): // DingTalk
			ts := r.URL.Query().Get("timestamp")
			m := hmac.New(sha256.New, []byte("SECding"))
			io.WriteString(m, ts+"\n"+"SECding")
			if r.URL.Query().Get("sign") != base64.StdEncoding.EncodeToString(m.Sum(nil)) {
				io.WriteString(w, `{"errcode":310000,"errmsg":"sign not match"}`)
				return
			}
			io.WriteString(w, `{"errcode":0,"errmsg":"ok"}`)
		case strings.HasPrefix(r.URL.Path, "/open-apis/"): // Feishu
			ts, _ := body["timestamp"].(string)
			m := hmac.New(sha256.New, []byte(ts+"\n"+"feishu-secret"))
			if body["sign"] != base64.StdEncoding.EncodeToString(m.Sum(nil)) {
				io.WriteString(w, `{"code":19021,"msg":"sign match fail"}`)
				return
			}
			io.WriteString(w, `{"code":0,"msg":"success"}`)
		case strings.HasPrefix(r.URL.Path, "/cgi-bin/"): // WeCom
			io.WriteString(w, `{"errcode":0,"errmsg":"ok"}`)
		default: // Slack
			io.WriteString(w, "ok")
		}
	}))
	t.Setenv("E2E_DING_SECRET", "SECding")
	t.Setenv("E2E_FEISHU_SECRET", "feishu-secret")
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`
x-text: &text "Order <$.data.orderId> failed: <$.data.reason>"
rules:
  - name: alerts
    targets:
      - {id: ding, type: dingtalk, url: "%[1]s/robot/send?access_token=t1", secret: "${E2E_DING_SECRET}", text: *text}
      - {id: wecom, type: wecom, url: "%[1]s/cgi-bin/webhook/send?key=k1", text: *text}
      - {id: lark, type: feishu, url: "%[1]s/open-apis/bot/v2/hook/h1", secret: "${E2E_FEISHU_SECRET}", text: *text}
      - {id: slack, type: slack, url: "%[1]s/services/T/B/x", text: *text, retry: {max_attempts: 1}}
`, robot))
	base, _ := startInProcess(t, cfg, filepath.Join(dir, "data"))
	publishN(t, base, "default", "c", 1, func(int) map[string]any { return map[string]any{"orderId": "SO-9", "reason": "payment declined"} }, nil)
	want := map[string]string{
		"/robot/send":               `map[msgtype:text text:map[content:Order SO-9 failed: payment declined]]`,
		"/cgi-bin/webhook/send":     `map[msgtype:text text:map[content:Order SO-9 failed: payment declined]]`,
		"/open-apis/bot/v2/hook/h1": `map[content:map[text:Order SO-9 failed: payment declined] msg_type:text]`,
		"/services/T/B/x":           `map[text:Order SO-9 failed: payment declined]`,
	}
	deadline := time.After(20 * time.Second)
	for len(want) > 0 {
		select {
		case p := <-posts:
			delete(p.body, "sign")
			delete(p.body, "timestamp")
			if w, ok := want[p.path]; !ok || fmt.Sprint(p.body) != w {
				t.Errorf("%s got %v, want %s", p.path, p.body, w)
			}
			delete(want, p.path)
		case <-deadline:
			t.Fatalf("no message for %v", want)
		}
	}
	// Each robot took its message: nothing was retried or dead-lettered.
	time.Sleep(300 * time.Millisecond)
	if len(posts) != 0 {
		t.Errorf("%d more posts: a robot refused a message", len(posts))
	}
	resp, err := http.Get(base + "/v1/dlq")
	if err != nil {
		t.Fatal(err)
	}
	var summary struct {
		Queues []struct {
			Target      string
			DeadLetters int `json:"dead_letters"`
		}
	}
	json.NewDecoder(resp.Body).Decode(&summary)
	resp.Body.Close()
	for _, q := range summary.Queues {
		if q.DeadLetters != 0 {
			t.Errorf("%s: %d dead letters", q.Target, q.DeadLetters)
		}
	}
}
