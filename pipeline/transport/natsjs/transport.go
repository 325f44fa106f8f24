package natsjs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/busbar/busbar/pipeline/transport"
)

func init() {
	transport.Register("embedded", Open)
	transport.Register("nats", Open)
}

// Transport is a busbar transport over NATS JetStream, embedded in the
// process (embedded://) or external (nats://).
type Transport struct {
	cfg    config
	log    *slog.Logger
	server *embeddedServer // nil for nats://

	mgmt *nats.Conn // CreateTopic and stream look-ups
	js   jetstream.JetStream
	pub  *Publisher

	mu     sync.Mutex
	closed bool
	subs   map[*Subscriber]struct{}
}

var _ transport.Transport = (*Transport)(nil)

// Open opens the transport of an embedded:// or nats:// URL. It is the
// transport.Factory registered for both schemes.
func Open(ctx context.Context, u *url.URL, opts transport.Options) (transport.Transport, error) {
	return OpenTransport(ctx, u, opts)
}

// OpenTransport is Open with the concrete type, for tests and benchmarks
// that need Server.
func OpenTransport(ctx context.Context, u *url.URL, opts transport.Options) (*Transport, error) {
	cfg, err := parseURL(u)
	if err != nil {
		return nil, fmt.Errorf("transport URL %q: %w", u.Redacted(), err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	t := &Transport{cfg: cfg, log: log.With("transport", u.Scheme), subs: map[*Subscriber]struct{}{}}
	if cfg.embedded {
		if t.server, err = startServer(ctx, opts.DataDir, cfg, t.log); err != nil {
			return nil, err
		}
	}
	fail := func(err error) (*Transport, error) {
		t.closeConns()
		if t.server != nil {
			t.server.stop()
		}
		return nil, err
	}
	if t.mgmt, err = t.connect("busbar-admin"); err != nil {
		return fail(err)
	}
	if t.js, err = jetstream.New(t.mgmt); err != nil {
		return fail(fmt.Errorf("jetstream: %w", err))
	}
	// Fail now, not at the first publish, if the server has no JetStream.
	if _, err := t.js.AccountInfo(ctx); err != nil {
		return fail(fmt.Errorf("NATS server at %s: JetStream not available: %w", t.where(), err))
	}
	if t.pub, err = newPublisher(t); err != nil {
		return fail(err)
	}
	return t, nil
}

func (t *Transport) where() string {
	if t.server != nil {
		return "embedded"
	}
	return t.cfg.servers
}

// connect opens one NATS connection (one per component: admin, publisher,
// each subscriber). While disconnected, publishes fail at once instead of
// piling up in a reconnect buffer.
func (t *Transport) connect(name string) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.ReconnectBufSize(-1),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				t.log.Warn("NATS connection lost", "conn", name, "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { t.log.Info("NATS connection restored", "conn", name) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			t.log.Warn("NATS async error", "conn", name, "err", err)
		}),
	}
	url := t.cfg.servers
	if t.server != nil {
		opts = append(opts, nats.InProcessServer(t.server.srv))
		url = ""
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS (%s) as %s: %w", t.where(), name, err)
	}
	return nc, nil
}

// Server is the embedded NATS server, or nil for nats://. Exposed for tests
// and benchmarks (for example to simulate a broker crash).
func (t *Transport) Server() *server.Server {
	if t.server == nil {
		return nil
	}
	return t.server.srv
}

// Publisher returns the process-wide publisher; its Close is a no-op
// (Transport.Close closes it).
func (t *Transport) Publisher() message.Publisher { return sharedPublisher{t.pub} }

// Subscriber returns a subscriber consuming as the durable consumer group
// group. Each subscriber has its own NATS connection.
func (t *Transport) Subscriber(group string, opts transport.SubscribeOptions) (message.Subscriber, error) {
	return t.NewSubscriber(group, opts)
}

// NewSubscriber is Subscriber with the concrete type.
func (t *Transport) NewSubscriber(group string, opts transport.SubscribeOptions) (*Subscriber, error) {
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return nil, errTransportClosed
	}
	s, err := newSubscriber(t, group, opts)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		s.nc.Close()
		return nil, errTransportClosed
	}
	t.subs[s] = struct{}{}
	return s, nil
}

func (t *Transport) forget(s *Subscriber) {
	t.mu.Lock()
	delete(t.subs, s)
	t.mu.Unlock()
}

var errTransportClosed = errors.New("natsjs: transport is closed")

// CreateTopic declares the file-storage stream of topic with limits
// retention (every consumer group reads the whole stream) and applies opts;
// calling it again updates the limits.
func (t *Transport) CreateTopic(ctx context.Context, topic string, opts transport.TopicOptions) error {
	cfg, err := t.streamConfig(topic, opts)
	if err != nil {
		return err
	}
	if _, err := t.js.CreateOrUpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("create topic %q (stream %s): %w", topic, cfg.Name, err)
	}
	t.pub.known.Store(topic, true)
	return nil
}

func (t *Transport) streamConfig(topic string, opts transport.TopicOptions) (jetstream.StreamConfig, error) {
	name, err := StreamName(topic)
	if err != nil {
		return jetstream.StreamConfig{}, err
	}
	if opts.MaxAge < 0 || opts.MaxBytes < 0 {
		return jetstream.StreamConfig{}, fmt.Errorf("topic %q: negative retention limit", topic)
	}
	maxBytes := opts.MaxBytes
	if maxBytes == 0 {
		maxBytes = -1
	}
	return jetstream.StreamConfig{
		Name:        name,
		Description: "busbar topic " + topic,
		Subjects:    []string{topic},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      opts.MaxAge,
		MaxBytes:    maxBytes,
		MaxMsgs:     -1,
		Replicas:    t.cfg.replicas,
	}, nil
}

// ensureTopic makes sure the stream of topic exists: it is declared with the
// URL's default limits when auto_create is on (the default), otherwise a
// missing stream is an error that says what to do.
func (t *Transport) ensureTopic(ctx context.Context, topic string) error {
	name, err := StreamName(topic)
	if err != nil {
		return err
	}
	if _, err := t.js.Stream(ctx, name); err == nil {
		return nil
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("topic %q (stream %s): %w", topic, name, err)
	}
	if !t.cfg.autoCreate {
		return fmt.Errorf("topic %q is not declared (stream %s does not exist): declare it with CreateTopic, or remove auto_create=false from the transport URL", topic, name)
	}
	cfg, err := t.streamConfig(topic, transport.TopicOptions{MaxAge: t.cfg.defaultMaxAge, MaxBytes: t.cfg.defaultMaxBytes})
	if err != nil {
		return err
	}
	if _, err := t.js.CreateStream(ctx, cfg); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("auto-declare topic %q (stream %s): %w", topic, name, err)
	}
	t.log.Info("topic declared with default limits on first use", "topic", topic, "stream", name,
		"max_age", t.cfg.defaultMaxAge, "max_bytes", t.cfg.defaultMaxBytes)
	return nil
}

// Close closes every subscriber still open (each drains first), the
// publisher and the admin connection, then stops the embedded server.
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

	// Drain them in parallel: Close takes at most one DrainTimeout.
	errs := make([]error, len(subs))
	var wg sync.WaitGroup
	for i, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Close()
		}()
	}
	wg.Wait()
	t.closeConns()
	if t.server != nil {
		t.server.stop()
	}
	return errors.Join(errs...)
}

func (t *Transport) closeConns() {
	if t.pub != nil {
		_ = t.pub.Close()
	}
	if t.mgmt != nil {
		t.mgmt.Close()
	}
}
