package kafka

import (
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	// HeaderUUID carries the watermill message UUID: the header
	// watermill-kafka's DefaultMarshaler uses, so both client paths (and
	// other watermill-kafka programs) read each other's messages.
	HeaderUUID = "_watermill_message_uuid"
	// MetaPartitionKey is the metadata entry whose value becomes the Kafka
	// record key, so records of one key stay in one partition, in order.
	// The engine sets it on bus messages (by default to the event's
	// source); routers copy metadata to queue and dead-letter messages, so
	// a key is kept all the way to each target.
	MetaPartitionKey = "busbar-partition-key"
)

// toRecord turns a watermill message into a Kafka record: the payload is
// the value, the UUID and every metadata entry are headers, and the
// partition key (if any) is the key.
func toRecord(topic string, m *message.Message) *kgo.Record {
	r := &kgo.Record{Topic: topic, Value: m.Payload, Headers: make([]kgo.RecordHeader, 0, len(m.Metadata)+1)}
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderUUID, Value: []byte(m.UUID)})
	for k, v := range m.Metadata {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
		if k == MetaPartitionKey && v != "" {
			r.Key = []byte(v)
		}
	}
	return r
}

// toMessage is the inverse of toRecord. A record without a UUID header
// (written by something else) gets topic/partition/offset as its UUID, so
// its redeliveries share one.
func toMessage(r *kgo.Record) *message.Message {
	md := make(message.Metadata, len(r.Headers))
	uuid := ""
	for _, h := range r.Headers {
		if h.Key == HeaderUUID {
			uuid = string(h.Value)
			continue
		}
		md[h.Key] = string(h.Value)
	}
	if uuid == "" {
		uuid = fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)
	}
	m := message.NewMessage(uuid, r.Value)
	m.Metadata = md
	return m
}
