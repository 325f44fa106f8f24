package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/pipeline/transport/kafka/kclient"
)

// Publisher is where events go: the buses. The engine implements it (the
// same interface as sources/http's).
type Publisher interface {
	// HasBus reports whether a bus of that name exists.
	HasBus(bus string) bool
	// Publish durably appends the records to the bus, in order; nil means
	// every record is stored.
	Publish(ctx context.Context, bus string, records []pipeline.Record) error
}

// DeadLetters stores records a source could not turn into events.
type DeadLetters interface {
	// DeadLetter stores recs durably for source; nil means all are stored.
	DeadLetter(ctx context.Context, source string, recs []DeadRecord) error
}

// DeadRecord is one record that is not an event, with why.
type DeadRecord struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   map[string]string
	Reason    string
}

// Options configure a Source.
type Options struct {
	Name, Bus   string
	Conn        kclient.Conn
	Topic       string
	Group       string
	Start       string // "earliest", "latest" or an RFC 3339 time
	Mapping     *config.SourceMapping
	Publisher   Publisher
	DeadLetters DeadLetters
	Logger      *slog.Logger
	// MaxBatch is the most records published per poll (default 500).
	MaxBatch int
	// SessionTimeout of the consumer group (default 45s).
	SessionTimeout time.Duration
}

// OptionsFromConfig makes Options of a validated, defaulted source.
func OptionsFromConfig(s config.Source) Options {
	k := s.Kafka
	o := Options{Name: s.Name, Bus: s.Bus, Topic: k.Topic, Group: s.SourceGroup(), Start: k.Start, Mapping: s.Mapping}
	o.SessionTimeout = k.SessionTimeout.D() // 0: the default
	o.Conn = ConnOf(k.Brokers, k.ClientID, k.SASL, k.TLS)
	return o
}

// ConnOf turns config's Kafka connection fields into a kclient.Conn.
func ConnOf(brokers []string, clientID string, sasl *config.KafkaSASL, tls *config.KafkaTLS) kclient.Conn {
	c := kclient.Conn{Brokers: brokers, ClientID: clientID}
	if sasl != nil {
		c.Mechanism, c.User, c.Password = sasl.Mechanism, sasl.Username, sasl.Password
	}
	if tls != nil {
		c.TLS, c.CAFile, c.CertFile, c.KeyFile = tls.Enabled, tls.CAFile, tls.CertFile, tls.KeyFile
		c.ServerName, c.InsecureSkipVerify = tls.ServerName, tls.InsecureSkipVerify
	}
	return c
}

// Source reads one topic into one bus.
type Source struct {
	o      Options
	log    *slog.Logger
	conv   *Converter // the pipes' converter: mapped records skip the SDK
	cl     *kgo.Client
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Start connects and starts reading in the background.
func Start(o Options) (*Source, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 500
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = 45 * time.Second
	}
	if o.Publisher == nil || o.DeadLetters == nil {
		return nil, errors.New("kafka source: Publisher and DeadLetters are required")
	}
	if !o.Publisher.HasBus(o.Bus) {
		return nil, fmt.Errorf("kafka source %q: bus %q does not exist", o.Name, o.Bus)
	}
	conv, err := NewConverter(o.Mapping)
	if err != nil {
		return nil, fmt.Errorf("kafka source %q: %w", o.Name, err)
	}
	reset := kgo.NewOffset().AtStart()
	switch o.Start {
	case "", config.KafkaStartOldest:
	case config.KafkaStartNewest:
		reset = kgo.NewOffset().AtEnd()
	default:
		t, err := time.Parse(time.RFC3339, o.Start)
		if err != nil {
			return nil, fmt.Errorf("kafka source %q: start %q: use earliest, latest or an RFC 3339 time", o.Name, o.Start)
		}
		reset = kgo.NewOffset().AfterMilli(t.UnixMilli())
	}
	s := &Source{o: o, log: o.Logger.With("source", o.Name, "topic", o.Topic), conv: conv, done: make(chan struct{})}
	opts, err := o.Conn.Opts(s.log)
	if err != nil {
		return nil, fmt.Errorf("kafka source %q: %w", o.Name, err)
	}
	opts = append(opts,
		kgo.ConsumerGroup(o.Group),
		kgo.ConsumeTopics(o.Topic),
		kgo.ConsumeResetOffset(reset),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.SessionTimeout(o.SessionTimeout),
		kgo.HeartbeatInterval(min(3*time.Second, o.SessionTimeout/3)),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	if s.cl, err = kgo.NewClient(opts...); err != nil {
		return nil, fmt.Errorf("kafka source %q: %w", o.Name, err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.run()
	return s, nil
}

// commitTimeout bounds one offset commit, also during Close.
const commitTimeout = 10 * time.Second

func (s *Source) run() {
	defer close(s.done)
	backoff := 100 * time.Millisecond
	for {
		fs := s.cl.PollRecords(s.ctx, s.o.MaxBatch)
		if fs.IsClientClosed() || s.ctx.Err() != nil {
			s.cl.AllowRebalance()
			return
		}
		fs.EachError(func(_ string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				s.log.Warn("kafka fetch failed", "partition", p, "error", err)
			}
		})
		recs := fs.Records()
		if len(recs) == 0 {
			s.cl.AllowRebalance()
			continue
		}
		if err := s.handle(recs); err != nil {
			// Read the batch again from its first offsets: nothing is
			// committed past a record that did not reach the bus.
			s.cl.SetOffsets(firstOffsets(recs))
			s.cl.AllowRebalance()
			s.log.Warn("publishing to the bus failed; the records will be read again", "bus", s.o.Bus, "records", len(recs), "retry_in", backoff, "error", err)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		// Commit what reached the bus even when Close came meanwhile:
		// cancelling the commit would publish these records again after a
		// graceful restart.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), commitTimeout)
		if err := s.cl.CommitRecords(cctx, recs...); err != nil {
			s.log.Warn("kafka offset commit failed; these records may be published again", "error", err)
		}
		cancel()
		s.cl.AllowRebalance()
	}
}

// handle publishes the events of recs and dead-letters what is not one.
func (s *Source) handle(recs []*kgo.Record) error {
	now := time.Now()
	good := make([]pipeline.Record, 0, len(recs))
	var bad []DeadRecord
	for _, r := range recs {
		rec, err := s.conv.Convert(r, now)
		if err != nil {
			bad = append(bad, dead(r, err))
			continue
		}
		good = append(good, rec)
	}
	if len(bad) > 0 {
		if err := s.o.DeadLetters.DeadLetter(s.ctx, s.o.Name, bad); err != nil {
			return fmt.Errorf("dead-lettering %d records: %w", len(bad), err)
		}
		s.log.Warn("records are not events; moved to the source's dead-letter queue", "count", len(bad), "first_reason", bad[0].Reason)
	}
	if len(good) == 0 {
		return nil
	}
	return s.o.Publisher.Publish(s.ctx, s.o.Bus, good)
}

func dead(r *kgo.Record, err error) DeadRecord {
	d := DeadRecord{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Reason: err.Error()}
	if len(r.Headers) > 0 {
		d.Headers = make(map[string]string, len(r.Headers))
		for _, h := range r.Headers {
			d.Headers[h.Key] = string(h.Value)
		}
	}
	return d
}

// firstOffsets are the offsets to read recs again from.
func firstOffsets(recs []*kgo.Record) map[string]map[int32]kgo.EpochOffset {
	out := map[string]map[int32]kgo.EpochOffset{}
	for _, r := range recs {
		ps := out[r.Topic]
		if ps == nil {
			ps = map[int32]kgo.EpochOffset{}
			out[r.Topic] = ps
		}
		if cur, ok := ps[r.Partition]; !ok || r.Offset < cur.Offset {
			ps[r.Partition] = kgo.EpochOffset{Epoch: -1, Offset: r.Offset}
		}
	}
	return out
}

// Close stops reading; the batch in hand is finished or left uncommitted.
func (s *Source) Close() error {
	s.once.Do(func() {
		s.cancel()
		<-s.done
		s.cl.CloseAllowingRebalance()
	})
	return nil
}

// Name is the source's name.
func (s *Source) Name() string { return s.o.Name }

// FormatOffset is how offsets travel in dead-letter metadata.
func FormatOffset(n int64) string { return strconv.FormatInt(n, 10) }
