package pulsar

// Contract tests of the sink against pulsarfake (an in-memory implementation
// of the pulsar-client-go interfaces): what message each delivery makes,
// which failures are permanent, Close. They prove nothing about a real
// broker; cmd/busbar's Pulsar end-to-end test (PULSAR_URL) does that. The
// network test at the end uses the real client on a refusing port.

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	pc "github.com/apache/pulsar-client-go/pulsar"
	"go.uber.org/goleak"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/pipeline/transport/pulsar/pclient"
	"github.com/busbar/busbar/pipeline/transport/pulsar/pulsarfake"
	"github.com/busbar/busbar/sinks"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newSink(t *testing.T, o Options) (*Sink, *pulsarfake.Broker) {
	t.Helper()
	b := pulsarfake.New()
	t.Cleanup(b.Close)
	o.Dial = b.Dial
	if o.Conn.URL == "" {
		o.Conn.URL = "pulsar://fake:6650"
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, b
}

const ev = `{"specversion":"1.0","id":"e1","source":"erp","type":"order.created","subject":"SO-1","time":"2026-01-02T03:04:05Z","partitionkey":"C-1","amount":3,"datacontenttype":"application/json","data":{"orderId":"SO-1"}}`

func TestContractBinaryMode(t *testing.T) {
	s, b := newSink(t, Options{Topic: "orders-{$.source}", Batching: true})
	if err := s.Deliver(context.Background(), sinks.Delivery{EventID: "e1", Event: []byte(ev)}); err != nil {
		t.Fatal(err)
	}
	got := b.Messages("orders-erp")
	if len(got) != 1 {
		t.Fatalf("messages on orders-erp: %d (topics %v)", len(got), b.Topics())
	}
	m := got[0]
	if string(m.Payload) != `{"orderId":"SO-1"}` || m.Key != "C-1" {
		t.Errorf("payload %s key %q", m.Payload, m.Key)
	}
	want := map[string]string{"ce_specversion": "1.0", "ce_id": "e1", "ce_source": "erp", "ce_type": "order.created", "ce_subject": "SO-1",
		"ce_time": "2026-01-02T03:04:05Z", "ce_partitionkey": "C-1", "ce_amount": "3", "content-type": "application/json"}
	for k, v := range want {
		if m.Properties[k] != v {
			t.Errorf("property %s = %q, want %q", k, m.Properties[k], v)
		}
	}
	if len(m.Properties) != len(want) {
		t.Errorf("properties %v", m.Properties)
	}
	// Binary data and text data.
	for _, c := range []struct{ ev, payload, ct string }{
		{`{"specversion":"1.0","id":"2","source":"s","type":"t","datacontenttype":"application/octet-stream","data_base64":"AAEC"}`, "\x00\x01\x02", "application/octet-stream"},
		{`{"specversion":"1.0","id":"3","source":"s","type":"t","datacontenttype":"text/plain","data":"héllo"}`, "héllo", "text/plain"},
	} {
		if err := s.Deliver(context.Background(), sinks.Delivery{Event: []byte(c.ev)}); err != nil {
			t.Fatal(err)
		}
		all := b.Messages("orders-s")
		m := all[len(all)-1]
		if string(m.Payload) != c.payload || m.Properties["content-type"] != c.ct {
			t.Errorf("payload %q content-type %q, want %q %q", m.Payload, m.Properties["content-type"], c.payload, c.ct)
		}
	}
}

func TestContractStructuredModeAndTransform(t *testing.T) {
	s, b := newSink(t, Options{Topic: "persistent://acme/ns/audit", Structured: true, Key: "$.subject"})
	if err := s.Deliver(context.Background(), sinks.Delivery{Event: []byte(ev)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Deliver(context.Background(), sinks.Delivery{Event: []byte(ev), Body: []byte("SO-1 created"), ContentType: "text/plain"}); err != nil {
		t.Fatal(err)
	}
	got := b.Messages("persistent://acme/ns/audit")
	if string(got[0].Payload) != ev || got[0].Properties["content-type"] != "application/cloudevents+json; charset=UTF-8" || got[0].Key != "SO-1" {
		t.Errorf("structured %+v", got[0])
	}
	if string(got[1].Payload) != "SO-1 created" || got[1].Properties["content-type"] != "text/plain" {
		t.Errorf("transformed %+v", got[1])
	}
}

func TestContractPermanentAndRetriedFailures(t *testing.T) {
	s, b := newSink(t, Options{Topic: "t-{$.data.region}"})
	err := s.Deliver(context.Background(), sinks.Delivery{Event: []byte(ev)})
	if !sinks.IsPermanent(err) || !strings.Contains(err.Error(), "no value at placeholder") {
		t.Errorf("missing placeholder value: %v (permanent %v)", err, sinks.IsPermanent(err))
	}
	err = s.Deliver(context.Background(), sinks.Delivery{Event: []byte(`{"data":{"region":"a/b"}}`)})
	if !sinks.IsPermanent(err) || !strings.Contains(err.Error(), "not a valid topic name") {
		t.Errorf("invalid topic: %v", err)
	}
	var fault error
	b.SetFault(func(op, topic string) error {
		if op == "send" {
			return fault
		}
		return nil
	})
	good := sinks.Delivery{Event: []byte(`{"data":{"region":"eu"}}`)}
	fault = pc.ErrMessageTooLarge
	if err := s.Deliver(context.Background(), good); !sinks.IsPermanent(err) {
		t.Errorf("message too large: %v, want permanent", err)
	}
	fault = errors.New("connection reset")
	if err := s.Deliver(context.Background(), good); err == nil || sinks.IsPermanent(err) {
		t.Errorf("connection reset: %v, want a retried failure", err)
	}
	fault = nil
	if err := s.Deliver(context.Background(), good); err != nil {
		t.Errorf("after recovery: %v", err)
	}
	if !pclient.Permanent(pc.ErrMessageTooLarge) || pclient.Permanent(context.DeadlineExceeded) {
		t.Error("pclient.Permanent misclassifies")
	}
}

func TestContractCloseClosesClient(t *testing.T) {
	s, b := newSink(t, Options{Topic: "x"})
	if err := s.Deliver(context.Background(), sinks.Delivery{Event: []byte(ev)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := b.OpenClients(); n != 0 {
		t.Errorf("%d clients open after Close", n)
	}
	if err := s.Deliver(context.Background(), sinks.Delivery{Event: []byte(ev)}); !errors.Is(err, ErrClosed) {
		t.Errorf("Deliver after Close: %v", err)
	}
}

func TestContractOptionsFromTarget(t *testing.T) {
	c, err := config.Parse([]byte(`
rules:
  - name: r
    targets:
      - id: p
        type: pulsar
        pulsar: {url: "pulsar+ssl://p:6651", topic: t, mode: structured, compression: zstd, batch_max_messages: 50, token: "file:/run/secrets/none", tls: {verify_hostname: true}}
`), "busbar.yaml")
	if err == nil {
		t.Fatal("a missing token file should fail at load")
	}
	c, err = config.Parse([]byte(`
rules:
  - name: r
    targets:
      - id: p
        type: pulsar
        pulsar: {url: "pulsar+ssl://p:6651", topic: t, mode: structured, compression: zstd, batch_max_messages: 50, tls: {verify_hostname: true}}
`), "busbar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	o, err := OptionsFromTarget(c.Rules[0].Targets[0])
	if err != nil {
		t.Fatal(err)
	}
	if !o.Structured || o.Compression != "zstd" || !o.Batching || o.BatchMaxMsgs != 50 || o.BatchMaxDelay != 10*time.Millisecond || !o.Conn.TLS.VerifyHostname {
		t.Errorf("options %+v", o)
	}
	if cn, _ := pclient.FromConfig("pulsar://h:6650", "file:/run/tok", nil, nil); cn.TokenFile != "/run/tok" || cn.Token != "" {
		t.Errorf("file: token %+v", cn)
	}
}

// TestNetworkDeliverToRefusingPort uses the real client: a delivery to a
// port nobody listens on fails (to be retried) within the operation
// timeout, and Close leaves no goroutine behind.
func TestNetworkDeliverToRefusingPort(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	defer func() {
		deadline := time.Now().Add(5 * time.Second)
		for goleak.Find(opt) != nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		goleak.VerifyNone(t, opt)
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s, err := New(Options{Conn: pclient.Conn{URL: "pulsar://" + addr, ConnectTimeout: time.Second, OperationTimeout: 2 * time.Second}, Topic: "x", Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	err = s.Deliver(context.Background(), sinks.Delivery{Event: []byte(ev)})
	took := time.Since(t0)
	t.Logf("after %v: %v", took.Round(time.Millisecond), err)
	if err == nil || sinks.IsPermanent(err) {
		t.Errorf("error %v, want a failure to retry", err)
	}
	if took > 6*time.Second {
		t.Errorf("took %v with operation_timeout 2s", took)
	}
	s.Close()
}
