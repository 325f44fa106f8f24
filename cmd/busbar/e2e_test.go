package main

// End-to-end tests of the event path: a real busbar (in-process or as a
// subprocess) on its embedded transport, real HTTP targets, real files.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the busbar binary: with
// BUSBAR_TEST_MAIN=1 it runs main() with its arguments (crash tests kill it).
func TestMain(m *testing.M) {
	if os.Getenv("BUSBAR_TEST_MAIN") == "1" {
		os.Args = append([]string{"busbar"}, strings.Fields(os.Getenv("BUSBAR_TEST_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// sink is an HTTP target that records the ids it received.
type sink struct {
	mu       sync.Mutex
	ids      map[string]int // id -> times received
	bad      []string       // requests that were not structured CloudEvents
	delay    time.Duration
	received int
}

func newSink() *sink { return &sink{ids: map[string]int{}} }

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var ev struct {
		SpecVersion string `json:"specversion"`
		ID          string `json:"id"`
	}
	ok := strings.HasPrefix(r.Header.Get("Content-Type"), "application/cloudevents+json") &&
		json.Unmarshal(body, &ev) == nil && ev.SpecVersion == "1.0" && ev.ID != ""
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok {
		s.bad = append(s.bad, string(body))
		w.WriteHeader(400)
		return
	}
	s.ids[ev.ID]++
	s.received++
}

func (s *sink) snapshot() (ids map[string]int, bad []string, received int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids = make(map[string]int, len(s.ids))
	for k, v := range s.ids {
		ids[k] = v
	}
	return ids, append([]string(nil), s.bad...), s.received
}

// listen serves h on a fresh loopback port.
func listen(t *testing.T, h http.Handler) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, ln, h)
}

func serveOn(t *testing.T, ln net.Listener, h http.Handler) (string, func()) {
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	var once sync.Once
	stop := func() { once.Do(func() { srv.Close() }) }
	t.Cleanup(stop)
	return "http://" + ln.Addr().String(), stop
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func writeConfig(t *testing.T, dir, yaml string) string {
	t.Helper()
	p := filepath.Join(dir, "busbar.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startInProcess runs busbar serve in this process and returns its base URL
// and a graceful stop.
func startInProcess(t *testing.T, cfgPath, dataDir string) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	f := &serveFlags{config: cfgPath, listen: "127.0.0.1:0", dataDir: dataDir, drainTimeout: 10 * time.Second}
	go func() { done <- serve(ctx, f, testLogger(t), ready) }()
	select {
	case addr := <-ready:
		var once sync.Once
		stop := func() {
			once.Do(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("busbar stopped with: %v", err)
				}
			})
		}
		t.Cleanup(stop)
		return "http://" + addr, stop
	case err := <-done:
		cancel()
		t.Fatalf("busbar did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("busbar did not start within 30s")
	}
	return "", nil
}

func mustPost(t *testing.T, url, ctype string, body []byte, hdr map[string]string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, b)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("POST %s: %s", url, b)
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, status := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", d, what, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type sentEvent struct {
	id, source, typ, tier string
}

// TestEndToEndRouting: 3 rules, 3 targets, 1,000 mixed events through all
// ingest forms; each target gets exactly the events its rule matches. It
// runs once per transport (e2eTransports).
func TestEndToEndRouting(t *testing.T) {
	for _, tr := range e2eTransports {
		t.Run(tr.name, func(t *testing.T) { testEndToEndRouting(t, tr.url(t)) })
	}
}

func testEndToEndRouting(t *testing.T, transportURL string) {
	orders, bErp, vip := newSink(), newSink(), newSink()
	ordersURL, _ := listen(t, orders)
	erpURL, _ := listen(t, bErp)
	vipURL, _ := listen(t, vip)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`
transport: %q
buses:
  - name: retail
rules:
  - name: orders
    bus: retail
    pattern: {type: ["order.created"]}
    targets: [{id: orders, type: http, url: %q}]
  - name: erp
    bus: retail
    pattern: {source: [{prefix: "erp."}]}
    targets: [{id: erp, type: http, url: %q}]
  - name: vip
    bus: retail
    pattern: {data: {tier: ["vip"]}}
    targets: [{id: vip, type: http, url: %q}]
`, transportURL, ordersURL, erpURL, vipURL))
	base, stop := startInProcess(t, cfg, filepath.Join(dir, "data"))
	events := base + "/v1/buses/retail/events"

	rng := rand.New(rand.NewPCG(1, 2))
	sources := []string{"erp.sap", "erp.kingdee", "crm", "wms"}
	types := []string{"order.created", "order.updated", "stock.in"}
	tiers := []string{"vip", "regular", ""}
	var sent []sentEvent
	next := func(i int) (sentEvent, map[string]any) {
		e := sentEvent{source: sources[rng.IntN(len(sources))], typ: types[rng.IntN(len(types))], tier: tiers[rng.IntN(len(tiers))]}
		data := map[string]any{"n": i}
		if e.tier != "" {
			data["tier"] = e.tier
		}
		return e, data
	}
	const n = 1000
	var batch []map[string]any
	var batchEv []sentEvent
	var put []map[string]any
	var putEv []sentEvent
	for i := 0; i < n; i++ {
		e, data := next(i)
		switch i % 4 {
		case 0: // structured, one per request
			body, _ := json.Marshal(map[string]any{"specversion": "1.0", "source": e.source, "type": e.typ, "data": data})
			out := mustPost(t, events, "application/cloudevents+json", body, nil)
			e.id = out["id"].(string)
			sent = append(sent, e)
		case 1: // binary, one per request
			e.id = fmt.Sprintf("bin-%d", i)
			body, _ := json.Marshal(data)
			mustPost(t, events, "application/json", body, map[string]string{
				"ce-specversion": "1.0", "ce-id": e.id, "ce-source": e.source, "ce-type": e.typ})
			sent = append(sent, e)
		case 2: // batch mode, in batches of 50
			e.id = fmt.Sprintf("batch-%d", i)
			batch = append(batch, map[string]any{"specversion": "1.0", "id": e.id, "source": e.source, "type": e.typ, "data": data})
			batchEv = append(batchEv, e)
			if len(batch) == 50 {
				body, _ := json.Marshal(batch)
				mustPost(t, events, "application/cloudevents-batch+json", body, nil)
				sent = append(sent, batchEv...)
				batch, batchEv = nil, nil
			}
		case 3: // PutEvents, in batches of 25
			detail, _ := json.Marshal(data)
			put = append(put, map[string]any{"Source": e.source, "DetailType": e.typ, "Detail": string(detail)})
			putEv = append(putEv, e)
			if len(put) == 25 || i == n-1 {
				body, _ := json.Marshal(map[string]any{"Entries": put})
				out := mustPost(t, base+"/v1/buses/retail/put-events", "application/json", body, nil)
				if out["FailedEntryCount"].(float64) != 0 {
					t.Fatalf("PutEvents failed entries: %v", out)
				}
				for j, r := range out["Entries"].([]any) {
					putEv[j].id = r.(map[string]any)["EventId"].(string)
				}
				sent = append(sent, putEv...)
				put, putEv = nil, nil
			}
		}
	}
	if len(batch) > 0 {
		body, _ := json.Marshal(batch)
		mustPost(t, events, "application/cloudevents-batch+json", body, nil)
		sent = append(sent, batchEv...)
	}
	if len(sent) != n {
		t.Fatalf("sent %d events, want %d", len(sent), n)
	}

	want := map[*sink]map[string]bool{orders: {}, bErp: {}, vip: {}}
	for _, e := range sent {
		if e.typ == "order.created" {
			want[orders][e.id] = true
		}
		if strings.HasPrefix(e.source, "erp.") {
			want[bErp][e.id] = true
		}
		if e.tier == "vip" {
			want[vip][e.id] = true
		}
	}
	names := map[*sink]string{orders: "orders", bErp: "erp", vip: "vip"}
	for s, ids := range want {
		waitFor(t, 60*time.Second, names[s]+" to receive its events", func() (bool, string) {
			got, _, _ := s.snapshot()
			have := 0
			for id := range ids {
				if got[id] > 0 {
					have++
				}
			}
			return have == len(ids), fmt.Sprintf("%d of %d", have, len(ids))
		})
	}
	time.Sleep(300 * time.Millisecond) // let any wrongly routed stragglers arrive
	stop()
	for s, ids := range want {
		got, bad, _ := s.snapshot()
		if len(bad) > 0 {
			t.Errorf("%s received %d requests that are not structured CloudEvents, e.g. %s", names[s], len(bad), bad[0])
		}
		for id := range got {
			if !ids[id] {
				t.Errorf("%s received %s, which its rule does not match", names[s], id)
			}
		}
		if len(got) != len(ids) {
			t.Errorf("%s: got %d distinct events, want %d", names[s], len(got), len(ids))
		}
		t.Logf("%s: %d events", names[s], len(ids))
	}
}

// publishBatches sends n events in batch mode and returns their ids.
func publishBatches(t *testing.T, base, bus string, n, per int, prefix string) []string {
	t.Helper()
	var ids []string
	for start := 0; start < n; start += per {
		var batch []map[string]any
		for i := start; i < min(start+per, n); i++ {
			id := fmt.Sprintf("%s-%05d", prefix, i)
			batch = append(batch, map[string]any{"specversion": "1.0", "id": id, "source": "erp", "type": "order.created", "data": map[string]any{"n": i}})
			ids = append(ids, id)
		}
		body, _ := json.Marshal(batch)
		mustPost(t, base+"/v1/buses/"+bus+"/events", "application/cloudevents-batch+json", body, nil)
	}
	return ids
}

func durableConfig(targetURL string) string {
	return fmt.Sprintf(`
rules:
  - name: all
    targets:
      - id: slow
        type: http
        url: %q
        concurrency: 32
        retry: {max_attempts: 1000, initial_interval: 10ms, max_interval: 200ms}
`, targetURL)
}

func reportDelivery(t *testing.T, s *sink, ids []string) {
	t.Helper()
	t0 := time.Now()
	waitFor(t, 3*time.Minute, "every acknowledged event to arrive", func() (bool, string) {
		got, _, _ := s.snapshot()
		missing := 0
		for _, id := range ids {
			if got[id] == 0 {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d missing", missing, len(ids))
	})
	got, bad, received := s.snapshot()
	if len(bad) > 0 {
		t.Errorf("%d requests were not structured CloudEvents", len(bad))
	}
	t.Logf("all %d events arrived in %v; %d deliveries in all, %d duplicates", len(ids), time.Since(t0).Round(time.Millisecond), received, received-len(got))
}

// TestDurabilityAcrossGracefulRestart: events published while the target is
// down survive a graceful stop and are delivered after the restart.
func TestDurabilityAcrossGracefulRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED: durability test publishes 10,000 events")
	}
	dir := t.TempDir()
	targetAddr := freePort(t) // nothing listens there yet: the target is down
	cfg := writeConfig(t, dir, durableConfig("http://"+targetAddr+"/in"))
	data := filepath.Join(dir, "data")

	base, stop := startInProcess(t, cfg, data)
	t0 := time.Now()
	ids := publishBatches(t, base, "default", 10000, 500, "dur")
	t.Logf("published 10,000 events in %v", time.Since(t0).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond) // let dispatchers fail and back off
	t0 = time.Now()
	stop()
	t.Logf("graceful stop took %v", time.Since(t0).Round(time.Millisecond))

	s := newSink()
	ln, err := net.Listen("tcp", targetAddr)
	if err != nil {
		t.Fatalf("bringing the target up on %s: %v", targetAddr, err)
	}
	serveOn(t, ln, s)
	t0 = time.Now()
	_, stop2 := startInProcess(t, cfg, data)
	defer stop2()
	t.Logf("restart took %v", time.Since(t0).Round(time.Millisecond))
	reportDelivery(t, s, ids)
}

// startSubprocess runs busbar serve as a child process (the test binary
// re-executed as main) and waits until it is ready.
func startSubprocess(t *testing.T, cfg, data, listenAddr string) (*exec.Cmd, <-chan struct{}) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BUSBAR_TEST_MAIN=1",
		"BUSBAR_TEST_ARGS=serve --log-level warn --config "+cfg+" --data-dir "+data+" --listen "+listenAddr)
	var stderr bytes.Buffer
	if testing.Verbose() {
		cmd.Stderr = io.MultiWriter(os.Stderr, &stderr)
	} else {
		cmd.Stderr = &stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	waitFor(t, 60*time.Second, "busbar subprocess to be ready", func() (bool, string) {
		select {
		case <-exited:
			t.Fatalf("busbar subprocess exited: %v\n%s", cmd.ProcessState, stderr.String())
		default:
		}
		resp, err := http.Get("http://" + listenAddr + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	return cmd, exited
}

// TestCrashDurability: busbar is SIGKILLed mid-delivery; after a restart on
// the same data dir every acknowledged event arrives.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED: crash test publishes 10,000 events")
	}
	dir := t.TempDir()
	s := newSink()
	s.delay = 2 * time.Millisecond
	targetURL, _ := listen(t, s)
	cfg := writeConfig(t, dir, durableConfig(targetURL+"/in"))
	data := filepath.Join(dir, "data")
	addr := freePort(t)

	proc, exited := startSubprocess(t, cfg, data, addr)
	ids := publishBatches(t, "http://"+addr, "default", 10000, 250, "crash")
	waitFor(t, 60*time.Second, "delivery to be under way", func() (bool, string) {
		_, _, n := s.snapshot()
		return n >= 1000, fmt.Sprint(n, " delivered")
	})
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	_, _, before := s.snapshot()
	t.Logf("killed busbar with SIGKILL after %d deliveries", before)
	if before >= len(ids) {
		t.Fatalf("everything was delivered before the kill; the test proves nothing")
	}

	startSubprocess(t, cfg, data, addr)
	reportDelivery(t, s, ids)
}

// TestServeTooling: the health, readiness and test-pattern endpoints of a
// running busbar.
func TestServeTooling(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "rules: []\n")
	base, _ := startInProcess(t, cfg, filepath.Join(dir, "data"))
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
	out := mustPost(t, base+"/v1/test-pattern", "application/json",
		[]byte(`{"pattern":{"detail-type":["order.created"]},"event":{"specversion":"1.0","id":"1","source":"erp","type":"order.created"}}`), nil)
	if out["Result"] != true {
		t.Errorf("test-pattern: %v", out)
	}
}
