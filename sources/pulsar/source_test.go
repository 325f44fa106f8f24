package pulsar

// Contract tests of the source against pulsarfake (an in-memory
// implementation of the pulsar-client-go interfaces): how messages become
// events, when they are acked, what happens when the bus refuses, where a
// new subscription starts, Close. They prove nothing about a real broker;
// cmd/busbar's Pulsar end-to-end test (PULSAR_URL) does that. The network
// tests use the real client on refusing and silent ports.

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/pipeline/transport/pulsar/pclient"
	"github.com/busbar/busbar/pipeline/transport/pulsar/pulsarfake"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type bus struct {
	mu     sync.Mutex
	events []map[string]any
	fail   error
	dead   []DeadRecord
}

func (b *bus) HasBus(name string) bool { return name == "erp" }

func (b *bus) Publish(_ context.Context, _ string, recs []pipeline.Record) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail != nil {
		return b.fail
	}
	for _, r := range recs {
		var ev map[string]any
		json.Unmarshal(r.Event, &ev)
		b.events = append(b.events, ev)
	}
	return nil
}

func (b *bus) DeadLetter(_ context.Context, _ string, recs []DeadRecord) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail != nil {
		return b.fail
	}
	b.dead = append(b.dead, recs...)
	return nil
}

func (b *bus) snapshot() ([]map[string]any, []DeadRecord) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]map[string]any(nil), b.events...), append([]DeadRecord(nil), b.dead...)
}

func (b *bus) setFail(err error) {
	b.mu.Lock()
	b.fail = err
	b.mu.Unlock()
}

const topic = "persistent://public/default/sap.orders"

func start(t *testing.T, br *pulsarfake.Broker, bs *bus, o Options) *Source {
	t.Helper()
	o.Name, o.Bus, o.Topic, o.Publisher, o.DeadLetters, o.Dial = "sap", "erp", topic, bs, bs, br.Dial
	if o.Subscription == "" {
		o.Subscription = "busbar.source.sap"
	}
	o.Conn.URL = "pulsar://fake:6650"
	s, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestContractMessagesBecomeEvents(t *testing.T) {
	br := pulsarfake.New()
	defer br.Close()
	bs := &bus{}
	pub := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	br.Publish(topic, pulsarfake.Message{Payload: []byte(`{"specversion":"1.0","id":"s1","source":"erp","type":"t"}`), Properties: map[string]string{"content-type": "application/cloudevents+json"}})
	br.Publish(topic, pulsarfake.Message{Payload: []byte(`{"orderId":"SO-2"}`), Properties: map[string]string{"ce_specversion": "1.0", "ce_id": "b2", "ce_source": "erp", "ce_type": "t", "ce_region": "eu", "content-type": "application/json"}})
	br.Publish(topic, pulsarfake.Message{Payload: []byte(`{"eventType":"order.created","orderId":"SO-3"}`), Key: "SO-3", Publish: pub})
	br.Publish(topic, pulsarfake.Message{Payload: []byte("not json"), Key: "k4", Properties: map[string]string{"x": "y"}})
	br.Publish(topic, pulsarfake.Message{Payload: []byte(`{"eventType":"order.created"}`), Properties: map[string]string{"content-type": "application/cloudevents+json"}})
	start(t, br, bs, Options{Mapping: &config.SourceMapping{Source: "erp.sap", Type: "$.eventType"}})
	waitFor(t, "every message handled", func() bool { ev, dead := bs.snapshot(); return len(ev) == 3 && len(dead) == 2 })
	waitFor(t, "the acks", func() bool { return br.Backlog(topic, "busbar.source.sap") == 0 })
	ev, dead := bs.snapshot()
	if ev[0]["id"] != "s1" || ev[1]["id"] != "b2" || ev[1]["region"] != "eu" || ev[1]["data"].(map[string]any)["orderId"] != "SO-2" {
		t.Errorf("structured and binary events %v", ev[:2])
	}
	m := ev[2]
	if m["source"] != "erp.sap" || m["type"] != "order.created" || m["subject"] != "SO-3" || m["topic"] != topic ||
		m["id"] != topic+"-"+m["messageid"].(string) || m["time"] != "2026-03-04T05:06:07Z" {
		t.Errorf("mapped event %v", m)
	}
	if dead[0].Key != "k4" || string(dead[0].Value) != "not json" || dead[0].Properties["x"] != "y" || !strings.Contains(dead[0].Reason, "mapping type") || dead[0].Topic != topic || dead[0].MessageID == "" {
		t.Errorf("dead letter %+v", dead[0])
	}
	if !strings.Contains(dead[1].Reason, "structured CloudEvent") {
		t.Errorf("dead letter %+v", dead[1])
	}
}

func TestContractNothingAckedUntilTheBusTakesIt(t *testing.T) {
	br := pulsarfake.New()
	defer br.Close()
	bs := &bus{}
	bs.setFail(errors.New("bus unavailable"))
	for i := 0; i < 5; i++ {
		br.Publish(topic, pulsarfake.Message{Payload: []byte(`{"specversion":"1.0","id":"` + string(rune('a'+i)) + `","source":"s","type":"t"}`)})
	}
	start(t, br, bs, Options{})
	time.Sleep(300 * time.Millisecond)
	if n := br.Backlog(topic, "busbar.source.sap"); n != 5 {
		t.Fatalf("backlog %d while the bus refuses, want 5", n)
	}
	bs.setFail(nil)
	waitFor(t, "the events after the bus recovered", func() bool { ev, _ := bs.snapshot(); return len(ev) == 5 })
	waitFor(t, "the acks", func() bool { return br.Backlog(topic, "busbar.source.sap") == 0 })
	ev, _ := bs.snapshot()
	for i, e := range ev {
		if e["id"] != string(rune('a'+i)) {
			t.Errorf("event %d is %v: out of order", i, e["id"])
		}
	}
}

func TestContractCloseLeavesBatchForTheNextWorker(t *testing.T) {
	br := pulsarfake.New()
	defer br.Close()
	bs := &bus{}
	bs.setFail(errors.New("bus unavailable"))
	br.Publish(topic, pulsarfake.Message{Payload: []byte(`{"specversion":"1.0","id":"x","source":"s","type":"t"}`)})
	s := start(t, br, bs, Options{})
	time.Sleep(200 * time.Millisecond)
	t0 := time.Now()
	s.Close()
	if d := time.Since(t0); d > time.Second {
		t.Errorf("Close took %v", d)
	}
	if n := br.OpenClients(); n != 0 {
		t.Errorf("%d clients open after Close", n)
	}
	bs2 := &bus{}
	start(t, br, bs2, Options{})
	waitFor(t, "the next worker to publish it", func() bool { ev, _ := bs2.snapshot(); return len(ev) == 1 })
}

func TestContractStartPositions(t *testing.T) {
	br := pulsarfake.New()
	defer br.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 4; i++ {
		br.Publish(topic, pulsarfake.Message{Payload: []byte(`{"specversion":"1.0","id":"old` + string(rune('0'+i)) + `","source":"s","type":"t"}`), Publish: t0.Add(time.Duration(i) * time.Hour)})
	}
	latest := &bus{}
	start(t, br, latest, Options{Subscription: "latest", Start: "latest"})
	fromTime := &bus{}
	start(t, br, fromTime, Options{Subscription: "from-time", Start: t0.Add(2 * time.Hour).Format(time.RFC3339)})
	earliest := &bus{}
	start(t, br, earliest, Options{Subscription: "earliest"})
	waitFor(t, "earliest to read all", func() bool { ev, _ := earliest.snapshot(); return len(ev) == 4 })
	waitFor(t, "the time start to read from 02:00", func() bool { ev, _ := fromTime.snapshot(); return len(ev) == 2 })
	br.Publish(topic, pulsarfake.Message{Payload: []byte(`{"specversion":"1.0","id":"new","source":"s","type":"t"}`), Publish: t0.Add(5 * time.Hour)})
	waitFor(t, "latest to read the new one", func() bool { ev, _ := latest.snapshot(); return len(ev) == 1 })
	ev, _ := fromTime.snapshot()
	if ev[0]["id"] != "old2" || ev[1]["id"] != "old3" {
		t.Errorf("from 02:00: %v", ev)
	}
	if ev, _ := latest.snapshot(); ev[0]["id"] != "new" {
		t.Errorf("latest: %v", ev)
	}
}

func TestContractSubscriptionTypes(t *testing.T) {
	br := pulsarfake.New()
	defer br.Close()
	start(t, br, &bus{}, Options{Subscription: "a"})
	start(t, br, &bus{}, Options{Subscription: "b", SubscriptionType: config.PulsarFailover})
	subs := br.Subscriptions(topic)
	if subs["a"] != 3 /* KeyShared */ || subs["b"] != 2 /* Failover */ {
		t.Errorf("subscriptions %v", subs)
	}
	_, err := Start(context.Background(), Options{Name: "x", Bus: "nope", Publisher: &bus{}, DeadLetters: &bus{}})
	if err == nil || !strings.Contains(err.Error(), `bus "nope" does not exist`) {
		t.Errorf("unknown bus: %v", err)
	}
}

func noLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for goleak.Find(opt) != nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		goleak.VerifyNone(t, opt)
	})
}

func TestNetworkStartAgainstRefusingPort(t *testing.T) {
	noLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = Start(context.Background(), Options{Name: "sap", Bus: "erp", Topic: "t", Subscription: "s", Publisher: &bus{}, DeadLetters: &bus{},
		Conn: pclient.Conn{URL: "pulsar://" + addr, ConnectTimeout: time.Second, OperationTimeout: 2 * time.Second}})
	if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), `pulsar source "sap"`) {
		t.Fatalf("error %v", err)
	}
}

func TestNetworkStartAgainstSilentListener(t *testing.T) {
	noLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	t0 := time.Now()
	_, err = Start(context.Background(), Options{Name: "sap", Bus: "erp", Topic: "t", Subscription: "s", Publisher: &bus{}, DeadLetters: &bus{},
		Conn: pclient.Conn{URL: "pulsar://" + ln.Addr().String(), ConnectTimeout: time.Second, OperationTimeout: 2 * time.Second}})
	took := time.Since(t0)
	t.Logf("after %v: %v", took.Round(time.Millisecond), err)
	if err == nil || !strings.Contains(err.Error(), "operation_timeout 2s") {
		t.Fatalf("error %v", err)
	}
	if took > 6*time.Second {
		t.Errorf("took %v with operation_timeout 2s", took)
	}
}
