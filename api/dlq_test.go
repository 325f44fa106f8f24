package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busbar/busbar/api"
	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/pipeline/transport"
	"github.com/busbar/busbar/pipeline/transport/natsjs"
	"github.com/busbar/busbar/routers"
)

// engineView is a DeadLetterSource over a real embedded transport.
type engineView struct {
	queues []routers.QueueRef
	others []routers.DLQ // the buses', pipes' and sources' queues it names
	dl     *routers.DeadLetters
}

func (e engineView) Queues() []routers.QueueRef        { return e.queues }
func (e engineView) DeadLetters() *routers.DeadLetters { return e.dl }
func (e engineView) DeadLetterQueues() []routers.DLQ   { return e.others }

var (
	finance = routers.QueueRef{Bus: "retail", Rule: "orders", Target: "finance"}
	// a bus named like the pipes' path segment, without its '~'
	lookalike = routers.QueueRef{Bus: "pipes", Rule: "clicks", Target: "7"}
)

// fill opens an embedded transport holding dead letters of every kind:
// finance 2, lookalike 1, bus retail 1, pipe clicks 3, source erp 1, and
// pipe gone 1 (a pipe no longer in the config).
func fill(t *testing.T) (transport.Transport, *routers.DeadLetters) {
	t.Helper()
	ctx := context.Background()
	u, _ := url.Parse("embedded://")
	tr, err := natsjs.Open(ctx, u, transport.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	put := func(q routers.DLQ, payload []byte, md map[string]string) {
		t.Helper()
		if err := tr.CreateTopic(ctx, q.Topic(), transport.TopicOptions{}); err != nil {
			t.Fatal(err)
		}
		m := message.NewMessage(fmt.Sprint(time.Now().UnixNano()), payload)
		for k, v := range md {
			m.Metadata.Set(k, v)
		}
		m.Metadata.Set(pipeline.MetaFailedAt, time.Now().UTC().Format(time.RFC3339Nano))
		if err := tr.Publisher().Publish(q.Topic(), m); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []routers.QueueRef{finance, lookalike} {
		if err := tr.CreateTopic(ctx, routers.QueueTopic(q.Bus, q.Rule, q.Target), transport.TopicOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ev := func(id string) []byte {
		return []byte(`{"specversion":"1.0","id":"` + id + `","source":"erp","type":"order.created"}`)
	}
	for i := 0; i < 2; i++ {
		put(finance.DLQ(), ev(fmt.Sprint("o", i)), map[string]string{pipeline.MetaEventID: fmt.Sprint("o", i), pipeline.MetaBus: "retail",
			pipeline.MetaRule: "orders", pipeline.MetaTarget: "finance", pipeline.MetaReason: routers.ReasonPermanent,
			pipeline.MetaStatus: "400", pipeline.MetaAttempts: "1", pipeline.MetaError: "400 Bad Request"})
	}
	put(lookalike.DLQ(), ev("l0"), map[string]string{pipeline.MetaEventID: "l0", pipeline.MetaReason: routers.ReasonExhausted})
	put(routers.BusDLQ("retail"), []byte("<xml/>"), map[string]string{pipeline.MetaEventID: "x1", pipeline.MetaBus: "retail",
		pipeline.MetaReason: routers.ReasonUnroutable, pipeline.MetaError: "invalid character '<'", pipeline.MetaAttempts: "0"})
	for i := 0; i < 3; i++ {
		put(routers.PipeDLQ("clicks"), ev(fmt.Sprint("c", i)), map[string]string{pipeline.MetaEventID: fmt.Sprint("c", i),
			pipeline.MetaReason: routers.ReasonExhausted, pipeline.MetaError: "clickhouse: connection refused", pipeline.MetaAttempts: "5",
			"busbar-pipe": "clicks", "kafka-topic": "web.clicks", "kafka-partition": "0", "kafka-offset": fmt.Sprint(100 + i), "kafka-header-trace": "t-1"})
	}
	put(routers.SourceDLQ("erp"), []byte("order;42;EUR"), map[string]string{pipeline.MetaReason: "invalid-record",
		pipeline.MetaError: "not a CloudEvent", "busbar-source": "erp", "kafka-topic": "erp.orders", "kafka-partition": "2", "kafka-offset": "9"})
	put(routers.PipeDLQ("gone"), ev("g0"), map[string]string{pipeline.MetaReason: routers.ReasonPermanent, "busbar-pipe": "gone"})
	dl, err := routers.NewDeadLetters(tr)
	if err != nil {
		t.Fatal(err)
	}
	return tr, dl
}

func newServer(t *testing.T, src api.DeadLetterSource) string {
	srv := httptest.NewServer(api.NewDLQHandler(src))
	t.Cleanup(srv.Close)
	return srv.URL
}

// call does a request and decodes a 2xx answer into out, or returns the
// JSON error's code and message.
func call(t *testing.T, method, u string, out any) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, u, err, b)
		}
		return resp.StatusCode, ""
	}
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("%s %s: %d with a body that is not a JSON error: %s", method, u, resp.StatusCode, b)
	}
	return resp.StatusCode, e.Error.Code + ": " + e.Error.Message
}

type page struct {
	Records []routers.DeadLetter
	Next    uint64
}

func TestDLQSummaryListsEveryKind(t *testing.T) {
	_, dl := fill(t)
	base := newServer(t, engineView{queues: []routers.QueueRef{finance, lookalike}, dl: dl,
		others: []routers.DLQ{routers.BusDLQ("default"), routers.BusDLQ("retail"), routers.PipeDLQ("clicks"),
			routers.SourceDLQ("erp"), routers.SourceDLQ("crm")},
	})
	var s api.Summary
	if code, e := call(t, "GET", base+"/v1/dlq", &s); code != 200 {
		t.Fatal(e)
	}
	if len(s.Queues) != 2 || s.Queues[0].QueueRef != finance || s.Queues[0].DeadLetters != 2 {
		t.Errorf("targets: %+v", s.Queues)
	}
	got := map[string]uint64{}
	for _, q := range s.OtherQueues {
		got[string(q.Kind)+" "+q.Name()] = q.DeadLetters
	}
	want := map[string]uint64{"bus default": 0, "bus retail": 1, "pipe clicks": 3, "source erp": 1, "source crm": 0}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("other queues = %v, want %v", got, want)
	}
	// the JSON names each queue's kind and owner
	resp, _ := http.Get(base + "/v1/dlq")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `{"kind":"pipe","pipe":"clicks","dead_letters":3}`) {
		t.Errorf("summary JSON: %s", b)
	}
}

// A queue the engine does not name (its pipe left the config) is still
// read by name while its records are on the transport.
func TestDLQUnnamedQueueReadByName(t *testing.T) {
	_, dl := fill(t)
	base := newServer(t, engineView{queues: []routers.QueueRef{finance}, dl: dl, others: []routers.DLQ{routers.BusDLQ("retail")}})
	var p page
	if code, e := call(t, "GET", base+"/v1/dlq/~pipes/clicks", &p); code != 200 || len(p.Records) != 3 {
		t.Errorf("pipe records: %d %s %+v", code, e, p)
	}
}

func TestDLQListShowBusPipeSource(t *testing.T) {
	_, dl := fill(t)
	base := newServer(t, engineView{queues: []routers.QueueRef{finance, lookalike}, dl: dl,
		others: []routers.DLQ{routers.BusDLQ("retail"), routers.PipeDLQ("clicks"), routers.SourceDLQ("erp")},
	})

	// a pipe's records, paged
	var p page
	if code, e := call(t, "GET", base+"/v1/dlq/~pipes/clicks?limit=2", &p); code != 200 {
		t.Fatal(e)
	}
	if len(p.Records) != 2 || p.Next == 0 || p.Records[0].EventID != "c0" || p.Records[0].Pipe != "clicks" ||
		p.Records[0].Origin != "kafka web.clicks[0]@100" || p.Records[0].Attempts != 5 || p.Records[0].Event != nil {
		t.Fatalf("first page: %+v", p)
	}
	var p2 page
	if code, e := call(t, "GET", fmt.Sprintf("%s/v1/dlq/~pipes/clicks?limit=2&from=%d", base, p.Next), &p2); code != 200 {
		t.Fatal(e)
	}
	if len(p2.Records) != 1 || p2.Next != 0 || p2.Records[0].EventID != "c2" {
		t.Fatalf("second page: %+v", p2)
	}
	var rec routers.DeadLetter
	if code, e := call(t, "GET", fmt.Sprintf("%s/v1/dlq/~pipes/clicks/%d", base, p2.Records[0].Seq), &rec); code != 200 {
		t.Fatal(e)
	}
	if rec.Reason != routers.ReasonExhausted || rec.Error != "clickhouse: connection refused" || !strings.Contains(string(rec.Event), `"id":"c2"`) ||
		rec.Metadata["kafka-header-trace"] != "t-1" || rec.FailedAt == "" {
		t.Errorf("pipe record: %+v", rec)
	}

	// a source's record: not JSON, shown as a string
	if code, e := call(t, "GET", base+"/v1/dlq/~sources/erp", &p); code != 200 || len(p.Records) != 1 || p.Records[0].Source != "erp" {
		t.Fatalf("source records: %s %+v", e, p)
	}
	rec = routers.DeadLetter{}
	if code, e := call(t, "GET", fmt.Sprintf("%s/v1/dlq/~sources/erp/%d", base, p.Records[0].Seq), &rec); code != 200 {
		t.Fatal(e)
	}
	if string(rec.Event) != `"order;42;EUR"` || rec.Reason != "invalid-record" || rec.Origin != "kafka erp.orders[2]@9" {
		t.Errorf("source record: %+v", rec)
	}

	// a bus's unroutable events
	if code, e := call(t, "GET", base+"/v1/dlq/~buses/retail", &p); code != 200 || len(p.Records) != 1 || p.Records[0].Reason != routers.ReasonUnroutable {
		t.Fatalf("bus records: %s %+v", e, p)
	}
	rec = routers.DeadLetter{}
	if code, e := call(t, "GET", fmt.Sprintf("%s/v1/dlq/~buses/retail/%d", base, p.Records[0].Seq), &rec); code != 200 || string(rec.Event) != `"<xml/>"` || rec.EventID != "x1" {
		t.Fatalf("bus record: %s %+v", e, rec)
	}

	// a pipe gone from the config keeps its queue, and it can be read
	if code, e := call(t, "GET", base+"/v1/dlq/~pipes/gone", &p); code != 200 || len(p.Records) != 1 {
		t.Errorf("a removed pipe's records: %s %+v", e, p)
	}

	// targets as before, a bus named "pipes" included
	if code, e := call(t, "GET", base+"/v1/dlq/pipes/clicks/7", &p); code != 200 || len(p.Records) != 1 || p.Records[0].EventID != "l0" {
		t.Errorf("target of bus pipes: %s %+v", e, p)
	}
	if code, e := call(t, "GET", base+"/v1/dlq/retail/orders/finance?limit=1", &p); code != 200 || len(p.Records) != 1 || p.Next == 0 {
		t.Errorf("target page: %s %+v", e, p)
	}
	var res routers.RedriveResult
	req, _ := http.NewRequest("POST", base+"/v1/dlq/retail/orders/finance/redrive", strings.NewReader(`{"dry_run":true}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if resp.StatusCode != 200 || res.Matched != 2 || res.Remaining != 2 {
		t.Errorf("target dry run: %d %+v", resp.StatusCode, res)
	}
}

func TestDLQErrors(t *testing.T) {
	_, dl := fill(t)
	base := newServer(t, engineView{queues: []routers.QueueRef{finance}, dl: dl,
		others: []routers.DLQ{routers.BusDLQ("retail"), routers.PipeDLQ("clicks"), routers.SourceDLQ("erp")},
	})
	for _, c := range []struct {
		method, path string
		code         int
		says         []string
	}{
		{"GET", "/v1/dlq/~pipes/nope", 404, []string{"UnknownPipe", `pipe "nope"`, "busbar.dlq.pipe.nope"}},
		{"GET", "/v1/dlq/~pipes/nope/1", 404, []string{"UnknownPipe", `pipe "nope"`}},
		{"GET", "/v1/dlq/~sources/nope", 404, []string{"UnknownSource", `source "nope"`}},
		{"GET", "/v1/dlq/~buses/nope/1", 404, []string{"UnknownBus", `bus "nope"`}},
		{"POST", "/v1/dlq/~pipes/nope/redrive", 404, []string{"UnknownPipe"}},
		{"GET", "/v1/dlq/~pipes/clicks/999", 404, []string{"NotFound", `no dead letter 999 for pipe "clicks"`}},
		{"GET", "/v1/dlq/~pipes/clicks/x", 400, []string{"InvalidParameter", "/v1/dlq/~pipes/clicks/42"}},
		{"GET", "/v1/dlq/~pipes/clicks?limit=0", 400, []string{"InvalidParameter"}},
		{"POST", "/v1/dlq/~pipes/clicks/redrive", 409, []string{"NotRedrivable", `pipe "clicks" cannot be redriven`, "no queue", "produce the records"}},
		{"POST", "/v1/dlq/~sources/erp/redrive", 409, []string{"NotRedrivable", `source "erp" cannot be redriven`, "not events", "producer"}},
		{"POST", "/v1/dlq/~buses/retail/redrive", 409, []string{"NotRedrivable", `bus "retail" cannot be redriven`, "fail the same way"}},
		{"GET", "/v1/dlq/~queues/x", 404, []string{"NotFound", "not a dead-letter endpoint"}},
		{"GET", "/v1/dlq/retail/orders/nope", 404, []string{"UnknownTarget", `no target "nope"`}},
	} {
		var ignored any
		code, msg := call(t, c.method, base+c.path, &ignored)
		if code != c.code {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, code, msg, c.code)
			continue
		}
		for _, s := range c.says {
			if !strings.Contains(msg, s) {
				t.Errorf("%s %s: %q does not say %q", c.method, c.path, msg, s)
			}
		}
	}
	// nothing was redriven or removed by the refusals
	if n, _ := dl.Count(context.Background(), routers.PipeDLQ("clicks")); n != 3 {
		t.Errorf("pipe queue holds %d", n)
	}
}

func TestDLQWithoutInspector(t *testing.T) {
	base := newServer(t, engineView{queues: []routers.QueueRef{finance}})
	for _, p := range []string{"/v1/dlq", "/v1/dlq/~pipes/clicks", "/v1/dlq/~sources/erp/1"} {
		var ignored any
		if code, msg := call(t, "GET", base+p, &ignored); code != 501 || !strings.Contains(msg, "NotSupported") {
			t.Errorf("%s: %d %s", p, code, msg)
		}
	}
}
