package routers

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/filters/transform"
	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/sinks"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// recorder is a Publisher that keeps what was published, per topic.
type recorder struct {
	mu   sync.Mutex
	msgs map[string][]*message.Message
	fail error
}

func (r *recorder) Publish(topic string, msgs ...*message.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	if r.msgs == nil {
		r.msgs = map[string][]*message.Message{}
	}
	r.msgs[topic] = append(r.msgs[topic], msgs...)
	return nil
}
func (r *recorder) Close() error { return nil }

func (r *recorder) topics() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var t []string
	for k := range r.msgs {
		t = append(t, k)
	}
	sort.Strings(t)
	return t
}

func busMsg(payload string) *message.Message {
	m := message.NewMessage("u1", []byte(payload))
	m.Metadata.Set(pipeline.MetaEventID, "e-1")
	return m
}

func TestBusRouterHandsOffToEachMatchedTarget(t *testing.T) {
	table, err := NewTable("retail", []RuleTargets{
		{Rule: "orders", Pattern: []byte(`{"type":["order.created"]}`), Targets: []string{"inventory", "finance"}},
		{Rule: "erp", Pattern: []byte(`{"source":[{"prefix":"erp"}]}`), Targets: []string{"audit"}},
		{Rule: "stock", Pattern: []byte(`{"type":["stock.in"]}`), Targets: []string{"inventory"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	pub := &recorder{}
	r := NewBusRouter("retail", table, pub, quiet)
	if err := r.Handle(busMsg(`{"specversion":"1.0","id":"e-1","source":"erp.sap","type":"order.created"}`)); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"busbar.q.retail.erp.audit",
		"busbar.q.retail.orders.finance",
		"busbar.q.retail.orders.inventory",
	}
	got := pub.topics()
	if len(got) != len(want) {
		t.Fatalf("topics = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("topics = %v, want %v", got, want)
		}
	}
	c := pub.msgs["busbar.q.retail.orders.finance"][0]
	if c.Metadata.Get(pipeline.MetaEventID) != "e-1" || string(c.Payload) == "" {
		t.Errorf("copy lost payload or metadata: %v", c)
	}
	if c.Metadata.Get(pipeline.MetaRule) != "orders" || c.Metadata.Get(pipeline.MetaTarget) != "finance" {
		t.Errorf("copy does not name its rule and target: %v", c.Metadata)
	}
}

func TestBusRouterFailsWhenAHandOffFails(t *testing.T) {
	table, _ := NewTable("b", []RuleTargets{{Rule: "all", Targets: []string{"a", "b"}}})
	pub := &recorder{fail: errors.New("disk full")}
	r := NewBusRouter("b", table, pub, quiet)
	if err := r.Handle(busMsg(`{"type":"x"}`)); err == nil {
		t.Fatal("hand-off failure must nack the bus message")
	}
}

func TestBusRouterParksPoisonMessages(t *testing.T) {
	table, _ := NewTable("b", []RuleTargets{{Rule: "all", Targets: []string{"a"}}})
	pub := &recorder{}
	r := NewBusRouter("b", table, pub, quiet)
	if err := r.Handle(busMsg(`{not json`)); err != nil {
		t.Fatal(err)
	}
	dl := pub.msgs[BusDLQTopic("b")]
	if len(dl) != 1 || dl[0].Metadata.Get(pipeline.MetaError) == "" {
		t.Fatalf("poison message not dead-lettered with a reason: %v", pub.msgs)
	}
}

func TestBusRouterSwap(t *testing.T) {
	t1, _ := NewTable("b", []RuleTargets{{Rule: "r1", Pattern: []byte(`{"type":["a"]}`), Targets: []string{"x"}}})
	t2, _ := NewTable("b", []RuleTargets{{Rule: "r2", Pattern: []byte(`{"type":["a"]}`), Targets: []string{"y"}}})
	pub := &recorder{}
	r := NewBusRouter("b", t1, pub, quiet)
	r.Swap(t2)
	if err := r.Handle(busMsg(`{"type":"a"}`)); err != nil {
		t.Fatal(err)
	}
	if got := pub.topics(); len(got) != 1 || got[0] != "busbar.q.b.r2.y" {
		t.Fatalf("after swap: %v", got)
	}
}

// scriptedSink answers with the next error of its script, then nil.
type scriptedSink struct {
	mu     sync.Mutex
	script []error
	calls  int
}

func (s *scriptedSink) Deliver(ctx context.Context, d sinks.Delivery) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if len(s.script) == 0 {
		return nil
	}
	err := s.script[0]
	s.script = s.script[1:]
	return err
}
func (s *scriptedSink) Close() error { return nil }

func newDispatcher(sink sinks.Sink, pub message.Publisher, max int, stopping chan struct{}) *Dispatcher {
	if stopping == nil {
		stopping = make(chan struct{})
	}
	return NewDispatcher(DispatcherConfig{
		Bus: "b", Rule: "r", Target: "t", Sink: sink, Publisher: pub, Logger: quiet, Stopping: stopping,
		Policy: RetryPolicy{MaxAttempts: max, InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond},
	})
}

func TestDispatcherRetriesThenDelivers(t *testing.T) {
	sink := &scriptedSink{script: []error{errors.New("503"), errors.New("reset")}}
	pub := &recorder{}
	if err := newDispatcher(sink, pub, 5, nil).Handle(busMsg(`{}`)); err != nil {
		t.Fatal(err)
	}
	if sink.calls != 3 || len(pub.topics()) != 0 {
		t.Fatalf("calls = %d, dlq = %v", sink.calls, pub.topics())
	}
}

func TestDispatcherDeadLettersPermanentFailureAtOnce(t *testing.T) {
	sink := &scriptedSink{script: []error{sinks.Permanent(&sinks.StatusError{Status: 400, Err: errors.New("400 Bad Request")})}}
	pub := &recorder{}
	if err := newDispatcher(sink, pub, 5, nil).Handle(busMsg(`{}`)); err != nil {
		t.Fatal(err)
	}
	dl := pub.msgs[DLQTopic("b", "r", "t")]
	if sink.calls != 1 || len(dl) != 1 {
		t.Fatalf("calls = %d, dlq = %d", sink.calls, len(dl))
	}
	md := dl[0].Metadata
	if md.Get(pipeline.MetaAttempts) != "1" || md.Get(pipeline.MetaError) != "400 Bad Request" ||
		md.Get(pipeline.MetaStatus) != "400" || md.Get(pipeline.MetaReason) != ReasonPermanent ||
		md.Get(pipeline.MetaFirstAttempt) == "" || md.Get(pipeline.MetaLastAttempt) == "" || md.Get(pipeline.MetaEventID) != "e-1" {
		t.Errorf("dead letter metadata = %v", md)
	}
}

func TestDispatcherDeadLettersWhenRetriesExhausted(t *testing.T) {
	e := errors.New("500")
	sink := &scriptedSink{script: []error{e, e, e, e}}
	pub := &recorder{}
	if err := newDispatcher(sink, pub, 3, nil).Handle(busMsg(`{}`)); err != nil {
		t.Fatal(err)
	}
	dl := pub.msgs[DLQTopic("b", "r", "t")]
	if sink.calls != 3 || len(dl) != 1 || dl[0].Metadata.Get(pipeline.MetaAttempts) != "3" {
		t.Fatalf("calls = %d, dlq = %v", sink.calls, dl)
	}
}

func TestDispatcherDeadLettersEventsPastMaxAge(t *testing.T) {
	e := errors.New("503")
	sink := &scriptedSink{script: []error{e, e, e, e, e, e, e, e, e, e, e, e, e, e, e, e, e, e, e, e, e}}
	pub := &recorder{}
	d := NewDispatcher(DispatcherConfig{
		Bus: "b", Rule: "r", Target: "t", Sink: sink, Publisher: pub, Logger: quiet, Stopping: make(chan struct{}),
		Policy: RetryPolicy{MaxAttempts: 1000, MaxEventAge: 300 * time.Millisecond, InitialInterval: 20 * time.Millisecond, MaxInterval: time.Hour},
	})
	m := busMsg(`{}`)
	m.Metadata.Set(pipeline.MetaIngestTime, time.Now().Add(-200*time.Millisecond).UTC().Format(time.RFC3339Nano))
	start := time.Now()
	if err := d.Handle(m); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 80*time.Millisecond || took > 2*time.Second {
		t.Errorf("gave up after %v; the event had 100ms left", took)
	}
	dl := pub.msgs[DLQTopic("b", "r", "t")]
	if len(dl) != 1 || dl[0].Metadata.Get(pipeline.MetaReason) != ReasonMaxAge {
		t.Fatalf("dlq = %v", dl)
	}
}

func TestDispatcherKeepsEventWhenDLQFails(t *testing.T) {
	sink := &scriptedSink{script: []error{sinks.Permanent(errors.New("400"))}}
	pub := &recorder{fail: errors.New("transport closed")}
	if err := newDispatcher(sink, pub, 1, nil).Handle(busMsg(`{}`)); err == nil {
		t.Fatal("an event that could not be dead-lettered must be nacked")
	}
}

func TestDispatcherStopsWaitingOnShutdown(t *testing.T) {
	e := &sinks.RetryAfterError{Err: errors.New("429"), After: time.Hour}
	sink := &scriptedSink{script: []error{e}}
	stopping := make(chan struct{})
	d := newDispatcher(sink, &recorder{}, 5, stopping)
	done := make(chan error)
	go func() { done <- d.Handle(busMsg(`{}`)) }()
	time.Sleep(20 * time.Millisecond)
	close(stopping)
	select {
	case err := <-done:
		if !errors.Is(err, ErrStopping) {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("dispatcher kept waiting for Retry-After after shutdown began")
	}
}

func TestBackoffIsBoundedFullJitter(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 10, InitialInterval: 100 * time.Millisecond, MaxInterval: time.Second}
	for n := 1; n < 12; n++ {
		ceil := 100 * time.Millisecond << (n - 1)
		if ceil > time.Second || ceil <= 0 {
			ceil = time.Second
		}
		for i := 0; i < 200; i++ {
			if b := p.Backoff(n); b < 0 || b > ceil {
				t.Fatalf("Backoff(%d) = %v outside [0,%v]", n, b, ceil)
			}
		}
	}
}

func TestDispatcherDeadLettersWhatCannotBeTransformed(t *testing.T) {
	tf, err := transform.Compile(&config.Transform{Form: "data"}, transform.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sink := &scriptedSink{}
	pub := &recorder{}
	d := NewDispatcher(DispatcherConfig{Bus: "b", Rule: "r", Target: "t", Sink: sink, Publisher: pub, Logger: quiet,
		Stopping: make(chan struct{}), Policy: RetryPolicy{MaxAttempts: 5}, Transform: tf})
	if err := d.Handle(busMsg(`{"specversion":"1.0","data":`)); err != nil {
		t.Fatal(err)
	}
	dl := pub.msgs[DLQTopic("b", "r", "t")]
	if sink.calls != 0 || len(dl) != 1 || dl[0].Metadata.Get(pipeline.MetaReason) != ReasonTransform {
		t.Fatalf("calls %d, dlq %v", sink.calls, dl)
	}
	if err := d.Handle(busMsg(`{"specversion":"1.0","data":{"a":1}}`)); err != nil || sink.calls != 1 {
		t.Fatalf("a good event after a bad one: %v, calls %d", err, sink.calls)
	}
}
