package config

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestRedactedHidesKafkaPasswords(t *testing.T) {
	src := `
sources:
  - name: sap
    type: kafka
    bus: default
    kafka: {brokers: ["k1:9092"], topic: sap.orders, sasl: {mechanism: PLAIN, username: u, password: literal-secret}}
rules:
  - name: r
    targets:
      - id: out
        type: kafka
        kafka: {brokers: ["k1:9092"], topic: audit, sasl: {mechanism: PLAIN, username: u, password: "${KAFKA_PW}"}}
`
	c, err := parse([]byte(src), "busbar.yaml", func(k string) (string, bool) { return "from-env", k == "KAFKA_PW" })
	if err != nil {
		t.Fatal(err)
	}
	r := c.Redacted()
	if got := r.Sources[0].Kafka.SASL.Password; got != RedactedValue {
		t.Errorf("literal source password printed as %q", got)
	}
	if got := r.Rules[0].Targets[0].Kafka.SASL.Password; got != "${KAFKA_PW}" {
		t.Errorf("env target password printed as %q", got)
	}
	if c.Sources[0].Kafka.SASL.Password != "literal-secret" || c.Rules[0].Targets[0].Kafka.SASL.Password != "from-env" {
		t.Errorf("redacting changed the live config: %+v %+v", c.Sources[0].Kafka.SASL, c.Rules[0].Targets[0].Kafka.SASL)
	}
	if b, _ := json.Marshal(r); strings.Contains(string(b), "literal-secret") {
		t.Error("the redacted config still holds the secret")
	}
}
