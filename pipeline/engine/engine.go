// Package engine builds the running event path from a config: it opens the
// transport, declares every bus, queue and dead-letter topic, and runs one
// watermill router per bus holding the bus's rule router and the dispatchers
// of its targets. It is the only package that knows all the others; none of
// them imports it.
//
// Shutdown drains: the HTTP server stops first (its caller's job), then
// dispatchers stop waiting between retries, routers finish in-flight
// messages (acked or left for redelivery), sinks close, the transport closes.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/filters/transform"
	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/pipeline/transport"
	"github.com/busbar/busbar/routers"
	"github.com/busbar/busbar/sinks"
)

// Options tune an engine beyond its config.
type Options struct {
	// DataDir is where embedded transports keep their files.
	DataDir string
	Logger  *slog.Logger
	// DrainTimeout bounds how long Shutdown waits for in-flight work
	// (default 30s).
	DrainTimeout time.Duration
}

// Engine is the running event path of one config.
type Engine struct {
	cfg      *config.Config
	opts     Options
	log      *slog.Logger
	tr       transport.Transport
	pub      message.Publisher
	buses    map[string]*busRuntime
	queues   []routers.QueueRef
	dead     *routers.DeadLetters // nil when the transport cannot browse
	stopping chan struct{}
	ready    atomic.Bool
	stopOnce sync.Once
	src      sourceSet // sources and partition keys (sources.go)
	pipes    pipeSet   // pipes (pipes.go)
}

type busRuntime struct {
	name    string
	router  *message.Router
	routing *routers.BusRouter
	sinks   []sinks.Sink
	done    chan error
}

// Defaults for what the config does not say.
const (
	defaultRetention    = 7 * 24 * time.Hour
	dlqRetention        = 14 * 24 * time.Hour
	defaultConcurrency  = 64
	routerInFlight      = 256
	defaultDrainTimeout = 30 * time.Second
	// ackWait is how long the transport waits for a handed-out message's
	// ack before giving it to someone else: after a crash, the events that
	// were in delivery come back this long after their hand-out. Handlers
	// that take longer are kept alive by the subscriber's progress signals
	// (every ackWait/3), so it bounds no delivery.
	ackWait = 10 * time.Second
)

// Start opens the transport and starts routing. cfg must be validated and
// have its defaults applied.
func Start(ctx context.Context, cfg *config.Config, opts Options) (*Engine, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = defaultDrainTimeout
	}
	url := cfg.Transport
	if url == "" {
		url = config.DefaultTransport
	}
	tr, err := transport.Open(ctx, url, transport.Options{DataDir: opts.DataDir, Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:      cfg,
		opts:     opts,
		log:      opts.Logger,
		tr:       tr,
		pub:      tr.Publisher(),
		buses:    map[string]*busRuntime{},
		stopping: make(chan struct{}),
	}
	if e.dead, err = routers.NewDeadLetters(tr); err != nil {
		e.log.Info("dead-letter tooling unavailable", "reason", err)
	}
	if err := e.build(ctx); err != nil {
		e.Shutdown(context.Background())
		return nil, err
	}
	for _, b := range e.buses {
		select {
		case <-b.router.Running():
		case err := <-b.done:
			e.Shutdown(context.Background())
			return nil, fmt.Errorf("bus %q: router stopped at start: %v", b.name, err)
		case <-ctx.Done():
			e.Shutdown(context.Background())
			return nil, ctx.Err()
		}
	}
	e.ready.Store(true)
	if err := e.startInputs(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// busNames returns the declared buses plus "default".
func (e *Engine) busList() []config.Bus {
	list := append([]config.Bus(nil), e.cfg.Buses...)
	for _, b := range list {
		if b.Name == config.DefaultBus {
			return list
		}
	}
	return append(list, config.Bus{Name: config.DefaultBus})
}

func (e *Engine) build(ctx context.Context) error {
	for _, bus := range e.busList() {
		retention := bus.Retention.D()
		if retention <= 0 {
			retention = defaultRetention
		}
		if err := e.tr.CreateTopic(ctx, routers.BusTopic(bus.Name), transport.TopicOptions{MaxAge: retention, MaxBytes: bus.MaxBytes}); err != nil {
			return fmt.Errorf("bus %q: %w", bus.Name, err)
		}
		if err := e.tr.CreateTopic(ctx, routers.BusDLQTopic(bus.Name), transport.TopicOptions{MaxAge: dlqRetention}); err != nil {
			return fmt.Errorf("bus %q: %w", bus.Name, err)
		}
		rt, err := e.buildBus(ctx, bus.Name)
		if err != nil {
			return err
		}
		e.buses[bus.Name] = rt
	}
	return nil
}

func (e *Engine) buildBus(ctx context.Context, bus string) (*busRuntime, error) {
	wlog := wmLogger(e.log)
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: e.opts.DrainTimeout}, wlog)
	if err != nil {
		return nil, err
	}
	router.AddMiddleware(middleware.Recoverer)
	rt := &busRuntime{name: bus, router: router, done: make(chan error, 1)}

	var table []routers.RuleTargets
	for _, rule := range e.cfg.Rules {
		if rule.Bus != bus {
			continue
		}
		if rule.IsEnabled() {
			rtg := routers.RuleTargets{Rule: rule.Name, Pattern: rule.Pattern, Filter: rule.Filter}
			for _, t := range rule.Targets {
				rtg.Targets = append(rtg.Targets, t.ID)
			}
			table = append(table, rtg)
		}
		// Dispatchers run for disabled rules too: events queued while the
		// rule was enabled are still delivered.
		for _, t := range rule.Targets {
			if err := e.addDispatcher(ctx, rt, bus, rule.Name, t); err != nil {
				return nil, fmt.Errorf("rule %q target %q: %w", rule.Name, t.ID, err)
			}
		}
	}
	tbl, err := routers.NewTable(bus, table)
	if err != nil {
		return nil, err
	}
	rt.routing = routers.NewBusRouter(bus, tbl, e.pub, e.log)
	sub, err := e.tr.Subscriber(routers.GroupRouter, transport.SubscribeOptions{
		MaxInFlight: routerInFlight, AckWait: ackWait, NackDelay: time.Second, DrainTimeout: e.opts.DrainTimeout,
	})
	if err != nil {
		return nil, err
	}
	router.AddConsumerHandler("route."+bus, routers.BusTopic(bus), sub, rt.routing.Handle)
	go func() { rt.done <- router.Run(context.Background()) }()
	return rt, nil
}

func (e *Engine) addDispatcher(ctx context.Context, rt *busRuntime, bus, rule string, t config.Target) error {
	q, dlq := routers.QueueTopic(bus, rule, t.ID), routers.DLQTopic(bus, rule, t.ID)
	if err := e.tr.CreateTopic(ctx, q, transport.TopicOptions{}); err != nil {
		return err
	}
	if err := e.tr.CreateTopic(ctx, dlq, transport.TopicOptions{MaxAge: dlqRetention}); err != nil {
		return err
	}
	tf, err := transform.Compile(t.Transform, transform.Options{})
	if err != nil {
		return err
	}
	sink, err := sinks.New(t)
	if err != nil {
		return err
	}
	e.queues = append(e.queues, routers.QueueRef{Bus: bus, Rule: rule, Target: t.ID})
	rt.sinks = append(rt.sinks, sink)
	conc := t.Concurrency
	if conc <= 0 {
		conc = defaultConcurrency
	}
	d := routers.NewDispatcher(routers.DispatcherConfig{
		Bus: bus, Rule: rule, Target: t.ID, Sink: sink, Publisher: e.pub, Logger: e.log, Stopping: e.stopping, Transform: tf,
		Policy: routers.RetryPolicy{
			MaxAttempts:     orInt(t.Retry.MaxAttempts, config.DefaultMaxAttempts),
			MaxEventAge:     t.Retry.MaxEventAge.D(),
			InitialInterval: orDur(t.Retry.InitialInterval.D(), 100*time.Millisecond),
			MaxInterval:     orDur(t.Retry.MaxInterval.D(), 30*time.Second),
		},
	})
	sub, err := e.tr.Subscriber(routers.GroupDispatch, transport.SubscribeOptions{
		MaxInFlight: conc, AckWait: ackWait, NackDelay: time.Second, DrainTimeout: e.opts.DrainTimeout,
	})
	if err != nil {
		return err
	}
	rt.router.AddConsumerHandler("dispatch."+rule+"."+t.ID, q, sub, d.Handle)
	return nil
}

// Queues lists the (rule, target) queues of the config.
func (e *Engine) Queues() []routers.QueueRef { return e.queues }

// DeadLetters returns the dead-letter tooling, or nil when the transport
// cannot browse its topics.
func (e *Engine) DeadLetters() *routers.DeadLetters { return e.dead }

// DeadLetterQueues names the dead-letter queues besides the targets': one
// per bus (events its router could not route), pipe and source.
func (e *Engine) DeadLetterQueues() []routers.DLQ {
	var out []routers.DLQ
	for _, b := range e.busList() {
		out = append(out, routers.BusDLQ(b.Name))
	}
	for _, p := range e.cfg.Pipes {
		out = append(out, routers.PipeDLQ(p.Name))
	}
	for _, s := range e.cfg.Sources {
		out = append(out, routers.SourceDLQ(s.Name))
	}
	return out
}

// HasBus reports whether the bus exists.
func (e *Engine) HasBus(bus string) bool {
	_, ok := e.buses[bus]
	return ok
}

// Ready reports whether the engine routes events: started and not stopping.
func (e *Engine) Ready() bool { return e.ready.Load() }

// ErrStopped is returned by Publish after Shutdown began.
var ErrStopped = errors.New("busbar is shutting down")

// Publish durably appends records to a bus; nil means all are stored.
func (e *Engine) Publish(ctx context.Context, bus string, recs []pipeline.Record) error {
	if !e.ready.Load() {
		return ErrStopped
	}
	if _, ok := e.buses[bus]; !ok {
		return fmt.Errorf("bus %q does not exist", bus)
	}
	msgs := make([]*message.Message, len(recs))
	for i, r := range recs {
		m := message.NewMessage(watermill.NewULID(), r.Event)
		m.Metadata.Set(pipeline.MetaEventID, r.ID)
		m.Metadata.Set(pipeline.MetaBus, bus)
		e.setKey(bus, m, r.Event)
		if !r.IngestTime.IsZero() {
			m.Metadata.Set(pipeline.MetaIngestTime, r.IngestTime.UTC().Format(time.RFC3339Nano))
		}
		m.SetContext(ctx)
		msgs[i] = m
	}
	return e.pub.Publish(routers.BusTopic(bus), msgs...)
}

// Shutdown drains and stops the engine. Events not yet delivered stay on
// their queues and are delivered at the next start.
func (e *Engine) Shutdown(ctx context.Context) error {
	var errs []error
	e.stopOnce.Do(func() {
		e.stopInputs()
		e.ready.Store(false)
		close(e.stopping)
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, b := range e.buses {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := b.router.Close(); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("bus %q: %w", b.name, err))
					mu.Unlock()
				}
				for _, s := range b.sinks {
					s.Close()
				}
			}()
		}
		wg.Wait()
		if err := e.tr.Close(); err != nil {
			errs = append(errs, fmt.Errorf("transport: %w", err))
		}
	})
	return errors.Join(errs...)
}

func orInt(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func orDur(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}
