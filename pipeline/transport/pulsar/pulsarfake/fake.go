// Package pulsarfake is an in-memory stand-in for a Pulsar cluster behind
// the interfaces of apache/pulsar-client-go (pulsar.Client, Producer,
// Consumer, Message), for busbar's Pulsar contract tests. No Pulsar broker
// runs on busbar's CI machines; the fake lets the adapters' own logic
// (mapping of events to messages, acks, nacks, redelivery, close, cancel,
// dead-letter policy, seeking) be tested deterministically.
//
// It models the broker behaviour the adapters rely on, as documented by
// Pulsar: durable subscriptions with a cursor per subscription (a new one
// starts at the earliest or latest message), shared, key_shared (one
// consumer per key, chosen by hashing the key over the connected
// consumers), failover and exclusive subscription types, flow control by
// receiver queue size, individual acks, negative acks redelivered after the
// consumer's NackRedeliveryDelay with an incremented redelivery count,
// redelivery of everything a consumer held when it closes, seek by time,
// and the client's dead-letter policy (a message delivered MaxDeliveries
// times goes to the dead-letter topic through a producer built from
// DLQPolicy.ProducerOptions, interceptors included, and is acked).
//
// It is NOT Pulsar: no partitions, no batching, no retention limits, no
// network, no broker restarts, no key_shared ordering guard when consumers
// join (Pulsar's "recently joined consumers"). Passing tests against it
// says the adapters do what they should with a broker that behaves as
// modelled; only the PULSAR_URL integration tests say anything about a
// real broker.
package pulsarfake

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"sort"
	"sync"
	"time"

	pc "github.com/apache/pulsar-client-go/pulsar"
)

// Errors the fake returns.
var (
	ErrClosed         = errors.New("pulsarfake: closed")
	ErrConsumerClosed = errors.New("pulsarfake: consumer closed")
)

// Broker is the in-memory cluster. Clients made by Dial share it.
type Broker struct {
	mu      sync.Mutex
	topics  map[string]*topic
	clock   func() time.Time
	fault   func(op, topic string) error
	timers  map[*time.Timer]struct{}
	closed  bool
	clients int
	seq     int64
}

type topic struct {
	name string
	id   int64
	log  []*stored
	subs map[string]*subscription
}

type stored struct {
	entry     int64
	payload   []byte
	key       string
	orderKey  string
	props     map[string]string
	publish   time.Time
	eventTime time.Time
	producer  string
}

type subscription struct {
	name      string
	t         *topic
	typ       pc.SubscriptionType
	cursor    int64            // next entry never dispatched
	acked     map[int64]bool   // entries at or after nothing: acked individually
	redeliver []int64          // entries to dispatch again, in order
	count     map[int64]uint32 // redelivery counts
	consumers []*consumer
	rr        int
	pending   map[int64]*consumer // dispatched and not acked, by holder
}

// New returns an empty broker.
func New() *Broker {
	return &Broker{topics: map[string]*topic{}, clock: time.Now, timers: map[*time.Timer]struct{}{}}
}

// SetClock replaces the clock that stamps publish times.
func (b *Broker) SetClock(f func() time.Time) {
	b.mu.Lock()
	b.clock = f
	b.mu.Unlock()
}

// SetFault makes operations fail: f is called with "create-producer",
// "subscribe", "send" or "ack" and the topic, and its error is returned.
func (b *Broker) SetFault(f func(op, topic string) error) {
	b.mu.Lock()
	b.fault = f
	b.mu.Unlock()
}

func (b *Broker) faultLocked(op, topic string) error {
	if b.fault == nil {
		return nil
	}
	return b.fault(op, topic)
}

// Dial returns a client of b; its options are ignored but kept for
// inspection (Options).
func (b *Broker) Dial(o pc.ClientOptions) (pc.Client, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	b.clients++
	return &Client{b: b, opts: o}, nil
}

// OpenClients is how many clients were dialled and not closed.
func (b *Broker) OpenClients() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.clients
}

// Close stops pending nack timers.
func (b *Broker) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for t := range b.timers {
		t.Stop()
	}
	b.timers = nil
}

func (b *Broker) topicLocked(name string) *topic {
	t := b.topics[name]
	if t == nil {
		b.seq++
		t = &topic{name: name, id: b.seq, subs: map[string]*subscription{}}
		b.topics[name] = t
	}
	return t
}

// Message is one stored message, as tests inspect it.
type Message struct {
	Entry      int64
	Payload    []byte
	Key        string
	Properties map[string]string
	Publish    time.Time
	EventTime  time.Time
}

// Publish stores a message on topic as a producer outside busbar would.
func (b *Broker) Publish(topicName string, m Message) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.topicLocked(topicName)
	pub := m.Publish
	if pub.IsZero() {
		pub = b.clock()
	}
	t.log = append(t.log, &stored{entry: int64(len(t.log)), payload: m.Payload, key: m.Key, props: maps.Clone(m.Properties), publish: pub, eventTime: m.EventTime, producer: "external"})
	b.dispatchAllLocked(t)
}

// Messages returns what topic holds, oldest first.
func (b *Broker) Messages(topicName string) []Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.topics[topicName]
	if t == nil {
		return nil
	}
	out := make([]Message, len(t.log))
	for i, s := range t.log {
		out[i] = Message{Entry: s.entry, Payload: s.payload, Key: s.key, Properties: maps.Clone(s.props), Publish: s.publish, EventTime: s.eventTime}
	}
	return out
}

// Topics lists the topics that exist, sorted.
func (b *Broker) Topics() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for n := range b.topics {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Backlog is how many messages of topic the subscription has not acked.
func (b *Broker) Backlog(topicName, sub string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.topics[topicName]
	if t == nil {
		return 0
	}
	s := t.subs[sub]
	if s == nil {
		return 0
	}
	n := 0
	for _, m := range t.log {
		if !s.acked[m.entry] {
			n++
		}
	}
	return n
}

// Subscriptions lists the subscriptions of topic and their types.
func (b *Broker) Subscriptions(topicName string) map[string]pc.SubscriptionType {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]pc.SubscriptionType{}
	if t := b.topics[topicName]; t != nil {
		for n, s := range t.subs {
			out[n] = s.typ
		}
	}
	return out
}

// Consumers is how many consumers are connected to a subscription.
func (b *Broker) Consumers(topicName, sub string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t := b.topics[topicName]; t != nil {
		if s := t.subs[sub]; s != nil {
			return len(s.consumers)
		}
	}
	return 0
}

func (b *Broker) dispatchAllLocked(t *topic) {
	names := make([]string, 0, len(t.subs))
	for n := range t.subs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		b.dispatchLocked(t.subs[n])
	}
}

// dispatchLocked hands messages to consumers with free receiver-queue
// permits: first those to redeliver, then new ones.
func (b *Broker) dispatchLocked(s *subscription) {
	for {
		var entry int64
		redelivery := len(s.redeliver) > 0
		switch {
		case redelivery:
			entry = s.redeliver[0]
		default:
			for s.cursor < int64(len(s.t.log)) && s.acked[s.cursor] {
				s.cursor++
			}
			if s.cursor >= int64(len(s.t.log)) {
				return
			}
			entry = s.cursor
		}
		if s.acked[entry] {
			if redelivery {
				s.redeliver = s.redeliver[1:]
			} else {
				s.cursor++
			}
			continue
		}
		c := s.pick(s.t.log[entry])
		if c == nil {
			return
		}
		if redelivery {
			s.redeliver = s.redeliver[1:]
		} else {
			s.cursor++
		}
		s.pending[entry] = c
		c.queue = append(c.queue, &msg{s: s.t.log[entry], topic: s.t, count: s.count[entry], c: c})
		c.signal()
	}
}

// pick chooses the consumer of a message by subscription type, or nil when
// the one it must go to has no permits.
func (s *subscription) pick(m *stored) *consumer {
	if len(s.consumers) == 0 {
		return nil
	}
	free := func(c *consumer) bool { return len(c.queue) < c.queueSize }
	switch s.typ {
	case pc.Shared:
		for i := 0; i < len(s.consumers); i++ {
			s.rr = (s.rr + 1) % len(s.consumers)
			if c := s.consumers[s.rr]; free(c) {
				return c
			}
		}
		return nil
	case pc.KeyShared:
		k := m.orderKey
		if k == "" {
			k = m.key
		}
		h := fnv.New32a()
		h.Write([]byte(k))
		c := s.consumers[int(h.Sum32()%uint32(len(s.consumers)))]
		if free(c) {
			return c
		}
		return nil
	default: // exclusive, failover: the first consumer
		if c := s.consumers[0]; free(c) {
			return c
		}
		return nil
	}
}

// Client is a fake pulsar.Client.
type Client struct {
	b      *Broker
	opts   pc.ClientOptions
	mu     sync.Mutex
	closed bool
	prods  []*producer
	cons   []*consumer
}

var _ pc.Client = (*Client)(nil)

// Options are the options the client was dialled with.
func (c *Client) Options() pc.ClientOptions { return c.opts }

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// CreateProducer makes a producer of one topic.
func (c *Client) CreateProducer(o pc.ProducerOptions) (pc.Producer, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	if o.Topic == "" {
		return nil, errors.New("pulsarfake: producer needs a topic")
	}
	c.b.mu.Lock()
	if err := c.b.faultLocked("create-producer", o.Topic); err != nil {
		c.b.mu.Unlock()
		return nil, err
	}
	c.b.topicLocked(o.Topic)
	c.b.mu.Unlock()
	p := &producer{c: c, opts: o, name: o.Name}
	if p.name == "" {
		p.name = fmt.Sprintf("fake-producer-%p", p)
	}
	c.mu.Lock()
	c.prods = append(c.prods, p)
	c.mu.Unlock()
	return p, nil
}

// Subscribe connects a consumer to a (possibly new) subscription.
func (c *Client) Subscribe(o pc.ConsumerOptions) (pc.Consumer, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	if o.Topic == "" || o.SubscriptionName == "" {
		return nil, errors.New("pulsarfake: consumer needs one topic and a subscription name")
	}
	if o.DLQ != nil && (o.DLQ.MaxDeliveries == 0 || o.DLQ.DeadLetterTopic == "") {
		return nil, errors.New("pulsarfake: DLQPolicy needs MaxDeliveries > 0 and DeadLetterTopic")
	}
	b := c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.faultLocked("subscribe", o.Topic); err != nil {
		return nil, err
	}
	t := b.topicLocked(o.Topic)
	s := t.subs[o.SubscriptionName]
	if s == nil {
		s = &subscription{name: o.SubscriptionName, t: t, typ: o.Type, acked: map[int64]bool{}, count: map[int64]uint32{}, pending: map[int64]*consumer{}}
		if o.SubscriptionInitialPosition == pc.SubscriptionPositionLatest {
			s.cursor = int64(len(t.log))
		}
		t.subs[o.SubscriptionName] = s
	} else if s.typ != o.Type {
		return nil, fmt.Errorf("pulsarfake: subscription %s is of another type (%d, asked %d)", s.name, s.typ, o.Type)
	}
	if (s.typ == pc.Exclusive) && len(s.consumers) > 0 {
		return nil, fmt.Errorf("pulsarfake: exclusive subscription %s already has a consumer", s.name)
	}
	size := o.ReceiverQueueSize
	if size <= 0 {
		size = 1000
	}
	nack := o.NackRedeliveryDelay
	if nack == 0 {
		nack = time.Minute // the client's default
	}
	cons := &consumer{c: c, s: s, opts: o, queueSize: size, nackDelay: nack, notify: make(chan struct{}, 1), done: make(chan struct{})}
	s.consumers = append(s.consumers, cons)
	c.mu.Lock()
	c.cons = append(c.cons, cons)
	c.mu.Unlock()
	b.dispatchLocked(s)
	return cons, nil
}

// CreateReader is not modelled.
func (c *Client) CreateReader(pc.ReaderOptions) (pc.Reader, error) {
	return nil, errors.New("pulsarfake: readers are not modelled")
}

// CreateTableView is not modelled.
func (c *Client) CreateTableView(pc.TableViewOptions) (pc.TableView, error) {
	return nil, errors.New("pulsarfake: table views are not modelled")
}

// TopicPartitions returns the topic itself: the fake has no partitions.
func (c *Client) TopicPartitions(topic string) ([]string, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	if err := c.b.faultLocked("lookup", topic); err != nil {
		return nil, err
	}
	return []string{topic}, nil
}

// NewTransaction is not modelled.
func (c *Client) NewTransaction(time.Duration) (pc.Transaction, error) {
	return nil, errors.New("pulsarfake: transactions are not modelled")
}

// Close closes the client's producers and consumers.
func (c *Client) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	prods, cons := c.prods, c.cons
	c.mu.Unlock()
	for _, p := range prods {
		p.Close()
	}
	for _, cn := range cons {
		cn.Close()
	}
	c.b.mu.Lock()
	c.b.clients--
	c.b.mu.Unlock()
}

type producer struct {
	c      *Client
	opts   pc.ProducerOptions
	name   string
	mu     sync.Mutex
	closed bool
	seq    int64
}

func (p *producer) Topic() string { return p.opts.Topic }
func (p *producer) Name() string  { return p.name }

func (p *producer) Send(ctx context.Context, m *pc.ProducerMessage) (pc.MessageID, error) {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil, pc.ErrProducerClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, in := range p.opts.Interceptors {
		in.BeforeSend(p, m)
	}
	b := p.c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.faultLocked("send", p.opts.Topic); err != nil {
		return nil, err
	}
	t := b.topicLocked(p.opts.Topic)
	s := &stored{entry: int64(len(t.log)), payload: append([]byte(nil), m.Payload...), key: m.Key, orderKey: m.OrderingKey,
		props: maps.Clone(m.Properties), publish: b.clock(), eventTime: m.EventTime, producer: p.name}
	t.log = append(t.log, s)
	p.mu.Lock()
	p.seq++
	p.mu.Unlock()
	b.dispatchAllLocked(t)
	return pc.NewMessageID(t.id, s.entry, -1, -1), nil
}

func (p *producer) SendAsync(ctx context.Context, m *pc.ProducerMessage, cb func(pc.MessageID, *pc.ProducerMessage, error)) {
	id, err := p.Send(ctx, m)
	cb(id, m, err)
}

func (p *producer) LastSequenceID() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seq - 1
}

func (p *producer) Flush() error                       { return nil }
func (p *producer) FlushWithCtx(context.Context) error { return nil }

func (p *producer) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
}

type consumer struct {
	c         *Client
	s         *subscription
	opts      pc.ConsumerOptions
	queueSize int
	nackDelay time.Duration
	queue     []*msg // dispatched to this consumer, not yet received
	notify    chan struct{}
	done      chan struct{}
	closed    bool // under the broker's lock
	dlq       pc.Producer
}

var _ pc.Consumer = (*consumer)(nil)

func (c *consumer) signal() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *consumer) Subscription() string { return c.s.name }
func (c *consumer) Name() string         { return c.opts.Name }

func (c *consumer) Unsubscribe() error {
	b := c.c.b
	b.mu.Lock()
	delete(c.s.t.subs, c.s.name)
	b.mu.Unlock()
	c.Close()
	return nil
}

func (c *consumer) UnsubscribeForce() error { return c.Unsubscribe() }

func (c *consumer) GetLastMessageIDs() ([]pc.TopicMessageID, error) {
	return nil, errors.New("pulsarfake: GetLastMessageIDs is not modelled")
}

// Receive waits for the next message dispatched to this consumer. A message
// delivered MaxDeliveries times or more is sent to the dead-letter topic
// and acked instead of returned, as the client's DLQ router does.
func (c *consumer) Receive(ctx context.Context) (pc.Message, error) {
	b := c.c.b
	for {
		b.mu.Lock()
		if c.closed {
			b.mu.Unlock()
			return nil, ErrConsumerClosed
		}
		if len(c.queue) > 0 {
			m := c.queue[0]
			c.queue[0] = nil
			c.queue = c.queue[1:]
			b.dispatchLocked(c.s) // a permit came back
			dlq := c.opts.DLQ
			b.mu.Unlock()
			if dlq != nil && m.count >= dlq.MaxDeliveries {
				if err := c.deadLetter(m); err != nil {
					c.Nack(m)
				}
				continue
			}
			return m, nil
		}
		b.mu.Unlock()
		select {
		case <-c.notify:
		case <-c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (c *consumer) deadLetter(m *msg) error {
	if c.dlq == nil {
		o := c.opts.DLQ.ProducerOptions
		o.Topic = c.opts.DLQ.DeadLetterTopic
		p, err := c.c.CreateProducer(o)
		if err != nil {
			return err
		}
		c.dlq = p
	}
	_, err := c.dlq.Send(context.Background(), &pc.ProducerMessage{
		Payload: m.s.payload, Key: m.s.key, OrderingKey: m.s.orderKey, Properties: maps.Clone(m.s.props), EventTime: m.s.eventTime,
	})
	if err != nil {
		return err
	}
	return c.Ack(m)
}

func (c *consumer) Chan() <-chan pc.ConsumerMessage {
	panic("pulsarfake: Chan is not modelled; use Receive")
}

func (c *consumer) Ack(m pc.Message) error { return c.AckID(m.ID()) }

func (c *consumer) AckID(id pc.MessageID) error {
	b := c.c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if c.closed {
		return ErrConsumerClosed
	}
	if err := b.faultLocked("ack", c.s.t.name); err != nil {
		return err
	}
	e := id.EntryID()
	c.s.acked[e] = true
	delete(c.s.pending, e)
	return nil
}

func (c *consumer) AckIDList(ids []pc.MessageID) error {
	for _, id := range ids {
		if err := c.AckID(id); err != nil {
			return err
		}
	}
	return nil
}

func (c *consumer) AckWithTxn(pc.Message, pc.Transaction) error {
	return errors.New("pulsarfake: transactions are not modelled")
}

func (c *consumer) AckCumulative(m pc.Message) error { return c.AckIDCumulative(m.ID()) }

func (c *consumer) AckIDCumulative(id pc.MessageID) error {
	b := c.c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if c.closed {
		return ErrConsumerClosed
	}
	for e := int64(0); e <= id.EntryID(); e++ {
		c.s.acked[e] = true
		delete(c.s.pending, e)
	}
	return nil
}

func (c *consumer) ReconsumeLater(m pc.Message, d time.Duration) { c.Nack(m) }

func (c *consumer) ReconsumeLaterWithCustomProperties(m pc.Message, _ map[string]string, d time.Duration) {
	c.Nack(m)
}

// Nack gives a message back: it is dispatched again after the consumer's
// NackRedeliveryDelay, with its redelivery count incremented.
func (c *consumer) Nack(m pc.Message) { c.NackID(m.ID()) }

func (c *consumer) NackID(id pc.MessageID) {
	b := c.c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if c.closed || b.closed {
		return
	}
	e := id.EntryID()
	if c.s.pending[e] != c {
		return // not held by this consumer (any more)
	}
	delete(c.s.pending, e)
	s := c.s
	var t *time.Timer
	t = time.AfterFunc(c.nackDelay, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.timers == nil {
			return
		}
		delete(b.timers, t)
		if s.acked[e] {
			return
		}
		s.count[e]++
		s.redeliver = append(s.redeliver, e)
		b.dispatchLocked(s)
	})
	b.timers[t] = struct{}{}
}

// Close disconnects the consumer: everything dispatched to it and not
// acked is dispatched again (to the other consumers, or to the next one).
func (c *consumer) Close() {
	b := c.c.b
	b.mu.Lock()
	if c.closed {
		b.mu.Unlock()
		return
	}
	c.closed = true
	close(c.done)
	s := c.s
	for i, x := range s.consumers {
		if x == c {
			s.consumers = append(s.consumers[:i], s.consumers[i+1:]...)
			break
		}
	}
	var back []int64
	for e, holder := range s.pending {
		if holder == c {
			back = append(back, e)
			delete(s.pending, e)
		}
	}
	sort.Slice(back, func(i, j int) bool { return back[i] < back[j] })
	for _, e := range back {
		s.count[e]++
	}
	s.redeliver = append(back, s.redeliver...)
	c.queue = nil
	b.dispatchLocked(s)
	dlq := c.dlq
	b.mu.Unlock()
	if dlq != nil {
		dlq.Close()
	}
}

// Seek is not modelled (busbar seeks by time only).
func (c *consumer) Seek(pc.MessageID) error {
	return errors.New("pulsarfake: Seek by message id is not modelled")
}

// SeekByTime moves the subscription's cursor to the first message published
// at or after t: everything from there on is delivered again, everything
// before counts as acked; consumers lose what was dispatched to them.
func (c *consumer) SeekByTime(t time.Time) error {
	b := c.c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if c.closed {
		return ErrConsumerClosed
	}
	s := c.s
	s.cursor = int64(len(s.t.log))
	for _, m := range s.t.log {
		if !m.publish.Before(t) {
			s.cursor = m.entry
			break
		}
	}
	s.acked = map[int64]bool{}
	for e := int64(0); e < s.cursor; e++ {
		s.acked[e] = true
	}
	s.redeliver, s.pending, s.count = nil, map[int64]*consumer{}, map[int64]uint32{}
	for _, x := range s.consumers {
		x.queue = nil
	}
	b.dispatchLocked(s)
	return nil
}

// msg is a fake pulsar.Message.
type msg struct {
	s     *stored
	topic *topic
	count uint32
	c     *consumer
}

var _ pc.Message = (*msg)(nil)

func (m *msg) Topic() string                               { return m.topic.name }
func (m *msg) ProducerName() string                        { return m.s.producer }
func (m *msg) Properties() map[string]string               { return maps.Clone(m.s.props) }
func (m *msg) Payload() []byte                             { return m.s.payload }
func (m *msg) ID() pc.MessageID                            { return pc.NewMessageID(m.topic.id, m.s.entry, -1, -1) }
func (m *msg) PublishTime() time.Time                      { return m.s.publish }
func (m *msg) EventTime() time.Time                        { return m.s.eventTime }
func (m *msg) Key() string                                 { return m.s.key }
func (m *msg) OrderingKey() string                         { return m.s.orderKey }
func (m *msg) RedeliveryCount() uint32                     { return m.count }
func (m *msg) IsReplicated() bool                          { return false }
func (m *msg) GetReplicatedFrom() string                   { return "" }
func (m *msg) GetSchemaValue(any) error                    { return errors.New("pulsarfake: schemas are not modelled") }
func (m *msg) SchemaVersion() []byte                       { return nil }
func (m *msg) Index() *uint64                              { return nil }
func (m *msg) BrokerPublishTime() *time.Time               { return nil }
func (m *msg) GetEncryptionContext() *pc.EncryptionContext { return nil }
