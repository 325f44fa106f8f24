package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	neturl "net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busbar/busbar/api"
	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/pipeline/transport"
	"github.com/busbar/busbar/pipeline/transport/natsjs"
	"github.com/busbar/busbar/routers"
)

// flakyTarget answers 400 to events whose data has "bad":true, and 503 to
// the rest until healthy; once healthy it takes everything.
type flakyTarget struct {
	healthy atomic.Bool
	mu      sync.Mutex
	got     map[string]int
}

func (f *flakyTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ev struct {
		ID   string
		Data struct{ Bad bool }
	}
	json.NewDecoder(r.Body).Decode(&ev)
	switch {
	case f.healthy.Load():
		f.mu.Lock()
		f.got[ev.ID]++
		f.mu.Unlock()
	case ev.Data.Bad:
		w.WriteHeader(400)
		fmt.Fprint(w, `{"message":"amount is required"}`)
	default:
		w.WriteHeader(503)
	}
}

func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errb.String(), err
}

// TestDeadLettersAndRedrive: a 400 is dead-lettered after one attempt with
// its status and body; a target down past max_event_age fills the DLQ;
// after it recovers, redrive delivers every event once.
func TestDeadLettersAndRedrive(t *testing.T) {
	f := &flakyTarget{got: map[string]int{}}
	url, _ := listen(t, f)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`
buses:
  - name: audit # no rules: its queue is listed all the same
rules:
  - name: orders
    targets:
      - id: finance
        type: http
        url: %q
        retry: {max_event_age: 2s, initial_interval: 50ms, max_interval: 200ms}
`, url))
	base, _ := startInProcess(t, cfg, filepath.Join(dir, "data"))
	var batch []map[string]any
	for i := 0; i < 20; i++ {
		batch = append(batch, map[string]any{"specversion": "1.0", "id": fmt.Sprintf("o-%02d", i), "source": "erp", "type": "order.created",
			"data": map[string]any{"bad": i%4 == 0}})
	}
	body, _ := json.Marshal(batch)
	mustPost(t, base+"/v1/buses/default/events", "application/cloudevents-batch+json", body, nil)

	var summary struct {
		Queues []struct {
			Target      string
			DeadLetters int `json:"dead_letters"`
		}
	}
	waitFor(t, 30*time.Second, "all 20 events to be dead-lettered", func() (bool, string) {
		resp, err := http.Get(base + "/v1/dlq")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&summary)
		return len(summary.Queues) == 1 && summary.Queues[0].DeadLetters == 20, fmt.Sprint(summary)
	})
	// the engine's other queues: the default bus's unroutable events
	out, _, err := runCLI(t, "dlq", "list", "--url", base)
	if err != nil || !strings.Contains(out, "target  default/orders/finance  20") || !strings.Contains(out, "bus     default") || !strings.Contains(out, "bus     audit") {
		t.Fatalf("dlq list: %v\n%s", err, out)
	}
	if out, _, err := runCLI(t, "dlq", "list", "--url", base, "--unroutable"); err != nil || !strings.Contains(out, "SEQ") {
		t.Fatalf("dlq list --unroutable: %v %s", err, out)
	}
	if _, _, err := runCLI(t, "dlq", "redrive", "--url", base, "--unroutable"); err == nil || !strings.Contains(err.Error(), "NotRedrivable") {
		t.Fatalf("redrive of a bus's queue: %v", err)
	}

	out, _, err = runCLI(t, "dlq", "list", "--url", base, "--target", "finance", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var recs []struct {
		Seq      uint64
		EventID  string `json:"event_id"`
		Reason   string
		Status   int
		Attempts int
		Error    string
	}
	if err := json.Unmarshal([]byte(out), &recs); err != nil || len(recs) != 20 {
		t.Fatalf("dlq list: %v %s", err, out)
	}
	perm, aged := 0, 0
	for _, r := range recs {
		switch r.Reason {
		case "permanent-failure":
			perm++
			if r.Status != 400 || r.Attempts != 1 || !strings.Contains(r.Error, "amount is required") {
				t.Errorf("a 400 record: %+v", r)
			}
		case "max-event-age":
			aged++
			if r.Status != 503 || r.Attempts < 2 {
				t.Errorf("an aged record: %+v", r)
			}
		}
	}
	if perm != 5 || aged != 15 {
		t.Errorf("permanent %d, aged %d; want 5 and 15", perm, aged)
	}
	out, _, err = runCLI(t, "dlq", "show", "--url", base, "--target", "finance", fmt.Sprint(recs[0].Seq))
	if err != nil || !strings.Contains(out, `"specversion": "1.0"`) {
		t.Fatalf("dlq show: %v %s", err, out)
	}
	out, _, err = runCLI(t, "dlq", "redrive", "--url", base, "--target", "finance", "--dry-run")
	if err != nil || !strings.Contains(out, "20 of 20") {
		t.Fatalf("dry run: %v %s", err, out)
	}

	f.healthy.Store(true)
	out, progress, err := runCLI(t, "dlq", "redrive", "--url", base, "--target", "finance")
	if err != nil || !strings.Contains(out, "redrove 20") || !strings.Contains(progress, "0 left") {
		t.Fatalf("redrive: %v %s %s", err, out, progress)
	}
	waitFor(t, 30*time.Second, "redriven events to arrive", func() (bool, string) {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.got) == 20, fmt.Sprint(len(f.got), " of 20")
	})
	// a second redrive has nothing left to do
	out, _, err = runCLI(t, "dlq", "redrive", "--url", base, "--target", "finance")
	if err != nil || !strings.Contains(out, "redrove 0") {
		t.Fatalf("second redrive: %v %s", err, out)
	}
	time.Sleep(200 * time.Millisecond)
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, n := range f.got {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
	_, _, err = runCLI(t, "dlq", "list", "--url", base, "--target", "nope")
	if err == nil || !strings.Contains(err.Error(), `no target "nope"`) {
		t.Errorf("unknown target: %v", err)
	}
}

// dlqView is the engine's side of the dead-letter API over a transport.
type dlqView struct {
	dl     *routers.DeadLetters
	queues []routers.QueueRef
	others []routers.DLQ
}

func (v dlqView) Queues() []routers.QueueRef        { return v.queues }
func (v dlqView) DeadLetters() *routers.DeadLetters { return v.dl }
func (v dlqView) DeadLetterQueues() []routers.DLQ   { return v.others }

// TestDLQOtherKinds reads a bus's, a pipe's and a source's dead-letter
// queues on an embedded transport through the API and the commands.
func TestDLQOtherKinds(t *testing.T) {
	ctx := context.Background()
	u, _ := neturl.Parse("embedded://")
	tr, err := natsjs.Open(ctx, u, transport.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	finance := routers.QueueRef{Bus: "default", Rule: "orders", Target: "finance"}
	bus, pipe, src := routers.BusDLQ("default"), routers.PipeDLQ("clicks"), routers.SourceDLQ("erp")
	for _, q := range []routers.DLQ{finance.DLQ(), bus, pipe, src} {
		if err := tr.CreateTopic(ctx, q.Topic(), transport.TopicOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	put := func(q routers.DLQ, payload string, md map[string]string) {
		m := message.NewMessage(watermill.NewULID(), []byte(payload))
		for k, v := range md {
			m.Metadata.Set(k, v)
		}
		if err := tr.Publisher().Publish(q.Topic(), m); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		put(pipe, fmt.Sprintf(`{"specversion":"1.0","id":"c%d","source":"web","type":"click"}`, i), map[string]string{
			pipeline.MetaEventID: fmt.Sprint("c", i), pipeline.MetaReason: "retries-exhausted", pipeline.MetaAttempts: "4",
			pipeline.MetaError: "clickhouse: connection refused", "busbar-pipe": "clicks",
			"kafka-topic": "web.clicks", "kafka-partition": "1", "kafka-offset": fmt.Sprint(70 + i), "kafka-header-trace": "tr-9"})
	}
	put(src, "order;42;EUR", map[string]string{pipeline.MetaReason: "invalid-record", pipeline.MetaError: "not a CloudEvent: invalid character 'o'",
		"busbar-source": "erp", "kafka-topic": "erp.orders", "kafka-partition": "0", "kafka-offset": "12"})
	put(bus, "not json", map[string]string{pipeline.MetaEventID: "x1", pipeline.MetaBus: "default", pipeline.MetaReason: "unroutable",
		pipeline.MetaError: "invalid character 'o' in literal null"})
	dl, err := routers.NewDeadLetters(tr)
	if err != nil {
		t.Fatal(err)
	}
	base, _ := listen(t, api.NewDLQHandler(dlqView{dl: dl, queues: []routers.QueueRef{finance}, others: []routers.DLQ{bus, pipe, src}}))

	// every queue, labelled by kind, with how to select it
	out, _, err := runCLI(t, "dlq", "list", "--url", base)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"KIND", "target  default/orders/finance  0", "--target finance",
		"bus     default", "--bus default --unroutable", "pipe    clicks                  5", "--pipe clicks", "source  erp", "--source erp"} {
		if !strings.Contains(out, want) {
			t.Errorf("dlq list lacks %q:\n%s", want, out)
		}
	}
	out, _, err = runCLI(t, "dlq", "list", "--url", base, "--json")
	var sum []struct {
		Kind, Bus, Rule, Target, Pipe, Source string
		DeadLetters                           int `json:"dead_letters"`
	}
	if err != nil || json.Unmarshal([]byte(out), &sum) != nil || len(sum) != 4 || sum[0].Kind != "target" || sum[0].Target != "finance" || sum[2].Pipe != "clicks" || sum[2].DeadLetters != 5 {
		t.Fatalf("dlq list --json: %v %s", err, out)
	}

	// a pipe's records, a page at a time
	out, hint, err := runCLI(t, "dlq", "list", "--url", base, "--pipe", "clicks", "--limit", "2")
	if err != nil || !strings.Contains(out, "ORIGIN") || !strings.Contains(out, "kafka web.clicks[1]@70") || strings.Contains(out, "@72") || !strings.Contains(hint, "--from 3") {
		t.Fatalf("dlq list --pipe: %v\n%s%s", err, out, hint)
	}
	out, _, err = runCLI(t, "dlq", "list", "--url", base, "--pipe", "clicks", "--limit", "2", "--from", "3", "--json")
	var recs []routers.DeadLetter
	if err != nil || json.Unmarshal([]byte(out), &recs) != nil || len(recs) != 2 || recs[0].EventID != "c2" || recs[1].EventID != "c3" {
		t.Fatalf("dlq list --pipe --from 3: %v %s", err, out)
	}
	out, _, err = runCLI(t, "dlq", "show", "--url", base, "--pipe", "clicks", fmt.Sprint(recs[1].Seq))
	if err != nil || !strings.Contains(out, `"id": "c3"`) || !strings.Contains(out, `"reason": "retries-exhausted"`) ||
		!strings.Contains(out, `"kafka-header-trace": "tr-9"`) || !strings.Contains(out, `"attempts": 4`) {
		t.Fatalf("dlq show --pipe: %v %s", err, out)
	}

	// a source's record and a bus's unroutable event
	out, _, err = runCLI(t, "dlq", "list", "--url", base, "--source", "erp")
	if err != nil || !strings.Contains(out, "invalid-record") || !strings.Contains(out, "kafka erp.orders[0]@12") {
		t.Fatalf("dlq list --source: %v %s", err, out)
	}
	out, _, err = runCLI(t, "dlq", "show", "--url", base, "--source", "erp", "1")
	if err != nil || !strings.Contains(out, `"event": "order;42;EUR"`) || !strings.Contains(out, `"source": "erp"`) {
		t.Fatalf("dlq show --source: %v %s", err, out)
	}
	out, _, err = runCLI(t, "dlq", "list", "--url", base, "--unroutable")
	if err != nil || !strings.Contains(out, "unroutable") || !strings.Contains(out, "x1") {
		t.Fatalf("dlq list --unroutable: %v %s", err, out)
	}
	out, _, err = runCLI(t, "dlq", "show", "--url", base, "--bus", "default", "--unroutable", "1")
	if err != nil || !strings.Contains(out, `"event": "not json"`) {
		t.Fatalf("dlq show --bus --unroutable: %v %s", err, out)
	}

	// refusals and unknown names
	for _, c := range []struct {
		args []string
		says string
		code int
	}{
		{[]string{"redrive", "--pipe", "clicks"}, `NotRedrivable: the dead letters of pipe "clicks" cannot be redriven`, 1},
		{[]string{"redrive", "--source", "erp", "--dry-run"}, `source "erp" cannot be redriven`, 1},
		{[]string{"redrive", "--unroutable"}, `bus "default" cannot be redriven`, 1},
		{[]string{"list", "--pipe", "nope"}, `UnknownPipe: no pipe "nope"`, 1},
		{[]string{"show", "--source", "nope", "1"}, `UnknownSource: no source "nope"`, 1},
		{[]string{"list", "--bus", "nope", "--unroutable"}, `UnknownBus: no bus "nope"`, 1},
		{[]string{"show", "--pipe", "clicks", "99"}, `no dead letter 99 for pipe "clicks"`, 1},
		{[]string{"list", "--pipe", "clicks", "--target", "finance"}, "--target and --pipe select different queues", 2},
		{[]string{"list", "--source", "erp", "--bus", "default"}, "--bus does not go with --source", 2},
		{[]string{"show", "1"}, "name a queue", 2},
	} {
		_, _, err := runCLI(t, append(append([]string{"dlq"}, c.args...), "--url", base)...)
		code := 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		if err == nil || !strings.Contains(err.Error(), c.says) || code != c.code {
			t.Errorf("dlq %v: %v (exit %d); want %q, exit %d", c.args, err, code, c.says, c.code)
		}
	}
	if n, _ := dl.Count(ctx, pipe); n != 5 {
		t.Errorf("the pipe's queue holds %d after the refused redrive", n)
	}
}
