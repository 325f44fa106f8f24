package kafka

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/buger/jsonparser"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/pipeline/transport/kafka/kclient"
	"github.com/busbar/busbar/sinks"
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
	topic      *topicTemplate
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
	tt, err := parseTopic(o.Topic)
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

// record builds the Kafka record of a delivery.
func (s *Sink) record(d sinks.Delivery) (*kgo.Record, error) {
	topic, err := s.topic.render(d.Event)
	if err != nil {
		return nil, err
	}
	rec := &kgo.Record{Topic: topic}
	if s.key != nil {
		if k := s.key(d.Event); k != "" {
			rec.Key = []byte(k)
		}
	}
	if s.structured {
		rec.Value = d.Event
		ct := "application/cloudevents+json; charset=UTF-8"
		if d.Body != nil {
			rec.Value, ct = d.Body, d.ContentType
		}
		rec.Headers = []kgo.RecordHeader{{Key: "content-type", Value: []byte(ct)}}
		return rec, nil
	}
	// Binary mode: every attribute as a ce_ header, data as the value.
	var data []byte
	var dataType jsonparser.ValueType
	var b64 string
	ct := ""
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
		val := v
		if typ == jsonparser.String {
			s, err := jsonparser.ParseString(v)
			if err != nil {
				return err
			}
			val = []byte(s)
		}
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: "ce_" + name, Value: val})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("event is not a JSON object: %w", err)
	}
	switch {
	case d.Body != nil:
		rec.Value, ct = d.Body, d.ContentType
	case b64 != "":
		if rec.Value, err = base64.StdEncoding.DecodeString(b64); err != nil {
			return nil, fmt.Errorf("data_base64: %w", err)
		}
	case dataType == jsonparser.String && !isJSONType(ct):
		s, err := jsonparser.ParseString(data)
		if err != nil {
			return nil, err
		}
		rec.Value = []byte(s)
	case data != nil:
		rec.Value = data
		if ct == "" {
			ct = "application/json"
		}
	}
	if ct != "" {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: "content-type", Value: []byte(ct)})
	}
	return rec, nil
}

func isJSONType(ct string) bool {
	media, _, _ := strings.Cut(ct, ";")
	media = strings.TrimSpace(strings.ToLower(media))
	return media == "" || media == "application/json" || strings.HasSuffix(media, "+json") || media == "text/json"
}

// Close flushes buffered records and closes the client.
func (s *Sink) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	err := s.cl.Flush(ctx)
	s.cl.Close()
	return err
}

// topicTemplate is a topic with {$.json.path} placeholders.
type topicTemplate struct {
	parts []string   // literal text between placeholders
	keys  [][]string // jsonparser keys of each placeholder
}

var placeholderRE = regexp.MustCompile(`\{(\$[^{}]*)\}`)
var topicRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)

func parseTopic(t string) (*topicTemplate, error) {
	if t == "" {
		return nil, errors.New("kafka topic is missing")
	}
	tt := &topicTemplate{}
	last := 0
	for _, m := range placeholderRE.FindAllStringSubmatchIndex(t, -1) {
		keys, err := kclient.PathKeys(t[m[2]:m[3]])
		if err != nil {
			return nil, fmt.Errorf("kafka topic %q: %w", t, err)
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
			return "", fmt.Errorf("kafka topic: the event has no value at placeholder %d", i+1)
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
		return "", fmt.Errorf("kafka topic %q from the event is not a valid topic name", topic)
	}
	return topic, nil
}
