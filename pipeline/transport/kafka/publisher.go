package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/busbar/busbar/pipeline/transport"
)

// Publisher is the franz-go publisher. Publish hands every message to the
// client at once (it batches them per partition, with acks=all and the
// idempotent producer) and returns when each has its broker acknowledgement.
// Concurrent Publish calls share batches, so many small publishes cost
// little more than one large one.
type Publisher struct {
	t      *Transport
	cl     *kgo.Client
	closed atomic.Bool
}

// NewPublisher opens a publisher with its own client.
func (t *Transport) NewPublisher() (*Publisher, error) {
	opts, err := t.cfg.conn.Opts(t.log)
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(compressions[t.cfg.compression]),
		kgo.ProducerLinger(t.cfg.linger),
		kgo.RecordDeliveryTimeout(t.cfg.publishTimeout),
		kgo.MaxBufferedRecords(100_000),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka publisher: %w", err)
	}
	return &Publisher{t: t, cl: cl}, nil
}

// ErrPublisherClosed is returned by Publish after Close.
var ErrPublisherClosed = errors.New("kafka publisher is closed")

// Publish stores msgs on topic; nil means every one was acknowledged by the
// in-sync replicas. A partial failure is a *transport.PublishError naming
// the messages that were not stored.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if p.closed.Load() {
		return ErrPublisherClosed
	}
	if len(msgs) == 0 {
		return nil
	}
	kt := p.t.cfg.Topic(topic)
	ctx, cancel := context.WithTimeout(context.Background(), p.t.cfg.publishTimeout)
	defer cancel()
	if err := p.t.ensureTopic(ctx, kt); err != nil {
		return err
	}
	errs := make([]error, len(msgs))
	var wg sync.WaitGroup
	wg.Add(len(msgs))
	for i, m := range msgs {
		p.cl.Produce(ctx, toRecord(kt, m), func(_ *kgo.Record, err error) {
			errs[i] = err
			wg.Done()
		})
	}
	wg.Wait()
	var pe *transport.PublishError
	for i, err := range errs {
		if err == nil {
			continue
		}
		if pe == nil {
			pe = &transport.PublishError{Topic: topic, Total: len(msgs)}
		}
		pe.Failed = append(pe.Failed, transport.MessageError{Index: i, UUID: msgs[i].UUID, Err: err})
	}
	if pe != nil {
		return pe
	}
	return nil
}

// Close flushes what is buffered and closes the client.
func (p *Publisher) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.t.cfg.publishTimeout)
	defer cancel()
	err := p.cl.Flush(ctx)
	p.cl.Close()
	return err
}
