package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/busbar/busbar/pipeline/transport"
)

func init() {
	transport.Register(SchemeFranz, Open)
	transport.Register(SchemeSarama, Open)
}

// Transport keeps buses, queues and dead-letter queues on Kafka topics.
type Transport struct {
	cfg   config
	log   *slog.Logger
	admin *kgo.Client
	adm   *kadm.Client
	known sync.Map // Kafka topic -> struct{}: exists (declared or seen)
	pub   closablePublisher

	mu     sync.Mutex
	subs   map[message.Subscriber]struct{}
	closed bool
}

type closablePublisher interface {
	message.Publisher
}

// Open opens the transport of a kafka:// or kafka+sarama:// URL.
func Open(ctx context.Context, u *url.URL, opts transport.Options) (transport.Transport, error) {
	return OpenTransport(ctx, u, opts)
}

// OpenTransport is Open with the concrete type, for tests and benchmarks.
func OpenTransport(ctx context.Context, u *url.URL, opts transport.Options) (*Transport, error) {
	cfg, err := parseURL(u)
	if err != nil {
		return nil, fmt.Errorf("transport %s: %w", u.Redacted(), err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	t := &Transport{cfg: cfg, log: opts.Logger.With("transport", cfg.scheme), subs: map[message.Subscriber]struct{}{}}
	copts, err := cfg.conn.Opts(t.log)
	if err != nil {
		return nil, err
	}
	if t.admin, err = kgo.NewClient(copts...); err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	t.adm = kadm.NewClient(t.admin)
	// Reach the cluster now, so a wrong address fails at start with a clear
	// error rather than at the first event.
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := t.adm.BrokerMetadata(pctx); err != nil {
		t.admin.Close()
		return nil, fmt.Errorf("kafka: cannot reach brokers %v: %w", cfg.conn.Brokers, err)
	}
	switch cfg.scheme {
	case SchemeSarama:
		t.pub, err = newSaramaPublisher(t)
	default:
		t.pub, err = t.NewPublisher()
	}
	if err != nil {
		t.admin.Close()
		return nil, err
	}
	return t, nil
}

// Publisher returns the process's shared publisher; closing it is a no-op
// (Transport.Close closes it).
func (t *Transport) Publisher() message.Publisher { return sharedPublisher{t.pub} }

type sharedPublisher struct{ message.Publisher }

func (sharedPublisher) Close() error { return nil }

// Subscriber returns a subscriber of the consumer group.
func (t *Transport) Subscriber(group string, opts transport.SubscribeOptions) (message.Subscriber, error) {
	var s message.Subscriber
	if t.cfg.scheme == SchemeSarama {
		s = newSaramaSubscriber(t, group, opts)
	} else {
		s = t.NewSubscriber(group, opts)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errors.New("kafka transport is closed")
	}
	t.subs[s] = struct{}{}
	return s, nil
}

func (t *Transport) forget(s message.Subscriber) {
	t.mu.Lock()
	delete(t.subs, s)
	t.mu.Unlock()
}

// KafkaTopic is the Kafka topic that holds a busbar topic.
func (t *Transport) KafkaTopic(topic string) string { return t.cfg.Topic(topic) }

// GroupID is the Kafka consumer group of a busbar group on a topic.
func (t *Transport) GroupID(group, topic string) string { return t.cfg.Group(group, topic) }

// CreateTopic creates the topic with the URL's partitions and replication
// when it is missing, and sets its retention (retention.ms from MaxAge,
// retention.bytes from MaxBytes divided among the partitions; 0 means
// unlimited). An existing topic keeps its partition count.
func (t *Transport) CreateTopic(ctx context.Context, topic string, opts transport.TopicOptions) error {
	kt := t.cfg.Topic(topic)
	configs := map[string]*string{
		"retention.ms":    ptr("-1"),
		"retention.bytes": ptr("-1"),
	}
	if opts.MaxAge > 0 {
		configs["retention.ms"] = ptr(strconv.FormatInt(opts.MaxAge.Milliseconds(), 10))
	}
	if opts.MaxBytes > 0 {
		configs["retention.bytes"] = ptr(strconv.FormatInt(max(opts.MaxBytes/int64(t.cfg.partitions), 1), 10))
	}
	if err := t.create(ctx, kt, configs); err != nil {
		return err
	}
	var alters []kadm.AlterConfig
	for k, v := range configs {
		alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: v})
	}
	res, err := t.adm.AlterTopicConfigs(ctx, alters, kt)
	if err == nil {
		for _, r := range res {
			err = errors.Join(err, r.Err)
		}
	}
	if err != nil {
		return fmt.Errorf("kafka topic %s: setting retention: %w", kt, err)
	}
	return nil
}

// create creates a Kafka topic unless it exists.
func (t *Transport) create(ctx context.Context, kt string, configs map[string]*string) error {
	res, err := t.adm.CreateTopics(ctx, t.cfg.partitions, t.cfg.replication, configs, kt)
	if err == nil {
		var r kadm.CreateTopicResponse
		if r, err = res.On(kt, nil); err == nil {
			err = r.Err
		}
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("kafka topic %s: %w", kt, err)
	}
	if err == nil {
		t.log.Info("created Kafka topic", "topic", kt, "partitions", t.cfg.partitions)
	}
	t.known.Store(kt, struct{}{})
	return nil
}

// ensureTopic creates a topic nobody declared, with the broker's default
// retention, unless auto_create=false.
func (t *Transport) ensureTopic(ctx context.Context, kt string) error {
	if _, ok := t.known.Load(kt); ok {
		return nil
	}
	if !t.cfg.autoCreate {
		res, err := t.adm.ListTopics(ctx, kt)
		if err != nil {
			return fmt.Errorf("kafka topic %s: %w", kt, err)
		}
		if !res.Has(kt) {
			return fmt.Errorf("kafka topic %s does not exist and auto_create=false (create it, or drop auto_create=false)", kt)
		}
		t.known.Store(kt, struct{}{})
		return nil
	}
	return t.create(ctx, kt, nil)
}

// Close closes the subscribers still open (in parallel), the publisher and
// the admin client.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	subs := make([]message.Subscriber, 0, len(t.subs))
	for s := range t.subs {
		subs = append(subs, s)
	}
	t.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(subs)+1)
	for i, s := range subs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.Close() }()
	}
	wg.Wait()
	errs[len(subs)] = t.pub.Close()
	t.admin.Close()
	return errors.Join(errs...)
}

func ptr(s string) *string { return &s }

// newPublisher opens a publisher of the URL's client path with its own
// client (Publisher() is the shared one).
func (t *Transport) newPublisher() (message.Publisher, error) {
	if t.cfg.scheme == SchemeSarama {
		return newSaramaPublisher(t)
	}
	return t.NewPublisher()
}
