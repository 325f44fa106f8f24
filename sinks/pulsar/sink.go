package pulsar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	pc "github.com/apache/pulsar-client-go/pulsar"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/pipeline/transport/kafka/kclient"
	"github.com/busbar/busbar/pipeline/transport/pulsar/pclient"
	"github.com/busbar/busbar/sinks"
	"github.com/busbar/busbar/sinks/internal/cebinding"
)

func init() {
	sinks.Register(config.TypePulsar, func(t config.Target) (sinks.Sink, error) {
		o, err := OptionsFromTarget(t)
		if err == nil {
			var s *Sink
			if s, err = New(o); err == nil {
				return s, nil
			}
		}
		return nil, fmt.Errorf("target %q: %w", t.ID, err)
	})
}

// Options configure a Sink.
type Options struct {
	Conn          pclient.Conn
	Topic         string // may hold {$.json.path} placeholders
	Key           string // JSONPath or expression; "" = partitionkey extension
	Structured    bool
	Compression   string // none, lz4, zlib, zstd, snappy
	Batching      bool
	BatchMaxDelay time.Duration
	BatchMaxMsgs  int
	BatchMaxBytes int
	// Timeout bounds one Deliver (default 30s).
	Timeout time.Duration
	Logger  *slog.Logger
	// Dial creates the client (default: the real one).
	Dial pclient.Dialer
}

// OptionsFromTarget makes Options of a validated, defaulted pulsar target.
func OptionsFromTarget(t config.Target) (Options, error) {
	p := t.Pulsar
	c, err := pclient.FromConfig(p.URL, p.Token, p.OAuth2, p.TLS)
	if err != nil {
		return Options{}, err
	}
	return Options{
		Conn: c, Topic: p.Topic, Key: p.Key, Structured: p.Mode == config.KafkaModeStruct,
		Compression: p.Compression, Batching: p.Batching == nil || *p.Batching, BatchMaxDelay: p.BatchMaxDelay.D(),
		BatchMaxMsgs: p.BatchMaxMessages, BatchMaxBytes: p.BatchMaxBytes, Timeout: max(t.Timeout.D(), 30*time.Second),
	}, nil
}

// Sink produces events to Pulsar.
type Sink struct {
	o      Options
	client pc.Client
	topic  *cebinding.Topic
	key    func([]byte) string

	mu        sync.Mutex
	producers map[string]*producerEntry
	closed    bool
	inflight  sync.WaitGroup
}

type producerEntry struct {
	ready chan struct{}
	p     pc.Producer
	err   error
}

// New makes a sink. The client connects lazily: an unreachable cluster
// fails the first deliveries (retried by the dispatcher), not the start.
func New(o Options) (*Sink, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Dial == nil {
		o.Dial = pclient.Dial
	}
	if o.Compression == "" {
		o.Compression = "none"
	}
	if _, ok := pclient.Compressions[o.Compression]; !ok {
		return nil, fmt.Errorf("pulsar compression %q: use none, lz4, zlib, zstd or snappy", o.Compression)
	}
	tt, err := cebinding.ParseTopic("pulsar", o.Topic, topicRE)
	if err != nil {
		return nil, err
	}
	kf, err := kclient.CompileKey(o.Key, "$.partitionkey")
	if err != nil {
		return nil, fmt.Errorf("pulsar key: %w", err)
	}
	co, err := o.Conn.ClientOptions(o.Logger)
	if err != nil {
		return nil, err
	}
	cl, err := o.Dial(co)
	if err != nil {
		return nil, fmt.Errorf("pulsar sink: %w", err)
	}
	return &Sink{o: o, client: cl, topic: tt, key: kf, producers: map[string]*producerEntry{}}, nil
}

func (s *Sink) producer(topic string) (pc.Producer, error) {
	s.mu.Lock()
	e := s.producers[topic]
	if e == nil {
		e = &producerEntry{ready: make(chan struct{})}
		s.producers[topic] = e
		s.mu.Unlock()
		po := pc.ProducerOptions{
			Topic:              topic,
			SendTimeout:        s.o.Timeout,
			DisableBatching:    !s.o.Batching,
			BatcherBuilderType: pc.KeyBasedBatchBuilder,
			CompressionType:    pclient.Compressions[s.o.Compression],
		}
		if s.o.Batching {
			po.BatchingMaxPublishDelay = s.o.BatchMaxDelay
			po.BatchingMaxMessages = uint(max(s.o.BatchMaxMsgs, 0))
			po.BatchingMaxSize = uint(max(s.o.BatchMaxBytes, 0))
		}
		e.p, e.err = s.client.CreateProducer(po)
		if e.err != nil {
			s.mu.Lock()
			delete(s.producers, topic) // the next delivery tries again
			s.mu.Unlock()
		}
		close(e.ready)
	} else {
		s.mu.Unlock()
		<-e.ready
	}
	return e.p, e.err
}

// ErrClosed is returned by Deliver after Close.
var ErrClosed = errors.New("pulsar sink is closed")

// Deliver sends one message and waits for the broker's acknowledgement.
func (s *Sink) Deliver(ctx context.Context, d sinks.Delivery) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.inflight.Add(1)
	s.mu.Unlock()
	defer s.inflight.Done()
	topic, msg, err := s.message(d)
	if err != nil {
		return sinks.Permanent(err)
	}
	p, err := s.producer(topic)
	if err != nil {
		if pclient.Permanent(err) {
			return sinks.Permanent(fmt.Errorf("pulsar topic %s: %w", topic, err))
		}
		return fmt.Errorf("pulsar topic %s: %w", topic, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	if _, err := p.Send(ctx, msg); err != nil {
		if pclient.Permanent(err) {
			return sinks.Permanent(fmt.Errorf("pulsar topic %s: %w", topic, err))
		}
		return fmt.Errorf("pulsar topic %s: %w", topic, err)
	}
	return nil
}

// message builds the topic and message of a delivery.
func (s *Sink) message(d sinks.Delivery) (string, *pc.ProducerMessage, error) {
	topic, err := s.topic.Render(d.Event)
	if err != nil {
		return "", nil, err
	}
	m := &pc.ProducerMessage{Properties: map[string]string{}}
	if s.key != nil {
		m.Key = s.key(d.Event)
	}
	var ct string
	if s.o.Structured {
		m.Payload, ct = cebinding.Structured(d)
		m.Properties["content-type"] = ct
		return topic, m, nil
	}
	m.Payload, ct, err = cebinding.Binary(d, func(k, v string) { m.Properties[k] = v })
	if err != nil {
		return "", nil, err
	}
	if ct != "" {
		m.Properties["content-type"] = ct
	}
	return topic, m, nil
}

// Close waits for deliveries under way, flushes and closes the producers
// and the client.
func (s *Sink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.inflight.Wait()
	var errs []error
	for _, e := range s.producers {
		<-e.ready
		if e.p != nil {
			if err := e.p.Flush(); err != nil {
				errs = append(errs, err)
			}
			e.p.Close()
		}
	}
	s.client.Close()
	return errors.Join(errs...)
}

// topicRE is a Pulsar topic: a short name or a full one.
var topicRE = regexp.MustCompile(`^((persistent|non-persistent)://[A-Za-z0-9_.=:-]+/[A-Za-z0-9_.=:-]+/)?[A-Za-z0-9_.=:-]{1,255}$`)
