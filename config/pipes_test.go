package config

import (
	"encoding/json"
	"strings"
	"testing"
)

const pipeSrc = `
destinations:
  - name: api
    url: https://api.example.com/in
pipes:
  - name: clicks
    source:
      type: kafka
      kafka:
        brokers: [k1:9092]
        topic: web.clicks
        sasl: {mechanism: PLAIN, username: u, password: literal-kafka}
      mapping: {source: web, type: $.kind}
    pattern: {type: [click]}
    filter: data.n > 1
    transform:
      mask: [{path: $.data.email, action: hash, key: "${HASH_KEY}"}]
    target:
      type: clickhouse
      batch: {max_rows: 1000}
      retry: {initial_interval: 10ms, max_interval: 1s}
      clickhouse: {dsn: "clickhouse://default:chpass@127.0.0.1:9000/default"}
  - name: to-api
    source:
      type: kafka
      kafka: {brokers: [k1:9092], topic: orders, group: mine, start: latest}
    target:
      id: api
      type: http
      destination: api
      headers: {Authorization: Bearer literal-token, X-Env: "${HDR}"}
`

func pipeEnv(k string) (string, bool) {
	switch k {
	case "HASH_KEY":
		return "0123456789abcdef0123", true
	case "HDR":
		return "from-env", true
	}
	return "", false
}

func TestPipesLoadWithDefaults(t *testing.T) {
	c, err := parse([]byte(pipeSrc), "busbar.yaml", pipeEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Pipes) != 2 {
		t.Fatalf("%d pipes", len(c.Pipes))
	}
	p := c.Pipes[0]
	if p.Source.Kafka.Group != "busbar.pipe.clicks" || p.Source.Kafka.Start != KafkaStartOldest {
		t.Errorf("source defaults: %+v", p.Source.Kafka)
	}
	if string(p.Pattern) != `{"type":["click"]}` || p.Filter != "data.n > 1" || p.Transform == nil {
		t.Errorf("pattern %s filter %q transform %v", p.Pattern, p.Filter, p.Transform)
	}
	tg := p.Target
	if tg.ID != "clicks" || tg.Concurrency != 0 || tg.Retry.MaxAttempts != 0 || tg.Retry.MaxEventAge != 0 {
		t.Errorf("clickhouse target defaults: id %q concurrency %d retry %+v", tg.ID, tg.Concurrency, tg.Retry)
	}
	if tg.Retry.InitialInterval.D().String() != "10ms" || tg.Timeout == 0 {
		t.Errorf("target retry/timeout: %+v %v", tg.Retry, tg.Timeout)
	}
	h := c.Pipes[1]
	if h.Source.Kafka.Group != "mine" || h.Source.Kafka.Start != KafkaStartNewest {
		t.Errorf("explicit group/start lost: %+v", h.Source.Kafka)
	}
	if h.Target.Concurrency != DefaultConcurrency || h.Target.ResolvedDestination() == nil || h.Target.ResolvedDestination().Name != "api" {
		t.Errorf("http target: concurrency %d destination %v", h.Target.Concurrency, h.Target.ResolvedDestination())
	}
	// Idempotent.
	before, _ := json.Marshal(c)
	c.ApplyDefaults()
	if after, _ := json.Marshal(c); string(before) != string(after) {
		t.Errorf("ApplyDefaults changed a defaulted config:\n%s\n%s", before, after)
	}
}

func TestPipesCloneAndRedacted(t *testing.T) {
	c, err := parse([]byte(pipeSrc), "busbar.yaml", pipeEnv)
	if err != nil {
		t.Fatal(err)
	}
	cl := c.Clone()
	cl.Pipes[0].Pattern[0] = 'X'
	cl.Pipes[0].Source.Kafka.Brokers[0] = "changed"
	cl.Pipes[0].Source.Kafka.SASL.Password = "changed"
	cl.Pipes[0].Source.Mapping.Type = "changed"
	cl.Pipes[0].Transform.Mask[0].Path = "changed"
	cl.Pipes[1].Target.Headers["X-Env"] = "changed"
	p := c.Pipes[0]
	if p.Pattern[0] != '{' || p.Source.Kafka.Brokers[0] != "k1:9092" || p.Source.Kafka.SASL.Password != "literal-kafka" ||
		p.Source.Mapping.Type != "$.kind" || p.Transform.Mask[0].Path != "$.data.email" || c.Pipes[1].Target.Headers["X-Env"] != "from-env" {
		t.Error("changing the clone changed the original")
	}
	if d := cl.Pipes[1].Target.ResolvedDestination(); d == nil || d != &cl.Destinations[0] {
		t.Error("the clone's pipe target does not point at the clone's destination")
	}

	r := c.Redacted()
	rp := r.Pipes[0]
	if rp.Source.Kafka.SASL.Password != RedactedValue {
		t.Errorf("source password printed as %q", rp.Source.Kafka.SASL.Password)
	}
	if strings.Contains(rp.Target.ClickHouse.DSN, "chpass") {
		t.Errorf("dsn printed as %q", rp.Target.ClickHouse.DSN)
	}
	if k := rp.Transform.Mask[0].Key; k != "${HASH_KEY}" {
		t.Errorf("mask key printed as %q", k)
	}
	hd := r.Pipes[1].Target.Headers
	if hd["Authorization"] != RedactedValue || hd["X-Env"] != "${HDR}" {
		t.Errorf("headers printed as %v", hd)
	}
	if r.Pipes[1].Target.ResolvedDestination() == nil {
		t.Error("redacted pipe target lost its destination")
	}
	b, _ := json.Marshal(r)
	for _, secret := range []string{"literal-kafka", "chpass", "literal-token", "from-env", "0123456789abcdef"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("the redacted config still holds %q", secret)
		}
	}
	if c.Pipes[0].Source.Kafka.SASL.Password != "literal-kafka" || c.Pipes[1].Target.Headers["Authorization"] != "Bearer literal-token" {
		t.Error("redacting changed the live config")
	}
}

func TestPipeErrors(t *testing.T) {
	checkErrors(t, "busbar.yaml", []errCase{
		{"missing source and target", `
pipes:
  - name: p
`, []string{
			"3:5 pipes[0].source: missing source",
			"3:5 pipes[0].target: missing target",
		}},
		{"bad parts", `
pipes:
  - name: p
    source:
      type: kafka
      kafka: {brokers: [k1:9092], topic: "bad topic!", start: yesterday}
      mapping: {source: web}
    pattern: {type: [{prefix: 1}]}
    filter: "data.x +"
    target:
      type: clickhouse
      concurrency: 100
      transform: {form: data}
      retry: {max_attempts: 3, max_event_age: 1h}
      clickhouse: {dsn: "clickhouse://h:9000/db"}
  - name: p
    source: {type: pulsar}
    target: {id: "bad id", type: http, url: "ftp://x"}
`, []string{
			"6:42 pipes[0].source.kafka.topic: is not a Kafka topic name",
			"6:63 pipes[0].source.kafka.start: is not a start position",
			"7:16 pipes[0].source.mapping.type: missing type",
			"8:23 pipes[0].pattern.type[0].prefix: invalid pattern",
			"9:21 pipes[0].filter: invalid filter",
			"12:20 pipes[0].target.concurrency: does not apply to a clickhouse target of a pipe",
			"13:18 pipes[0].target.transform: move it up to pipes[0].transform",
			"14:29 pipes[0].target.retry.max_attempts: does not apply to a pipe",
			"14:47 pipes[0].target.retry.max_event_age: does not apply to a pipe",
			"16:11 pipes[1].name: pipe \"p\" is declared twice",
			"17:20 pipes[1].source.type: \"pulsar\" is not a source type",
			"18:18 pipes[1].target.id: is not a valid target id",
			"18:45 pipes[1].target.url: must start with http:// or https://",
		}},
		{"session timeouts", `
sources:
  - {name: s, type: kafka, kafka: {brokers: [k1:9092], topic: t, session_timeout: 1s}}
pipes:
  - name: p
    source: {type: kafka, kafka: {brokers: [k1:9092], topic: t, session_timeout: 2h}}
    target: {type: http, url: "http://x/"}
`, []string{
			"3:83 sources[0].kafka.session_timeout: 1s is out of range: use 6s to 30m",
			"6:82 pipes[0].source.kafka.session_timeout: 2h is out of range",
		}},
	})
}
