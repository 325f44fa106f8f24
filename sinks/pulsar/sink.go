package pulsar

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	pc "github.com/apache/pulsar-client-go/pulsar"
	"github.com/buger/jsonparser"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/pipeline/transport/kafka/kclient"
	"github.com/busbar/busbar/pipeline/transport/pulsar/pclient"
	"github.com/busbar/busbar/sinks"
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
	topic  *topicTemplate
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
	tt, err := parseTopic(o.Topic)
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
	topic, err := s.topic.render(d.Event)
	if err != nil {
		return "", nil, err
	}
	m := &pc.ProducerMessage{Properties: map[string]string{}}
	if s.key != nil {
		m.Key = s.key(d.Event)
	}
	if s.o.Structured {
		m.Payload = d.Event
		ct := "application/cloudevents+json; charset=UTF-8"
		if d.Body != nil {
			m.Payload, ct = d.Body, d.ContentType
		}
		m.Properties["content-type"] = ct
		return topic, m, nil
	}
	// Binary mode: every attribute as a ce_ property, data as the payload.
	var data []byte
	var dataType jsonparser.ValueType
	var b64, ct string
	err = jsonparser.ObjectEach(d.Event, func(k, v []byte, typ jsonparser.ValueType, _ int) error {
		name := string(k)
		switch name {
		case "data":
			data, dataType = v, typ
			return nil
		case "data_base64":
			b64 = string(v)
			return nil
		case "datacontenttype":
			ct = string(v)
			return nil
		}
		val := string(v)
		if typ == jsonparser.String {
			s, err := jsonparser.ParseString(v)
			if err != nil {
				return err
			}
			val = s
		}
		m.Properties["ce_"+name] = val
		return nil
	})
	if err != nil {
		return "", nil, fmt.Errorf("event is not a JSON object: %w", err)
	}
	switch {
	case d.Body != nil:
		m.Payload, ct = d.Body, d.ContentType
	case b64 != "":
		if m.Payload, err = base64.StdEncoding.DecodeString(b64); err != nil {
			return "", nil, fmt.Errorf("data_base64: %w", err)
		}
	case dataType == jsonparser.String && !isJSONType(ct):
		s, err := jsonparser.ParseString(data)
		if err != nil {
			return "", nil, err
		}
		m.Payload = []byte(s)
	case data != nil:
		m.Payload = data
		if ct == "" {
			ct = "application/json"
		}
	}
	if ct != "" {
		m.Properties["content-type"] = ct
	}
	return topic, m, nil
}

func isJSONType(ct string) bool {
	media, _, _ := strings.Cut(ct, ";")
	media = strings.TrimSpace(strings.ToLower(media))
	return media == "" || media == "application/json" || strings.HasSuffix(media, "+json") || media == "text/json"
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

// topicTemplate is a topic with {$.json.path} placeholders.
type topicTemplate struct {
	parts []string
	keys  [][]string
}

var placeholderRE = regexp.MustCompile(`\{(\$[^{}]*)\}`)

// topicRE is a Pulsar topic: a short name or a full one.
var topicRE = regexp.MustCompile(`^((persistent|non-persistent)://[A-Za-z0-9_.=:-]+/[A-Za-z0-9_.=:-]+/)?[A-Za-z0-9_.=:-]{1,255}$`)

func parseTopic(t string) (*topicTemplate, error) {
	if t == "" {
		return nil, errors.New("pulsar topic is missing")
	}
	tt := &topicTemplate{}
	last := 0
	for _, m := range placeholderRE.FindAllStringSubmatchIndex(t, -1) {
		keys, err := kclient.PathKeys(t[m[2]:m[3]])
		if err != nil {
			return nil, fmt.Errorf("pulsar topic %q: %w", t, err)
		}
		tt.parts = append(tt.parts, t[last:m[0]])
		tt.keys = append(tt.keys, keys)
		last = m[1]
	}
	tt.parts = append(tt.parts, t[last:])
	return tt, nil
}

func (tt *topicTemplate) render(ev []byte) (string, error) {
	if len(tt.keys) == 0 {
		return tt.parts[0], nil
	}
	var b strings.Builder
	for i, keys := range tt.keys {
		b.WriteString(tt.parts[i])
		v, typ, _, err := jsonparser.Get(ev, keys...)
		if err != nil || typ == jsonparser.Null {
			return "", fmt.Errorf("pulsar topic: the event has no value at placeholder %d", i+1)
		}
		if typ == jsonparser.String {
			s, err := jsonparser.ParseString(v)
			if err != nil {
				return "", err
			}
			v = []byte(s)
		}
		b.Write(v)
	}
	b.WriteString(tt.parts[len(tt.parts)-1])
	topic := b.String()
	if !topicRE.MatchString(topic) {
		return "", fmt.Errorf("pulsar topic %q from the event is not a valid topic name", topic)
	}
	return topic, nil
}
