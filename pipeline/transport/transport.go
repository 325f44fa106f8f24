// Package transport opens the Pub/Sub that holds buses, target queues and
// dead-letter queues, chosen by one URL (embedded://, nats://, later kafka://
// and pulsar://). Routing code sees only watermill's Publisher and Subscriber
// through the Transport interface and never a concrete broker.
package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Transport is one connection to the Pub/Sub behind busbar.
type Transport interface {
	// Publisher is shared by the whole process. Publish returns only after
	// every message is durably stored (acknowledged by the broker); a nil
	// error means none of the messages can be lost.
	Publisher() message.Publisher
	// Subscriber returns a subscriber whose subscriptions consume each topic
	// as the durable consumer group named group: an acked message is never
	// delivered to that group again, even across restarts; a message that is
	// nacked, or neither acked nor nacked before the process dies, is
	// delivered again. Up to opts.MaxInFlight messages are handed out before
	// earlier ones are acked. Closing the subscriber stops fetching, waits
	// (up to opts.DrainTimeout) for handed-out messages to be acked or
	// nacked, then closes the output channels.
	Subscriber(group string, opts SubscribeOptions) (message.Subscriber, error)
	// CreateTopic declares topic if missing and applies opts (idempotent).
	CreateTopic(ctx context.Context, topic string, opts TopicOptions) error
	// Close releases the transport; call it after every subscriber is closed.
	Close() error
}

// SubscribeOptions tune one subscriber.
type SubscribeOptions struct {
	// MaxInFlight is how many messages may be handed out unacked (default 1).
	MaxInFlight int
	// AckWait is how long the broker waits for an ack before redelivering;
	// subscribers extend it while a handler still works on the message.
	AckWait time.Duration
	// NackDelay is how long a nacked message waits before redelivery.
	NackDelay time.Duration
	// DrainTimeout bounds Close's wait for in-flight messages.
	DrainTimeout time.Duration
}

// TopicOptions are the retention limits of one topic.
type TopicOptions struct {
	MaxAge   time.Duration // 0 = forever
	MaxBytes int64         // 0 = unlimited
}

// Options are what every transport may need besides its URL.
type Options struct {
	// DataDir is where embedded transports keep their files.
	DataDir string
	Logger  *slog.Logger
}

// Factory opens a transport for a URL of its scheme.
type Factory func(ctx context.Context, u *url.URL, opts Options) (Transport, error)

var (
	mu        sync.RWMutex
	factories = map[string]Factory{}
)

// Register makes a transport available under a URL scheme. It is called from
// the init function of each transport's package.
func Register(scheme string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := factories[scheme]; dup {
		panic("transport: scheme registered twice: " + scheme)
	}
	factories[scheme] = f
}

// Open parses rawURL and opens the transport registered for its scheme.
func Open(ctx context.Context, rawURL string, opts Options) (Transport, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("transport URL %q: %w", rawURL, err)
	}
	mu.RLock()
	f, ok := factories[u.Scheme]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("transport URL %q: unknown scheme %q (known: %v)", rawURL, u.Scheme, Schemes())
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return f(ctx, u, opts)
}

// Schemes lists the registered URL schemes, sorted.
func Schemes() []string {
	mu.RLock()
	defer mu.RUnlock()
	s := make([]string, 0, len(factories))
	for k := range factories {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

// PublishError reports which messages of one Publish call were not stored.
// Transports return it (possibly wrapped) when only part of a batch failed,
// so a source can answer per entry: every message of the call that is not
// listed in Failed was stored durably.
type PublishError struct {
	Topic  string
	Total  int // messages in the Publish call
	Failed []MessageError
}

// MessageError is one message that was not stored.
type MessageError struct {
	Index int    // position in the Publish call
	UUID  string // watermill message UUID
	Err   error
}

func (e *PublishError) Error() string {
	s := fmt.Sprintf("publish to topic %q: %d of %d messages not stored", e.Topic, len(e.Failed), e.Total)
	for i, f := range e.Failed {
		if i == 3 {
			s += fmt.Sprintf("; and %d more", len(e.Failed)-i)
			break
		}
		s += fmt.Sprintf("; #%d (uuid %s): %v", f.Index, f.UUID, f.Err)
	}
	return s
}

// Unwrap returns the causes, so errors.Is sees through a PublishError.
func (e *PublishError) Unwrap() []error {
	errs := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		errs[i] = f.Err
	}
	return errs
}

// Inspector reads and removes stored messages of a topic without consuming
// them: what dead-letter tooling needs (list, show, redrive). Transports that
// keep messages addressable by sequence implement it (natsjs does); callers
// find it with a type assertion.
type Inspector interface {
	// TopicStats says how many messages topic holds and their sequence range.
	TopicStats(ctx context.Context, topic string) (TopicStats, error)
	// Browse returns up to limit stored messages of topic with sequence ≥
	// from, oldest first; none for an empty topic or from past its end.
	Browse(ctx context.Context, topic string, from uint64, limit int) ([]StoredMessage, error)
	// Get returns the message at seq, or an error wrapping ErrNotFound.
	Get(ctx context.Context, topic string, seq uint64) (StoredMessage, error)
	// Delete removes the message at seq; deleting a missing one wraps
	// ErrNotFound.
	Delete(ctx context.Context, topic string, seq uint64) error
}

// TopicStats describes what a topic holds.
type TopicStats struct {
	Messages uint64
	FirstSeq uint64
	LastSeq  uint64
}

// StoredMessage is a message as stored on a topic.
type StoredMessage struct {
	Seq     uint64
	Time    time.Time // when the transport stored it
	Message *message.Message
}

// ErrNotFound is wrapped by Inspector methods for a missing topic or message.
var ErrNotFound = errors.New("not found")
