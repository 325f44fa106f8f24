package natsjs

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/busbar/busbar/pipeline/transport"
)

var _ transport.Inspector = (*Transport)(nil)

// stream looks up the stream of topic; a missing one wraps ErrNotFound.
func (t *Transport) stream(ctx context.Context, topic string) (jetstream.Stream, error) {
	name, err := StreamName(topic)
	if err != nil {
		return nil, err
	}
	s, err := t.js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("topic %q: %w", topic, transport.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("topic %q: %w", topic, err)
	}
	return s, nil
}

// TopicStats implements transport.Inspector.
func (t *Transport) TopicStats(ctx context.Context, topic string) (transport.TopicStats, error) {
	s, err := t.stream(ctx, topic)
	if err != nil {
		return transport.TopicStats{}, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return transport.TopicStats{}, fmt.Errorf("topic %q: %w", topic, err)
	}
	return transport.TopicStats{Messages: info.State.Msgs, FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq}, nil
}

// Browse implements transport.Inspector.
func (t *Transport) Browse(ctx context.Context, topic string, from uint64, limit int) ([]transport.StoredMessage, error) {
	s, err := t.stream(ctx, topic)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("topic %q: %w", topic, err)
	}
	if info.State.Msgs == 0 {
		return nil, nil // its range reads 0..0, and there is no message 0
	}
	from = max(from, info.State.FirstSeq, 1)
	var out []transport.StoredMessage
	for seq := from; seq <= info.State.LastSeq && len(out) < limit; seq++ {
		m, err := t.get(ctx, s, topic, seq)
		if errors.Is(err, transport.ErrNotFound) {
			continue // deleted (redriven) or expired
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
	return out, nil
}

// Get implements transport.Inspector.
func (t *Transport) Get(ctx context.Context, topic string, seq uint64) (transport.StoredMessage, error) {
	s, err := t.stream(ctx, topic)
	if err != nil {
		return transport.StoredMessage{}, err
	}
	return t.get(ctx, s, topic, seq)
}

func (t *Transport) get(ctx context.Context, s jetstream.Stream, topic string, seq uint64) (transport.StoredMessage, error) {
	raw, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return transport.StoredMessage{}, fmt.Errorf("topic %q message %d: %w", topic, seq, transport.ErrNotFound)
	}
	if err != nil {
		return transport.StoredMessage{}, fmt.Errorf("topic %q message %d: %w", topic, seq, err)
	}
	wm, err := unmarshal(&nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data})
	if err != nil {
		t.log.Warn("stored message has unreadable metadata", "topic", topic, "seq", seq, "error", err)
	}
	return transport.StoredMessage{Seq: raw.Sequence, Time: raw.Time, Message: wm}, nil
}

// Delete implements transport.Inspector.
func (t *Transport) Delete(ctx context.Context, topic string, seq uint64) error {
	s, err := t.stream(ctx, topic)
	if err != nil {
		return err
	}
	if err := s.DeleteMsg(ctx, seq); err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) || errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
			return fmt.Errorf("topic %q message %d: %w", topic, seq, transport.ErrNotFound)
		}
		return fmt.Errorf("topic %q message %d: %w", topic, seq, err)
	}
	return nil
}
