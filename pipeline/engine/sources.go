package engine

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/pipeline/transport"
	"github.com/busbar/busbar/pipeline/transport/kafka/kclient"
	"github.com/busbar/busbar/routers"
	kafkasrc "github.com/busbar/busbar/sources/kafka"
	pulsarsrc "github.com/busbar/busbar/sources/pulsar"
)

// MetaPartitionKey is the metadata entry partitioned transports (kafka://)
// key records by; Publish sets it from the bus's partition_key.
const MetaPartitionKey = "busbar-partition-key"

// SourceDLQTopic receives the records a source could not turn into events.
func SourceDLQTopic(source string) string { return routers.SourceDLQTopic(source) }

// sourceSet is what an engine runs besides its routers: the sources of the
// config, and the partition key of each bus.
type sourceSet struct {
	mu      sync.Mutex
	running []interface{ Close() error }   // kafka and pulsar sources
	keys    map[string]func([]byte) string // bus -> its partition key
}

// startSources compiles the buses' partition keys and starts the config's
// sources. On failure it shuts the engine down and returns why.
func (e *Engine) startSources(ctx context.Context) error {
	e.src.keys = map[string]func([]byte) string{}
	for _, b := range e.busList() {
		kf, err := kclient.CompileKey(b.PartitionKey, "$.source")
		if err != nil {
			e.Shutdown(context.Background())
			return fmt.Errorf("bus %q: partition_key: %w", b.Name, err)
		}
		e.src.keys[b.Name] = kf
	}
	for _, s := range e.cfg.Sources {
		if err := e.tr.CreateTopic(ctx, SourceDLQTopic(s.Name), transport.TopicOptions{MaxAge: dlqRetention}); err != nil {
			e.Shutdown(context.Background())
			return fmt.Errorf("source %q: %w", s.Name, err)
		}
		var src interface{ Close() error }
		var err error
		switch s.Type {
		case config.TypePulsar:
			src, err = e.startPulsarSource(ctx, s)
		default:
			o := kafkasrc.OptionsFromConfig(s)
			o.Publisher, o.DeadLetters, o.Logger = e, sourceDLQ{e}, e.log
			src, err = kafkasrc.Start(o)
		}
		if err != nil {
			e.Shutdown(context.Background())
			return err
		}
		e.src.mu.Lock()
		e.src.running = append(e.src.running, src)
		e.src.mu.Unlock()
	}
	return nil
}

// stopSources stops the sources; batches in hand are published and
// committed, or left for the next start.
func (e *Engine) stopSources() {
	e.src.mu.Lock()
	list := e.src.running
	e.src.running = nil
	e.src.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range list {
		wg.Add(1)
		go func() { defer wg.Done(); s.Close() }()
	}
	wg.Wait()
}

// setKey sets the partition key of a bus message.
func (e *Engine) setKey(bus string, m *message.Message, event []byte) {
	if kf := e.src.keys[bus]; kf != nil {
		if k := kf(event); k != "" {
			m.Metadata.Set(MetaPartitionKey, k)
		}
	}
}

// sourceDLQ stores a source's dead records on its dead-letter topic: the
// record value as the payload, where it came from and why in metadata.
type sourceDLQ struct{ e *Engine }

func (d sourceDLQ) DeadLetter(_ context.Context, source string, recs []kafkasrc.DeadRecord) error {
	msgs := make([]*message.Message, len(recs))
	for i, r := range recs {
		m := message.NewMessage(watermill.NewULID(), r.Value)
		for k, v := range r.Headers {
			m.Metadata.Set("kafka-header-"+k, v)
		}
		m.Metadata.Set(pipeline.MetaReason, "invalid-record")
		m.Metadata.Set(pipeline.MetaError, r.Reason)
		m.Metadata.Set("busbar-source", source)
		m.Metadata.Set("kafka-topic", r.Topic)
		m.Metadata.Set("kafka-partition", strconv.Itoa(int(r.Partition)))
		m.Metadata.Set("kafka-offset", strconv.FormatInt(r.Offset, 10))
		if len(r.Key) > 0 {
			m.Metadata.Set("kafka-key", string(r.Key))
			m.Metadata.Set(MetaPartitionKey, string(r.Key))
		}
		msgs[i] = m
	}
	return d.e.pub.Publish(SourceDLQTopic(source), msgs...)
}

// startPulsarSource starts a pulsar source (sources/pulsar).
func (e *Engine) startPulsarSource(ctx context.Context, s config.Source) (*pulsarsrc.Source, error) {
	o, err := pulsarsrc.OptionsFromConfig(s)
	if err != nil {
		return nil, err
	}
	o.Publisher, o.DeadLetters, o.Logger = e, pulsarDLQ{e}, e.log
	return pulsarsrc.Start(ctx, o)
}

// pulsarDLQ stores a pulsar source's dead messages on its dead-letter
// topic: the payload as it was, where it came from and why in metadata.
type pulsarDLQ struct{ e *Engine }

func (d pulsarDLQ) DeadLetter(_ context.Context, source string, recs []pulsarsrc.DeadRecord) error {
	msgs := make([]*message.Message, len(recs))
	for i, r := range recs {
		m := message.NewMessage(watermill.NewULID(), r.Value)
		for k, v := range r.Properties {
			m.Metadata.Set("pulsar-property-"+k, v)
		}
		m.Metadata.Set(pipeline.MetaReason, "invalid-record")
		m.Metadata.Set(pipeline.MetaError, r.Reason)
		m.Metadata.Set("busbar-source", source)
		m.Metadata.Set("pulsar-topic", r.Topic)
		m.Metadata.Set("pulsar-message-id", r.MessageID)
		if r.Key != "" {
			m.Metadata.Set("pulsar-key", r.Key)
			m.Metadata.Set(MetaPartitionKey, r.Key)
		}
		msgs[i] = m
	}
	return d.e.pub.Publish(SourceDLQTopic(source), msgs...)
}
