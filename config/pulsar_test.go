package config

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestPulsarDefaultsAndValidation(t *testing.T) {
	src := `
transport: pulsar://p1:6650?token=literal-transport-token&tenant=acme
sources:
  - name: tdmq
    type: pulsar
    pulsar: {url: "pulsar://p1:6650", topic: persistent://acme/prod/orders}
rules:
  - name: r
    targets:
      - id: out
        type: pulsar
        pulsar: {url: "pulsar+ssl://p1:6651", topic: "audit-{$.source}", tls: {verify_hostname: true}}
`
	c, err := Parse([]byte(src), "busbar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := c.Sources[0].Pulsar
	if s.Subscription != "busbar.source.tdmq" || s.SubscriptionType != PulsarKeyShared || s.Start != KafkaStartOldest {
		t.Errorf("source defaults %+v", s)
	}
	p := c.Rules[0].Targets[0].Pulsar
	if p.Mode != KafkaModeBinary || p.Compression != "none" || p.Batching == nil || !*p.Batching ||
		p.BatchMaxDelay.D() != DefaultPulsarBatchMaxDelay || p.BatchMaxMessages != 1000 || p.BatchMaxBytes != 128<<10 {
		t.Errorf("target defaults %+v", p)
	}
}

func TestPulsarErrors(t *testing.T) {
	src := `
transport: pulsar+sll://p1:6651
sources:
  - name: a
    type: pulsar
    pulsar: {url: "http://p1", topic: "bad topic", subscription_type: key-shared, start: yesterday, token: t, oauth2: {issuer_url: "https://i", client_id: c, client_secret: s}}
  - name: b
    type: kafka
    kafka: {brokers: ["k:9092"], topic: t}
    pulsar: {url: "pulsar://p:6650", topic: t}
pipes:
  - name: p
    source: {type: pulsar}
    target: {type: http, url: "http://x"}
rules:
  - name: r
    targets:
      - id: out
        type: pulsar
        pulsar: {url: "pulsar://p:6650", topic: "x-{$..bad}", mode: packed, compression: brotli, batch_max_messages: 0, batch_max_delay: 1m, tls: {cert_file: c.pem}, oauth2: {client_secret: s}}
`
	_, err := Parse([]byte(src), "busbar.yaml")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`transport: transport scheme "pulsar+sll" is not supported`,
		`sources[0].pulsar.url: not a Pulsar service URL`,
		`sources[0].pulsar.topic: "bad topic" is not a Pulsar topic`,
		`sources[0].pulsar.subscription_type: "key-shared" is not a subscription type`,
		`did you mean "key_shared"?`,
		`sources[0].pulsar.start: "yesterday" is not a start position`,
		`sources[0].pulsar.oauth2: use token or oauth2, not both`,
		`sources[1].pulsar: pulsar: applies to sources of type pulsar only`,
		`pipes[0].source.type: "pulsar" is not a source type of pipes`,
		`rules[0].targets[0].pulsar.topic: placeholder {$..bad}`,
		`rules[0].targets[0].pulsar.mode: "packed" is not a CloudEvents mode`,
		`rules[0].targets[0].pulsar.compression: "brotli" is not a compression`,
		`rules[0].targets[0].pulsar.batch_max_messages: 0 is out of range`,
		`rules[0].targets[0].pulsar.batch_max_delay: 1m is out of range`,
		`rules[0].targets[0].pulsar.tls: tls: needs a pulsar+ssl:// url`,
		`rules[0].targets[0].pulsar.oauth2.issuer_url: missing issuer_url`,
		`rules[0].targets[0].pulsar.oauth2.client_id: missing client_id`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("no error %q in:\n%v", want, err)
		}
	}
}

func TestRedactedHidesPulsarSecrets(t *testing.T) {
	src := `
transport: pulsar://p1:6650?token=literal-transport-token&oauth2_client_secret=hush&tenant=acme
sources:
  - name: tdmq
    type: pulsar
    pulsar: {url: "pulsar://p1:6650", topic: orders, token: literal-source-token}
rules:
  - name: r
    targets:
      - id: out
        type: pulsar
        pulsar: {url: "pulsar://p1:6650", topic: audit, oauth2: {issuer_url: "https://auth", client_id: busbar, client_secret: "${PULSAR_SECRET}"}}
      - id: out2
        type: pulsar
        pulsar: {url: "pulsar://p1:6650", topic: audit, oauth2: {issuer_url: "https://auth", client_id: busbar, client_secret: literal-client-secret}}
`
	c, err := parse([]byte(src), "busbar.yaml", func(k string) (string, bool) { return "from-env", k == "PULSAR_SECRET" })
	if err != nil {
		t.Fatal(err)
	}
	r := c.Redacted()
	b, _ := json.Marshal(r)
	for _, secret := range []string{"literal-transport-token", "hush", "literal-source-token", "literal-client-secret", "from-env"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("the redacted config shows %q", secret)
		}
	}
	if got := r.Rules[0].Targets[0].Pulsar.OAuth2.ClientSecret; got != "${PULSAR_SECRET}" {
		t.Errorf("env secret printed as %q", got)
	}
	if !strings.Contains(r.Transport, "tenant=acme") {
		t.Errorf("transport %s", r.Transport)
	}
	if c.Sources[0].Pulsar.Token != "literal-source-token" || c.Rules[0].Targets[1].Pulsar.OAuth2.ClientSecret != "literal-client-secret" ||
		!strings.Contains(c.Transport, "literal-transport-token") {
		t.Error("redacting changed the live config")
	}
	cl := c.Clone()
	cl.Rules[0].Targets[0].Pulsar.OAuth2.ClientID = "changed"
	*cl.Rules[0].Targets[0].Pulsar.Batching = false
	if c.Rules[0].Targets[0].Pulsar.OAuth2.ClientID != "busbar" || !*c.Rules[0].Targets[0].Pulsar.Batching {
		t.Error("Clone shares the pulsar blocks")
	}
}
