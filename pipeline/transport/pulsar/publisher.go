package pulsar

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
	pc "github.com/apache/pulsar-client-go/pulsar"

	"github.com/busbar/busbar/pipeline/transport"
	"github.com/busbar/busbar/pipeline/transport/pulsar/pclient"
)

// Publisher publishes to Pulsar topics, with one producer per topic made on
// first use. Publish hands every message to the producer at once (it
// batches them, by key so that Key_Shared consumers get whole batches of
// one key) and returns when each has its broker acknowledgement.
// Concurrent Publish calls share batches.
type Publisher struct {
	t *Transport

	mu        sync.Mutex
	producers map[string]*producerEntry // full topic -> producer
	closed    bool
	inflight  sync.WaitGroup
}

type producerEntry struct {
	ready chan struct{} // closed once p or err is set
	p     pc.Producer
	err   error
}

// NewPublisher returns a publisher on the transport's client. Publisher()
// is the shared one; tests make their own.
func (t *Transport) NewPublisher() *Publisher {
	return &Publisher{t: t, producers: map[string]*producerEntry{}}
}

// ErrPublisherClosed is returned by Publish after Close.
var ErrPublisherClosed = errors.New("pulsar publisher is closed")

func (p *Publisher) producer(topic string) (pc.Producer, error) {
	pt := p.t.cfg.Topic(topic)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPublisherClosed
	}
	e := p.producers[pt]
	if e == nil {
		e = &producerEntry{ready: make(chan struct{})}
		p.producers[pt] = e
		p.mu.Unlock()
		e.p, e.err = p.t.client.CreateProducer(p.producerOptions(pt))
		if e.err != nil {
			e.err = fmt.Errorf("pulsar producer of %s: %w", pt, e.err)
			p.mu.Lock()
			delete(p.producers, pt) // the next Publish tries again
			p.mu.Unlock()
		}
		close(e.ready)
	} else {
		p.mu.Unlock()
		<-e.ready
	}
	return e.p, e.err
}

func (p *Publisher) producerOptions(topic string) pc.ProducerOptions {
	c := p.t.cfg
	return pc.ProducerOptions{
		Topic:                   topic,
		SendTimeout:             c.publishTimeout,
		DisableBatching:         !c.batching,
		BatchingMaxPublishDelay: c.batchDelay,
		BatcherBuilderType:      pc.KeyBasedBatchBuilder,
		CompressionType:         pclient.Compressions[c.compression],
	}
}

// Publish stores msgs on topic; nil means every one was acknowledged by the
// broker (written to its bookies). A partial failure is a
// *transport.PublishError naming the messages that were not stored.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrPublisherClosed
	}
	p.inflight.Add(1)
	p.mu.Unlock()
	defer p.inflight.Done()
	if len(msgs) == 0 {
		return nil
	}
	prod, err := p.producer(topic)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.t.cfg.publishTimeout)
	defer cancel()
	errs := make([]error, len(msgs))
	var wg sync.WaitGroup
	wg.Add(len(msgs))
	for i, m := range msgs {
		prod.SendAsync(ctx, toProducerMessage(m), func(_ pc.MessageID, _ *pc.ProducerMessage, err error) {
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

// Close waits for Publish calls under way, then flushes and closes the
// producers.
func (p *Publisher) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.inflight.Wait()
	var errs []error
	for _, e := range p.producers {
		<-e.ready
		if e.p == nil {
			continue
		}
		if err := e.p.Flush(); err != nil {
			errs = append(errs, err)
		}
		e.p.Close()
	}
	return errors.Join(errs...)
}
