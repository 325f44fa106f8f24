package config

import (
	"strings"
	"testing"
	"time"
)

func TestHTTPBatchDefaults(t *testing.T) {
	c, err := Parse([]byte(`
rules:
  - name: r
    targets:
      - {id: one, type: http, url: "https://a.example/in"}
      - {id: batched, type: http, url: "https://a.example/in", batch: {max_rows: 50}}
      - {id: big, type: http, url: "https://a.example/in", batch: {max_rows: 5000, max_in_flight: 8}}
      - {id: own, type: http, url: "https://a.example/in", concurrency: 7, batch: {max_wait: 50ms}}
pipes:
  - name: p
    source: {type: kafka, kafka: {brokers: ["127.0.0.1:9092"], topic: t}}
    target: {type: http, url: "https://a.example/in", batch: {max_rows: 1000}}
`), "busbar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ts := c.Rules[0].Targets
	if ts[0].BatchesRequests() || ts[0].Batch != (Batch{}) || ts[0].Concurrency != DefaultConcurrency {
		t.Errorf("a target without batch: batches %v, %+v, concurrency %d", ts[0].BatchesRequests(), ts[0].Batch, ts[0].Concurrency)
	}
	want := Batch{MaxRows: 50, MaxBytes: 1 << 20, MaxWait: Duration(10 * time.Millisecond), MaxInFlight: 4}
	if !ts[1].BatchesRequests() || ts[1].Batch != want || ts[1].Concurrency != 200 {
		t.Errorf("batch: {max_rows: 50}: batches %v, %+v, concurrency %d; want %+v, 200", ts[1].BatchesRequests(), ts[1].Batch, ts[1].Concurrency, want)
	}
	if ts[2].Concurrency != MaxDefaultHTTPBatchConcurrency {
		t.Errorf("5000 rows × 8: concurrency %d, want the cap %d", ts[2].Concurrency, MaxDefaultHTTPBatchConcurrency)
	}
	if ts[3].Concurrency != 7 || ts[3].Batch.MaxRows != 100 {
		t.Errorf("concurrency written: %d, max_rows %d", ts[3].Concurrency, ts[3].Batch.MaxRows)
	}
	// A pipe's batch shapes the pipe's batches, as before: its http target
	// sends one request per event and keeps the pipe's defaults.
	pt := c.Pipes[0].Target
	if pt.BatchesRequests() || pt.Batch.MaxWait != 0 || pt.Concurrency != DefaultConcurrency {
		t.Errorf("pipe target: batches %v, %+v, concurrency %d", pt.BatchesRequests(), pt.Batch, pt.Concurrency)
	}
	if cl := c.Clone(); !cl.Rules[0].Targets[1].BatchesRequests() || cl.Pipes[0].Target.BatchesRequests() {
		t.Error("Clone changed which targets batch")
	}
}

func TestHTTPBatchErrors(t *testing.T) {
	target := func(fields string) string {
		return "destinations:\n  - {name: byid, url: 'https://a.example/o/{$.data.id}'}\n  - {name: get, url: 'https://a.example/o', method: GET}\n" +
			"rules:\n  - name: r\n    targets:\n      - id: t\n        " + fields + "\n"
	}
	checkErrors(t, "busbar.yaml", []errCase{
		{"empty", target("type: http\n        url: https://a.example\n        batch: {}"), []string{
			`10:16 rules[0].targets[0].batch: batch sets no limit`}},
		{"chat", target("type: slack\n        url: https://hooks.slack.com/x\n        text: hi\n        batch: {max_rows: 10}"), []string{
			`11:16 rules[0].targets[0].batch: a slack robot takes one message per request; remove batch`}},
		{"binary", target("type: http\n        url: https://a.example\n        mode: binary\n        batch: {max_rows: 10}"), []string{
			`11:16 rules[0].targets[0].batch: a batch is one POST for many events in CloudEvents batch mode, which has no binary form`}},
		{"GET", target("type: http\n        url: https://a.example\n        method: GET\n        batch: {max_rows: 10}"), []string{
			`11:16 rules[0].targets[0].batch: a batch is one POST for many events; a GET sends no body`}},
		{"destination GET", target("type: http\n        destination: get\n        batch: {max_rows: 10}"), []string{
			`10:16 rules[0].targets[0].batch: a batch is one POST for many events; a GET sends no body`}},
		{"url placeholder", target("type: http\n        url: 'https://a.example/{$.source}'\n        batch: {max_rows: 10}"), []string{
			`10:16 rules[0].targets[0].batch: a batch is one POST for many events, so its URL cannot depend on the event, and rules[0].targets[0].url holds {$...} placeholders`}},
		{"destination placeholder", target("type: http\n        destination: byid\n        batch: {max_rows: 10}"), []string{
			`10:16 rules[0].targets[0].batch: a batch is one POST for many events, so its URL cannot depend on the event, and destination "byid" url holds`}},
		{"header placeholder", target("type: http\n        url: https://a.example\n        headers: {X-Id: '{$.id}'}\n        batch: {max_rows: 10}"), []string{
			`11:16 rules[0].targets[0].batch: a batch is one POST for many events, so its headers cannot depend on the event, and rules[0].targets[0].headers.X-Id holds`}},
		{"text template", target("type: http\n        url: https://a.example\n        transform: {template: 'order <id>', paths: {id: $.id}}\n        batch: {max_rows: 10}"), []string{
			`11:16 rules[0].targets[0].batch: a batch is one POST for many events as a JSON array, and the transform makes text`}},
		{"text constant", target("type: http\n        url: https://a.example\n        transform: {constant: 'ping'}\n        batch: {max_rows: 10}"), []string{
			`11:16 rules[0].targets[0].batch: a batch is one POST for many events as a JSON array, and the transform makes text`}},
		{"limits", target("type: http\n        url: https://a.example\n        batch: {max_rows: 0}"), []string{
			`10:27 rules[0].targets[0].batch.max_rows: 0 is out of range: use 1 to 1000000, or leave it out for the default 100`}},
		{"concurrency", target("type: http\n        url: https://a.example\n        concurrency: 200000\n        batch: {max_rows: 10}"), []string{
			`10:22 rules[0].targets[0].concurrency: 200000 is out of range: use 1 to 100000, or leave it out for the default 40`}},
	})
	// JSON transforms and POST to a fixed URL batch.
	for _, ok := range []string{
		"type: http\n        url: https://a.example\n        transform: {template: '{\"order\": <id>}', paths: {id: $.id}}\n        batch: {max_rows: 10}",
		"type: http\n        url: https://a.example\n        method: PUT\n        transform: {form: data}\n        batch: {max_rows: 10}",
		"type: http\n        url: https://a.example\n        concurrency: 5000\n        batch: {max_wait: 1ms}",
	} {
		if _, err := Parse([]byte(target(ok)), "busbar.yaml"); err != nil {
			t.Errorf("%s:\n%v", ok, err)
		}
	}
	// Without batch, a concurrency above 1024 stays an error.
	if _, err := Parse([]byte(target("type: http\n        url: https://a.example\n        concurrency: 5000")), "busbar.yaml"); err == nil || !strings.Contains(err.Error(), "use 1 to 1024") {
		t.Errorf("concurrency 5000 without batch: %v", err)
	}
}

// Chat robots take about 20 messages a minute and people read them in
// order, so they default to one delivery at a time; a set value stays.
func TestChatConcurrencyDefault(t *testing.T) {
	c, err := Parse([]byte(`
rules:
  - name: r
    targets:
      - {id: robot, type: dingtalk, url: "https://oapi.dingtalk.com/robot/send?access_token=x", text: "hi"}
      - {id: busy, type: slack, url: "https://hooks.slack.com/services/x", text: "hi", concurrency: 4}
      - {id: api, type: http, url: "https://a.example/in"}
`), "busbar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{DefaultChatConcurrency, 4, DefaultConcurrency} {
		if got := c.Rules[0].Targets[i].Concurrency; got != want {
			t.Errorf("target %s: concurrency %d, want %d", c.Rules[0].Targets[i].ID, got, want)
		}
	}
	_, err = Parse([]byte(`
rules:
  - name: r
    targets:
      - {id: robot, type: wecom, url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=x", text: "hi", concurrency: 0}
`), "busbar.yaml")
	if err == nil || !strings.Contains(err.Error(), "leave it out for the default 1") {
		t.Errorf("concurrency 0 on a chat robot: got %v, want the range error naming default 1", err)
	}
}
