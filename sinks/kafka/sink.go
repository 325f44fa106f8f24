package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/pipeline/transport/kafka/kclient"
	"github.com/busbar/busbar/sinks"
	"github.com/busbar/busbar/sinks/internal/cebinding"
)

func init() {
	sinks.Register(config.TypeKafka, func(t config.Target) (sinks.Sink, error) {
		s, err := New(OptionsFromTarget(t))
		if err != nil {
			return nil, fmt.Errorf("target %q: %w", t.ID, err)
		}
		return s, nil
	})
}

// Options configure a Sink.
type Options struct {
	Conn          kclient.Conn
	Topic         string // may hold {$.json.path} placeholders
	Key           string // JSONPath or expression; "" = partitionkey extension
	Structured    bool
	Compression   string // none, gzip, snappy, lz4, zstd
	AcksLeader    bool
	Linger        time.Duration
	BatchMaxBytes int
	// Timeout bounds one Deliver (default 30s).
	Timeout time.Duration
	Logger  *slog.Logger
}

// OptionsFromTarget makes Options of a validated, defaulted kafka target.
func OptionsFromTarget(t config.Target) Options {
	k := t.Kafka
	c := kclient.Conn{Brokers: k.Brokers, ClientID: k.ClientID}
	if k.SASL != nil {
		c.Mechanism, c.User, c.Password = k.SASL.Mechanism, k.SASL.Username, k.SASL.Password
	}
	if k.TLS != nil {
		c.TLS, c.CAFile, c.CertFile, c.KeyFile = k.TLS.Enabled, k.TLS.CAFile, k.TLS.CertFile, k.TLS.KeyFile
		c.ServerName, c.InsecureSkipVerify = k.TLS.ServerName, k.TLS.InsecureSkipVerify
	}
	return Options{
		Conn: c, Topic: k.Topic, Key: k.Key, Structured: k.Mode == config.KafkaModeStruct,
		Compression: k.Compression, AcksLeader: k.Acks == "leader", Linger: k.Linger.D(),
		BatchMaxBytes: k.BatchMaxBytes, Timeout: max(t.Timeout.D(), 30*time.Second),
	}
}

var codecs = map[string]kgo.CompressionCodec{
	"": kgo.SnappyCompression(), "none": kgo.NoCompression(), "gzip": kgo.GzipCompression(),
	"snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
}

// Sink produces events to Kafka.
type Sink struct {
	cl         *kgo.Client
	topic      *cebinding.Topic
	key        func([]byte) string
	structured bool
	timeout    time.Duration
}

// New connects a sink.
func New(o Options) (*Sink, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	tt, err := cebinding.ParseTopic("kafka", o.Topic, topicRE)
	if err != nil {
		return nil, err
	}
	kf, err := kclient.CompileKey(o.Key, "$.partitionkey")
	if err != nil {
		return nil, fmt.Errorf("kafka key: %w", err)
	}
	opts, err := o.Conn.Opts(o.Logger)
	if err != nil {
		return nil, err
	}
	codec, ok := codecs[o.Compression]
	if !ok {
		return nil, fmt.Errorf("kafka compression %q: use none, gzip, snappy, lz4 or zstd", o.Compression)
	}
	// A topic that does not exist is created if the brokers allow it
	// (auto.create.topics.enable), which topic templates rely on.
	opts = append(opts, kgo.ProducerBatchCompression(codec), kgo.ProducerLinger(o.Linger), kgo.MaxBufferedRecords(100_000), kgo.AllowAutoTopicCreation())
	if o.AcksLeader {
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	} else {
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	}
	if o.BatchMaxBytes > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(int32(o.BatchMaxBytes)))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka sink: %w", err)
	}
	return &Sink{cl: cl, topic: tt, key: kf, structured: o.Structured, timeout: o.Timeout}, nil
}

// Deliver produces one record and waits for its acknowledgement.
func (s *Sink) Deliver(ctx context.Context, d sinks.Delivery) error {
	rec, err := s.record(d)
	if err != nil {
		return sinks.Permanent(err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	done := make(chan error, 1)
	s.cl.Produce(ctx, rec, func(_ *kgo.Record, err error) { done <- err })
	if err := <-done; err != nil {
		if permanent(err) {
			return sinks.Permanent(fmt.Errorf("kafka topic %s: %w", rec.Topic, err))
		}
		return fmt.Errorf("kafka topic %s: %w", rec.Topic, err)
	}
	return nil
}

func permanent(err error) bool {
	for _, e := range []error{kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidTopicException,
		kerr.TopicAuthorizationFailed, kerr.InvalidRecord, kerr.CorruptMessage} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// record builds the Kafka record of a delivery: in binary mode the ce_
// headers in the event's order, content-type last.
func (s *Sink) record(d sinks.Delivery) (*kgo.Record, error) {
	topic, err := s.topic.Render(d.Event)
	if err != nil {
		return nil, err
	}
	rec := &kgo.Record{Topic: topic}
	if s.key != nil {
		if k := s.key(d.Event); k != "" {
			rec.Key = []byte(k)
		}
	}
	var ct string
	if s.structured {
		rec.Value, ct = cebinding.Structured(d)
		rec.Headers = []kgo.RecordHeader{{Key: "content-type", Value: []byte(ct)}}
		return rec, nil
	}
	rec.Value, ct, err = cebinding.Binary(d, func(k string, v []byte) {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: k, Value: v})
	})
	if err != nil {
		return nil, err
	}
	if ct != "" {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: "content-type", Value: []byte(ct)})
	}
	return rec, nil
}

// Close flushes buffered records and closes the client.
func (s *Sink) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	err := s.cl.Flush(ctx)
	s.cl.Close()
	return err
}

// topicRE is a Kafka topic name.
var topicRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)
