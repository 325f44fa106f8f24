package main

// End-to-end tests of busbar with Pulsar: the event path on the pulsar://
// transport, a Pulsar topic bound as a source, and a pulsar target, against
// the broker of PULSAR_URL (PULSAR_ADMIN_URL adds topic creation and
// retention). deployments/pulsar/README.md starts one. Without PULSAR_URL
// they are skipped: busbar's CI has no Pulsar broker, so these have not run
// there. TestPulsarUnreachable needs no broker and always runs.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	pc "github.com/apache/pulsar-client-go/pulsar"

	"github.com/busbar/busbar/pipeline/transport/pulsar/pclient"
)

const pulsarSkip = "Pulsar integration: SKIPPED (set PULSAR_URL)"

// pulsarTransportURL is PULSAR_URL with a fresh topic prefix (and the admin
// URL, if given), so runs never see each other's topics.
func pulsarTransportURL(t *testing.T) string {
	t.Helper()
	raw := os.Getenv("PULSAR_URL")
	if raw == "" {
		t.Skip(pulsarSkip)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("prefix", "e2e"+strings.ToLower(watermill.NewShortUUID())+".")
	if a := os.Getenv("PULSAR_ADMIN_URL"); a != "" && !q.Has("admin") {
		q.Set("admin", a)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// TestPulsarEndToEndRouting is TestEndToEndRouting on the pulsar://
// transport: 3 rules, 3 targets, 1,000 events through every ingest form.
func TestPulsarEndToEndRouting(t *testing.T) {
	testEndToEndRouting(t, pulsarTransportURL(t))
}

// TestPulsarSourceToPulsarTarget: records produced to a Pulsar topic by
// another program (binary CloudEvents, structured ones, and raw JSON mapped
// by the source) reach a bus, a rule, and a pulsar target's topic, where
// another consumer reads them.
func TestPulsarSourceToPulsarTarget(t *testing.T) {
	raw := os.Getenv("PULSAR_URL")
	if raw == "" {
		t.Skip(pulsarSkip)
	}
	broker := strings.SplitN(raw, "?", 2)[0]
	run := strings.ToLower(watermill.NewShortUUID())
	in, out := "persistent://public/default/e2e-in-"+run, "persistent://public/default/e2e-out-"+run
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`
buses:
  - name: erp
    partition_key: $.subject
sources:
  - name: tdmq-in
    type: pulsar
    bus: erp
    pulsar: {url: %q, topic: %q}
    mapping: {source: erp.raw, type: $.kind}
rules:
  - name: to-pulsar
    bus: erp
    targets:
      - id: out
        type: pulsar
        pulsar: {url: %q, topic: %q, key: $.subject}
`, broker, in, broker, out))
	client, err := pclient.Dial(pc.ClientOptions{URL: broker, OperationTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	// Subscribe to the output first, so nothing it receives can be lost.
	cons, err := client.Subscribe(pc.ConsumerOptions{Topic: out, SubscriptionName: "e2e", Type: pc.Shared, SubscriptionInitialPosition: pc.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	_, stop := startInProcess(t, cfg, filepath.Join(dir, "data"))
	defer stop()

	prod, err := client.CreateProducer(pc.ProducerOptions{Topic: in})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 300
	for i := 0; i < n; i++ {
		var m pc.ProducerMessage
		switch i % 3 {
		case 0:
			m = pc.ProducerMessage{Payload: []byte(fmt.Sprintf(`{"n":%d}`, i)), Properties: map[string]string{
				"ce_specversion": "1.0", "ce_id": fmt.Sprintf("bin-%d", i), "ce_source": "erp", "ce_type": "t", "ce_subject": "k", "content-type": "application/json"}}
		case 1:
			m = pc.ProducerMessage{Payload: []byte(fmt.Sprintf(`{"specversion":"1.0","id":"st-%d","source":"erp","type":"t","subject":"k","data":{"n":%d}}`, i, i)),
				Properties: map[string]string{"content-type": "application/cloudevents+json"}}
		default:
			m = pc.ProducerMessage{Payload: []byte(fmt.Sprintf(`{"kind":"order.created","n":%d}`, i)), Key: fmt.Sprintf("raw-%d", i)}
		}
		if _, err := prod.Send(ctx, &m); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for len(seen) < n {
		m, err := cons.Receive(ctx)
		if err != nil {
			t.Fatalf("received %d of %d: %v", len(seen), n, err)
		}
		cons.Ack(m)
		p := m.Properties()
		if p["ce_specversion"] != "1.0" || p["ce_id"] == "" {
			t.Fatalf("output message without CloudEvents properties: %v", p)
		}
		var data map[string]any
		if err := json.Unmarshal(m.Payload(), &data); err != nil {
			t.Fatalf("output payload %s: %v", m.Payload(), err)
		}
		seen[fmt.Sprint(data["n"])] = true
	}
	t.Logf("%d events went Pulsar → bus → rule → Pulsar", len(seen))
}

// TestPulsarUnreachable: busbar on a pulsar:// transport nobody listens on
// refuses to start, at once and saying why. Real network, no broker needed.
func TestPulsarUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf("transport: pulsar://%s?connect_timeout=1s&operation_timeout=2s\n", addr))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t0 := time.Now()
	err = serve(ctx, &serveFlags{config: cfg, listen: "127.0.0.1:0", dataDir: filepath.Join(dir, "data"), drainTimeout: time.Second}, testLogger(t), make(chan string, 1))
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("serve: %v", err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("took %v to give up", d)
	}
}
