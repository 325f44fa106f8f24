// Package pipes runs pipes: a source straight into one target, without a
// bus and without a target queue — the high-throughput path, such as a
// Kafka topic into a ClickHouse table.
//
// The path of one record: the source's Consumer (sources/kafka) hands each
// poll over as per-partition chunks; workers turn records into events (the
// Kafka source's own conversion), match the pipe's pattern and filter and
// apply its transform; matching events gather into batches cut by the
// target's batch limits (max_rows, max_bytes, max_wait) and up to
// batch.max_in_flight batches are delivered at once — with DeliverBatch
// when the sink is a sinks.BatchSink (ClickHouse), else with up to the
// target's concurrency of Deliver calls.
//
// A record is settled when it was delivered, skipped (not matched) or
// dead-lettered (not an event, a transform that fails on it, a permanent
// sink error: to busbar.dlq.pipe.<name> on the transport, with the
// reason). A retryable sink error is retried with the target's backoff
// until it succeeds or fails for good, never skipped: the partition's
// commit waits meanwhile, and once max_rows × (max_in_flight + 1) records
// are unsettled the pipe stops polling — backpressure onto the topic. The
// consumer commits per partition only past the longest settled prefix, so
// after a crash records are read again from there: at-least-once, with the
// same ids for mapped records (<topic>-<partition>-<offset>).
//
// It must not know about buses, rules or the engine; the engine starts and
// stops pipes and gives them the transport's publisher for dead letters.
// docs/pipes.md is its manual.
package pipes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/filters"
	"github.com/busbar/busbar/filters/transform"
	"github.com/busbar/busbar/routers"
	"github.com/busbar/busbar/sinks"
	kafkasrc "github.com/busbar/busbar/sources/kafka"
)

// DLQTopic is the dead-letter queue of a pipe on the transport.
func DLQTopic(pipe string) string { return routers.PipeDLQTopic(pipe) }

// Options configure a Pipe.
type Options struct {
	// Pipe is the pipe's config, validated and with its defaults applied.
	Pipe config.Pipe
	// Sink, when not nil, is the target's sink; else Start builds it from
	// Pipe.Target with sinks.New. The pipe closes it either way.
	Sink sinks.Sink
	// DeadLetters receives dead letters on DLQTopic(name).
	DeadLetters message.Publisher
	Logger      *slog.Logger
	// DrainTimeout bounds how long Close waits for records in delivery
	// (default 30s); a revocation waits at most 10s of it.
	DrainTimeout time.Duration
	// Workers convert and match records (default GOMAXPROCS).
	Workers int
}

// Stats count what a pipe did since it started.
type Stats struct {
	Records      int64 // handed out by the source
	Delivered    int64 // accepted by the target
	Skipped      int64 // not matched by the pattern or filter
	DeadLettered int64 // stored on the dead-letter queue
	Retried      int64 // deliveries retried after a retryable error
}

// Pipe is one running pipe.
type Pipe struct {
	name     string
	log      *slog.Logger
	sink     sinks.Sink
	batchIn  sinks.BatchSink // nil when the sink takes one event at a time
	conv     *kafkasrc.Converter
	matcher  filters.Matcher // nil: every event
	tf       *transform.Transformer
	meta     transform.Meta
	dlq      message.Publisher
	conc     int // Deliver calls at once, without batchIn
	backoff  func(attempt int) time.Duration
	limits   limits
	cons     *kafkasrc.Consumer
	work     chan *kafkasrc.Chunk
	acc      *accumulator
	ctx      context.Context // ends after the drain: deliveries give up
	cancel   context.CancelFunc
	stopping chan struct{} // closed after the drain: retries stop waiting
	workers  sync.WaitGroup
	senders  sync.WaitGroup
	dead     sync.WaitGroup // goroutines storing dead letters
	once     sync.Once

	records, delivered, skipped, deadLettered, retried atomic.Int64
}

// limits are the batch limits of the target, defaults filled in.
type limits struct {
	maxRows, maxBytes, inFlight int
	maxWait                     time.Duration
}

// Start builds the pipe's sink (unless given), joins the source's consumer
// group and starts delivering.
func Start(ctx context.Context, o Options) (*Pipe, error) {
	pc := o.Pipe
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 30 * time.Second
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.DeadLetters == nil {
		return nil, errors.New("pipe: a dead-letter publisher is required")
	}
	if pc.Source.Type != config.TypeKafka {
		return nil, fmt.Errorf("pipe %q: source type %q is not supported (use kafka)", pc.Name, pc.Source.Type)
	}
	p := &Pipe{
		name:     pc.Name,
		log:      o.Logger.With("pipe", pc.Name),
		dlq:      o.DeadLetters,
		meta:     transform.Meta{Rule: pc.Name},
		work:     make(chan *kafkasrc.Chunk, 64),
		stopping: make(chan struct{}),
	}
	var err error
	if p.conv, err = kafkasrc.NewConverter(pc.Source.Mapping); err != nil {
		return nil, fmt.Errorf("pipe %q: mapping: %w", pc.Name, err)
	}
	if len(pc.Pattern) > 0 || pc.Filter != "" {
		if p.matcher, err = filters.NewMatcher([]filters.Rule{{Name: pc.Name, Pattern: pc.Pattern, Filter: pc.Filter}}); err != nil {
			return nil, fmt.Errorf("pipe %q: %w", pc.Name, err)
		}
	}
	if p.tf, err = transform.Compile(pc.Transform, transform.Options{}); err != nil {
		return nil, fmt.Errorf("pipe %q: %w", pc.Name, err)
	}
	t := pc.Target
	b := t.Batch
	p.limits = limits{maxRows: orInt(b.MaxRows, config.DefaultBatchMaxRows), maxBytes: orInt(int(b.MaxBytes), config.DefaultBatchMaxBytes),
		inFlight: orInt(b.MaxInFlight, config.DefaultBatchMaxInFlight), maxWait: orDur(b.MaxWait.D(), config.DefaultBatchMaxWait)}
	p.conc = orInt(t.Concurrency, config.DefaultConcurrency)
	initial := orDur(t.Retry.InitialInterval.D(), config.DefaultInitialInterval)
	maxI := orDur(t.Retry.MaxInterval.D(), config.DefaultMaxInterval)
	p.backoff = func(n int) time.Duration { return backoff(initial, maxI, n) }
	p.sink = o.Sink
	if p.sink == nil {
		// A clickhouse sink cuts a batch once its Callers (the target's
		// concurrency) are all waiting; a pipe hands it whole batches, so it
		// must not count callers.
		if t.Type == config.TypeClickHouse {
			t.Concurrency = 0
		}
		if p.sink, err = sinks.New(t); err != nil {
			return nil, fmt.Errorf("pipe %q: %w", pc.Name, err)
		}
	}
	p.batchIn, _ = p.sink.(sinks.BatchSink)
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.acc = newAccumulator(p.limits)
	for range p.limits.inFlight {
		p.senders.Add(1)
		go p.sendLoop()
	}
	for range o.Workers {
		p.workers.Add(1)
		go p.workLoop()
	}
	k := pc.Source.Kafka
	p.cons, err = kafkasrc.StartConsumer(kafkasrc.ConsumerOptions{
		Name:         pc.Name,
		Conn:         kafkasrc.ConnOf(k.Brokers, k.ClientID, k.SASL, k.TLS),
		Topic:        k.Topic,
		Group:        pc.PipeGroup(),
		Start:        k.Start,
		Logger:       p.log,
		MaxPoll:      min(p.limits.maxRows, 10_000),
		MaxUnsettled: p.limits.maxRows * (p.limits.inFlight + 1),
		DrainTimeout: o.DrainTimeout,
		// 0: the default
		SessionTimeout: k.SessionTimeout.D(),
	}, p.handle)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("pipe %q: %w", pc.Name, err)
	}
	p.log.Info("pipe started", "topic", k.Topic, "group", pc.PipeGroup(), "target", t.ID, "type", t.Type,
		"batch_delivery", p.batchIn != nil, "max_rows", p.limits.maxRows, "max_in_flight", p.limits.inFlight)
	return p, nil
}

// Name is the pipe's name.
func (p *Pipe) Name() string { return p.name }

// Stats returns the pipe's counters.
func (p *Pipe) Stats() Stats {
	return Stats{Records: p.records.Load(), Delivered: p.delivered.Load(), Skipped: p.skipped.Load(),
		DeadLettered: p.deadLettered.Load(), Retried: p.retried.Load()}
}

// handle is the consumer's handler: it queues the chunks for the workers.
func (p *Pipe) handle(chunks []*kafkasrc.Chunk) {
	for _, ch := range chunks {
		p.records.Add(int64(len(ch.Records)))
		p.work <- ch
	}
}

// Close stops reading, delivers what was read (up to the drain timeout),
// commits what is settled and closes the sink. Records not settled by then
// are read again at the next start.
func (p *Pipe) Close() error {
	var err error
	p.once.Do(func() {
		if p.cons != nil {
			p.cons.Stop() // no more chunks come
		}
		close(p.work)
		p.workers.Wait()
		p.acc.flush()
		if p.cons != nil {
			err = p.cons.Close() // waits for the chunks in delivery, commits
		}
		p.stop()
	})
	return err
}

// stop ends deliveries and retries, and closes the sink.
func (p *Pipe) stop() {
	close(p.stopping)
	p.cancel()
	p.acc.close()
	p.senders.Wait()
	p.dead.Wait()
	if err := p.sink.Close(); err != nil {
		p.log.Warn("closing the sink", "error", err)
	}
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
