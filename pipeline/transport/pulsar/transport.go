package pulsar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	pc "github.com/apache/pulsar-client-go/pulsar"

	"github.com/busbar/busbar/pipeline/transport"
	"github.com/busbar/busbar/pipeline/transport/pulsar/pclient"
)

func init() {
	transport.Register(Scheme, Open)
	transport.Register(SchemeTLS, Open)
}

// Transport keeps buses, queues and dead-letter queues on Pulsar topics.
type Transport struct {
	cfg    config
	log    *slog.Logger
	client pc.Client
	admin  *admin // nil without admin=
	pub    *Publisher
	noteMu sync.Once

	mu     sync.Mutex
	subs   map[*Subscriber]struct{}
	closed bool
}

// Open opens the transport of a pulsar:// or pulsar+ssl:// URL.
func Open(ctx context.Context, u *url.URL, opts transport.Options) (transport.Transport, error) {
	return OpenTransport(ctx, u, opts, nil)
}

// OpenTransport is Open with the concrete type and the client constructor:
// nil for the real client (the brokers' TCP addresses are dialled first, for
// a clear error when none answers), an in-memory broker's in contract tests.
func OpenTransport(ctx context.Context, u *url.URL, opts transport.Options, dial pclient.Dialer) (*Transport, error) {
	cfg, err := parseURL(u)
	if err != nil {
		return nil, fmt.Errorf("transport %s: %w", redactURL(u), err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	t := &Transport{cfg: cfg, log: opts.Logger.With("transport", "pulsar"), subs: map[*Subscriber]struct{}{}}
	if t.admin, err = newAdmin(cfg, t.log); err != nil {
		return nil, err
	}
	co, err := cfg.conn.ClientOptions(t.log)
	if err != nil {
		return nil, err
	}
	if dial == nil {
		if err := cfg.conn.Reachable(ctx); err != nil {
			return nil, fmt.Errorf("pulsar: %w", err)
		}
		dial = pclient.Dial
	}
	if t.client, err = dial(co); err != nil {
		return nil, fmt.Errorf("pulsar %s: %w", cfg.conn.URL, err)
	}
	if err := t.probe(ctx, co.OperationTimeout); err != nil {
		return nil, err
	}
	t.pub = t.NewPublisher()
	if t.admin == nil {
		t.log.Info("pulsar: no admin URL: topics are created by the brokers on first use and keep the namespace's retention (see docs/pulsar.md)")
	}
	return t, nil
}

// probe looks up the default bus's topic, so a wrong address or credentials
// fail at start with a clear error rather than at the first event. The
// lookup is bounded by the operation timeout; it always ends before probe
// returns, so nothing is left running.
func (t *Transport) probe(ctx context.Context, timeout time.Duration) error {
	topic := t.cfg.Topic("busbar.bus.default")
	done := make(chan error, 1)
	go func() {
		_, err := t.client.TopicPartitions(topic)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.client.Close()
			return fmt.Errorf("pulsar: cannot reach the brokers at %s: looking up %s failed within operation_timeout %v (is it a Pulsar broker, with the right TLS and credentials?): %w", t.cfg.conn.URL, topic, timeout, err)
		}
		return nil
	case <-ctx.Done():
		// Return now; the lookup ends by itself within the timeouts, and
		// the client is closed once it has.
		cl := t.client
		go func() { <-done; cl.Close() }()
		return fmt.Errorf("pulsar: cannot reach the brokers at %s: %w", t.cfg.conn.URL, ctx.Err())
	}
}

// Publisher returns the process's shared publisher; closing it is a no-op
// (Transport.Close closes it).
func (t *Transport) Publisher() message.Publisher { return sharedPublisher{t.pub} }

type sharedPublisher struct{ message.Publisher }

func (sharedPublisher) Close() error { return nil }

// Subscriber returns a subscriber of the consumer group.
func (t *Transport) Subscriber(group string, opts transport.SubscribeOptions) (message.Subscriber, error) {
	return t.NewSubscriber(group, opts)
}

// NewSubscriber is Subscriber with the concrete type.
func (t *Transport) NewSubscriber(group string, opts transport.SubscribeOptions) (*Subscriber, error) {
	if group == "" {
		return nil, errors.New("pulsar: consumer group name is empty")
	}
	s := newSubscriber(t, group, opts)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errors.New("pulsar transport is closed")
	}
	t.subs[s] = struct{}{}
	return s, nil
}

func (t *Transport) forget(s *Subscriber) {
	t.mu.Lock()
	delete(t.subs, s)
	t.mu.Unlock()
}

// PulsarTopic is the full Pulsar topic of a busbar topic.
func (t *Transport) PulsarTopic(topic string) string { return t.cfg.Topic(topic) }

// SubscriptionName is the Pulsar subscription of a busbar group.
func (t *Transport) SubscriptionName(group string) string { return t.cfg.Subscription(group) }

// CreateTopic creates the topic through the admin API (partitioned when the
// URL says partitions=N) unless it exists, and sets its retention: MaxAge
// and MaxBytes, no limit for 0. Without an admin URL it does nothing:
// brokers create topics on first use (allowAutoTopicCreation) and the
// namespace's retention applies.
func (t *Transport) CreateTopic(ctx context.Context, topic string, opts transport.TopicOptions) error {
	if t.admin == nil {
		return nil
	}
	path := topicPath(t.cfg.tenant, t.cfg.namespace, t.cfg.local(topic))
	created, err := t.admin.createTopic(ctx, path, t.cfg.partitions)
	if err != nil {
		return err
	}
	if created {
		t.log.Info("created Pulsar topic", "topic", t.cfg.Topic(topic), "partitions", t.cfg.partitions)
	}
	minutes, mb := retentionOf(opts.MaxAge, opts.MaxBytes, t.cfg.partitions)
	return t.admin.setRetention(ctx, path, minutes, mb)
}

// Close closes the subscribers still open (in parallel), the publisher and
// the client.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	subs := make([]*Subscriber, 0, len(t.subs))
	for s := range t.subs {
		subs = append(subs, s)
	}
	t.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Add(1)
		go func() { defer wg.Done(); s.Close() }()
	}
	wg.Wait()
	err := t.pub.Close()
	t.client.Close()
	if t.admin != nil {
		t.admin.hc.CloseIdleConnections()
	}
	return err
}

// redactURL is u without secrets, for error messages.
func redactURL(u *url.URL) string {
	c := *u
	q := c.Query()
	for _, k := range SecretOptions {
		if q.Has(k) {
			q.Set(k, "xxxxx")
		}
	}
	c.RawQuery = q.Encode()
	return c.Redacted()
}
