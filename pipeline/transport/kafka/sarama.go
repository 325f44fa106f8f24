package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"hash"
	"log/slog"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wmkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busbar/busbar/pipeline/transport"
)

// The kafka+sarama:// path: watermill-kafka/v3 over IBM/sarama, kept
// selectable for comparison and for sites that standardised on Sarama. It
// uses the same topics, groups, headers and key partitioning (murmur2, as
// the Java client and franz-go) as kafka://, so a deployment can switch
// between the two; run every worker of one deployment on the same scheme.
//
// Differences from kafka:// (watermill-kafka's consumer model): each
// partition hands out one message at a time and waits for its ack, so
// MaxInFlight is reached only across partitions; Publish sends messages one
// by one, each waiting for its acknowledgement; SASL SCRAM is not available.

var saramaCompressions = map[string]sarama.CompressionCodec{
	"none":   sarama.CompressionNone,
	"gzip":   sarama.CompressionGZIP,
	"snappy": sarama.CompressionSnappy,
	"lz4":    sarama.CompressionLZ4,
	"zstd":   sarama.CompressionZSTD,
}

func (t *Transport) saramaConfig() (*sarama.Config, error) {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	if err := t.cfg.conn.Sarama(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

func wmLogger(t *Transport) watermill.LoggerAdapter {
	return watermill.NewSlogLoggerWithLevelMapping(t.log, map[slog.Level]slog.Level{
		slog.LevelInfo: slog.LevelDebug,
	})
}

// saramaPublisher wraps watermill-kafka's publisher: topics are mapped,
// declared on first use, and failures reported as a PublishError.
type saramaPublisher struct {
	t   *Transport
	pub *wmkafka.Publisher
}

func newSaramaPublisher(t *Transport) (message.Publisher, error) {
	cfg, err := t.saramaConfig()
	if err != nil {
		return nil, err
	}
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Retry.Max = 10
	cfg.Producer.Timeout = t.cfg.publishTimeout
	cfg.Producer.Compression = saramaCompressions[t.cfg.compression]
	cfg.Producer.Flush.Frequency = t.cfg.linger
	cfg.Producer.Partitioner = sarama.NewCustomPartitioner(sarama.WithAbsFirst(), sarama.WithCustomHashFunction(newMurmur2))
	pub, err := wmkafka.NewPublisher(wmkafka.PublisherConfig{
		Brokers:               t.cfg.conn.Brokers,
		Marshaler:             wmkafka.NewWithPartitioningMarshaler(partitionKey),
		OverwriteSaramaConfig: cfg,
	}, wmLogger(t))
	if err != nil {
		return nil, err
	}
	return &saramaPublisher{t: t, pub: pub}, nil
}

func partitionKey(_ string, m *message.Message) (string, error) {
	return m.Metadata.Get(MetaPartitionKey), nil
}

func (p *saramaPublisher) Publish(topic string, msgs ...*message.Message) error {
	kt := p.t.cfg.Topic(topic)
	ctx, cancel := context.WithTimeout(context.Background(), p.t.cfg.publishTimeout)
	defer cancel()
	if err := p.t.ensureTopic(ctx, kt); err != nil {
		return err
	}
	// watermill-kafka stops at the first failure; everything from there on
	// counts as not stored.
	for i, m := range msgs {
		if err := p.pub.Publish(kt, m); err != nil {
			pe := &transport.PublishError{Topic: topic, Total: len(msgs)}
			for j := i; j < len(msgs); j++ {
				pe.Failed = append(pe.Failed, transport.MessageError{Index: j, UUID: msgs[j].UUID, Err: err})
			}
			return pe
		}
	}
	return nil
}

func (p *saramaPublisher) Close() error { return p.pub.Close() }

// saramaSubscriber runs one watermill-kafka subscriber per Subscribe call,
// in the consumer group GroupID(group, topic).
type saramaSubscriber struct {
	t     *Transport
	group string
	opts  transport.SubscribeOptions

	mu     sync.Mutex
	subs   []*wmkafka.Subscriber
	closed bool
}

func newSaramaSubscriber(t *Transport, group string, opts transport.SubscribeOptions) *saramaSubscriber {
	return &saramaSubscriber{t: t, group: group, opts: opts}
}

func (s *saramaSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	kt := s.t.cfg.Topic(topic)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := s.t.ensureTopic(cctx, kt)
	cancel()
	if err != nil {
		return nil, err
	}
	cfg, err := s.t.saramaConfig()
	if err != nil {
		return nil, err
	}
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Interval = s.t.cfg.commitInterval
	cfg.Consumer.Group.Session.Timeout = s.t.cfg.sessionTimeout
	cfg.Consumer.Group.Heartbeat.Interval = min(3*time.Second, s.t.cfg.sessionTimeout/3)
	cfg.Consumer.Group.Rebalance.Timeout = s.t.cfg.rebalanceTime
	cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategySticky()}
	nack := s.opts.NackDelay
	if nack <= 0 {
		nack = wmkafka.NoSleep
	}
	sub, err := wmkafka.NewSubscriber(wmkafka.SubscriberConfig{
		Brokers:               s.t.cfg.conn.Brokers,
		Unmarshaler:           wmkafka.DefaultMarshaler{},
		OverwriteSaramaConfig: cfg,
		ConsumerGroup:         s.t.cfg.Group(s.group, topic),
		NackResendSleep:       nack,
		ReconnectRetrySleep:   time.Second,
	}, wmLogger(s.t))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sub.Close()
		return nil, errors.New("kafka subscriber is closed")
	}
	s.subs = append(s.subs, sub)
	s.mu.Unlock()
	return sub.Subscribe(ctx, kt)
}

func (s *saramaSubscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	subs := s.subs
	s.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(subs))
	for i, sub := range subs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = sub.Close() }()
	}
	wg.Wait()
	s.t.forget(s)
	return errors.Join(errs...)
}

// murmur2 is Kafka's partitioning hash (the Java client's, franz-go's), so
// a key lands in the same partition whichever client wrote it.
type murmur2 struct{ buf []byte }

func newMurmur2() hash.Hash32 { return &murmur2{} }

func (h *murmur2) Write(p []byte) (int, error) { h.buf = append(h.buf, p...); return len(p), nil }
func (h *murmur2) Reset()                      { h.buf = h.buf[:0] }
func (h *murmur2) Size() int                   { return 4 }
func (h *murmur2) BlockSize() int              { return 4 }
func (h *murmur2) Sum(b []byte) []byte         { return binary.BigEndian.AppendUint32(b, h.Sum32()) }

func (h *murmur2) Sum32() uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	data := h.buf
	length := len(data)
	hh := seed ^ uint32(length)
	for len(data) >= 4 {
		k := binary.LittleEndian.Uint32(data)
		k *= m
		k ^= k >> r
		k *= m
		hh *= m
		hh ^= k
		data = data[4:]
	}
	switch len(data) {
	case 3:
		hh ^= uint32(data[2]) << 16
		fallthrough
	case 2:
		hh ^= uint32(data[1]) << 8
		fallthrough
	case 1:
		hh ^= uint32(data[0])
		hh *= m
	}
	hh ^= hh >> 13
	hh *= m
	hh ^= hh >> 15
	return hh
}
