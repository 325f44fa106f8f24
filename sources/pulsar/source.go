package pulsar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	pc "github.com/apache/pulsar-client-go/pulsar"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/pipeline/transport/pulsar/pclient"
	"github.com/busbar/busbar/sources/internal/cerecord"
)

// Publisher is where events go: the buses. The engine implements it (the
// same interface as the other sources').
type Publisher interface {
	// HasBus reports whether a bus of that name exists.
	HasBus(bus string) bool
	// Publish durably appends the records to the bus, in order; nil means
	// every record is stored.
	Publish(ctx context.Context, bus string, records []pipeline.Record) error
}

// DeadLetters stores messages a source could not turn into events.
type DeadLetters interface {
	// DeadLetter stores recs durably for source; nil means all are stored.
	DeadLetter(ctx context.Context, source string, recs []DeadRecord) error
}

// DeadRecord is one message that is not an event, with why.
type DeadRecord struct {
	Topic      string
	MessageID  string // ledger:entry:partition:batch
	Key        string
	Value      []byte
	Properties map[string]string
	Reason     string
}

// Options configure a Source.
type Options struct {
	Name, Bus    string
	Conn         pclient.Conn
	Topic        string
	Subscription string
	// SubscriptionType is key_shared (default), shared, failover or
	// exclusive.
	SubscriptionType string
	Start            string // "earliest", "latest" or an RFC 3339 time
	Mapping          *config.SourceMapping
	Publisher        Publisher
	DeadLetters      DeadLetters
	Logger           *slog.Logger
	// MaxBatch is the most messages published at once (default 500).
	MaxBatch int
	// Dial creates the client (default: the real one, after checking the
	// brokers' TCP addresses answer).
	Dial pclient.Dialer
}

// OptionsFromConfig makes Options of a validated, defaulted source.
func OptionsFromConfig(s config.Source) (Options, error) {
	p := s.Pulsar
	conn, err := pclient.FromConfig(p.URL, p.Token, p.OAuth2, p.TLS)
	if err != nil {
		return Options{}, fmt.Errorf("pulsar source %q: %w", s.Name, err)
	}
	return Options{Name: s.Name, Bus: s.Bus, Conn: conn, Topic: p.Topic, Subscription: s.SourceSubscription(),
		SubscriptionType: p.SubscriptionType, Start: p.Start, Mapping: s.Mapping}, nil
}

var subTypes = map[string]pc.SubscriptionType{
	"": pc.KeyShared, config.PulsarKeyShared: pc.KeyShared, config.PulsarShared: pc.Shared,
	config.PulsarFailover: pc.Failover, config.PulsarExclusive: pc.Exclusive,
}

// Source reads one topic into one bus.
type Source struct {
	o       Options
	log     *slog.Logger
	mapping *cerecord.Mapping
	seekTo  time.Time // zero unless start is a time
	client  pc.Client
	cons    pc.Consumer
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once
}

// Start connects, subscribes and starts reading in the background.
func Start(ctx context.Context, o Options) (*Source, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 500
	}
	if o.Publisher == nil || o.DeadLetters == nil {
		return nil, errors.New("pulsar source: Publisher and DeadLetters are required")
	}
	if !o.Publisher.HasBus(o.Bus) {
		return nil, fmt.Errorf("pulsar source %q: bus %q does not exist", o.Name, o.Bus)
	}
	st, ok := subTypes[o.SubscriptionType]
	if !ok {
		return nil, fmt.Errorf("pulsar source %q: subscription type %q: use key_shared, shared, failover or exclusive", o.Name, o.SubscriptionType)
	}
	m, err := cerecord.Compile(o.Mapping)
	if err != nil {
		return nil, fmt.Errorf("pulsar source %q: %w", o.Name, err)
	}
	s := &Source{o: o, log: o.Logger.With("source", o.Name, "topic", o.Topic), mapping: m, done: make(chan struct{})}
	pos := pc.SubscriptionPositionEarliest
	switch o.Start {
	case "", config.KafkaStartOldest:
	case config.KafkaStartNewest:
		pos = pc.SubscriptionPositionLatest
	default:
		if s.seekTo, err = time.Parse(time.RFC3339, o.Start); err != nil {
			return nil, fmt.Errorf("pulsar source %q: start %q: use earliest, latest or an RFC 3339 time", o.Name, o.Start)
		}
	}
	co, err := o.Conn.ClientOptions(s.log)
	if err != nil {
		return nil, fmt.Errorf("pulsar source %q: %w", o.Name, err)
	}
	dial := o.Dial
	if dial == nil {
		if err := o.Conn.Reachable(ctx); err != nil {
			return nil, fmt.Errorf("pulsar source %q: %w", o.Name, err)
		}
		dial = pclient.Dial
	}
	if s.client, err = dial(co); err != nil {
		return nil, fmt.Errorf("pulsar source %q: %w", o.Name, err)
	}
	// Subscribe is bounded by the operation timeout.
	s.cons, err = s.client.Subscribe(pc.ConsumerOptions{
		Topic:                       o.Topic,
		SubscriptionName:            o.Subscription,
		Type:                        st,
		SubscriptionInitialPosition: pos,
		ReceiverQueueSize:           min(max(o.MaxBatch, 100), 1000),
		NackRedeliveryDelay:         time.Second,
	})
	if err != nil {
		s.client.Close()
		return nil, fmt.Errorf("pulsar source %q: subscribing %s to %s (operation_timeout %v): %w", o.Name, o.Subscription, o.Topic, co.OperationTimeout, err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.run()
	return s, nil
}

// linger is how long a batch waits for more messages once it has one.
const linger = 5 * time.Millisecond

// receive returns the next batch: one message waited for, then whatever
// else arrives within linger, up to MaxBatch.
func (s *Source) receive() ([]pc.Message, error) {
	first, err := s.cons.Receive(s.ctx)
	if err != nil {
		return nil, err
	}
	batch := []pc.Message{first}
	ctx, cancel := context.WithTimeout(s.ctx, linger)
	defer cancel()
	for len(batch) < s.o.MaxBatch {
		m, err := s.cons.Receive(ctx)
		if err != nil {
			break
		}
		batch = append(batch, m)
	}
	return batch, nil
}

func (s *Source) run() {
	defer close(s.done)
	seek := !s.seekTo.IsZero()
	backoff := 100 * time.Millisecond
	for {
		batch, err := s.receive()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			s.log.Warn("pulsar receive failed", "error", err, "retry_in", backoff)
			if !s.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		if seek {
			seek = false
			if batch[0].PublishTime().Before(s.seekTo) {
				// A subscription whose cursor is before start: move it there.
				// What was received is dropped (seeking clears it).
				if err := s.cons.SeekByTime(s.seekTo); err != nil {
					s.log.Warn("pulsar seek to the start time failed; reading from the subscription's position", "start", s.seekTo, "error", err)
				} else {
					s.log.Info("pulsar subscription moved to the start time", "start", s.seekTo)
					continue
				}
			}
		}
		backoff = 100 * time.Millisecond
		for {
			err := s.handle(batch)
			if err == nil {
				break
			}
			s.log.Warn("publishing to the bus failed; the messages will be published again", "bus", s.o.Bus, "messages", len(batch), "retry_in", backoff, "error", err)
			if !s.sleep(backoff) {
				return // not acked: the subscription delivers them again
			}
			backoff = min(2*backoff, 5*time.Second)
		}
		backoff = 100 * time.Millisecond
		ids := make([]pc.MessageID, len(batch))
		for i, m := range batch {
			ids[i] = m.ID()
		}
		if err := s.cons.AckIDList(ids); err != nil && s.ctx.Err() == nil {
			s.log.Warn("pulsar ack failed; these messages may be published again", "error", err)
		}
	}
}

func (s *Source) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// handle publishes the events of batch and dead-letters what is not one.
func (s *Source) handle(batch []pc.Message) error {
	now := time.Now()
	good := make([]pipeline.Record, 0, len(batch))
	var bad []DeadRecord
	for _, m := range batch {
		rec, err := convert(m, s.mapping, now)
		if err != nil {
			bad = append(bad, DeadRecord{Topic: m.Topic(), MessageID: messageID(m.ID()), Key: m.Key(), Value: m.Payload(), Properties: m.Properties(), Reason: err.Error()})
			continue
		}
		good = append(good, rec)
	}
	if len(bad) > 0 {
		if err := s.o.DeadLetters.DeadLetter(s.ctx, s.o.Name, bad); err != nil {
			return fmt.Errorf("dead-lettering %d messages: %w", len(bad), err)
		}
		s.log.Warn("messages are not events; moved to the source's dead-letter queue", "count", len(bad), "first_reason", bad[0].Reason)
	}
	if len(good) == 0 {
		return nil
	}
	return s.o.Publisher.Publish(s.ctx, s.o.Bus, good)
}

// Close stops reading; a batch in hand is finished or left unacked (the
// subscription delivers it again).
func (s *Source) Close() error {
	s.once.Do(func() {
		s.cancel()
		<-s.done
		s.cons.Close()
		s.client.Close()
	})
	return nil
}

// Name is the source's name.
func (s *Source) Name() string { return s.o.Name }

func messageID(id pc.MessageID) string {
	return fmt.Sprintf("%d:%d:%d:%d", id.LedgerID(), id.EntryID(), id.PartitionIdx(), id.BatchIdx())
}
