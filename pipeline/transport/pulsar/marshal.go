package pulsar

import (
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	pc "github.com/apache/pulsar-client-go/pulsar"
)

const (
	// PropertyUUID carries the watermill message UUID (the same name as the
	// Kafka transport's header).
	PropertyUUID = "_watermill_message_uuid"
	// MetaPartitionKey is the metadata entry whose value becomes the
	// message key: Key_Shared subscriptions hand all messages of one key
	// to one consumer, in order, and partitioned topics route by it. The
	// engine sets it on bus messages; routers copy metadata, so a key is
	// kept all the way to each target.
	MetaPartitionKey = "busbar-partition-key"
)

// toProducerMessage turns a watermill message into a Pulsar message: the
// payload is the payload, the UUID and every metadata entry are properties
// (Pulsar properties are arbitrary strings, so metadata survives byte for
// byte), and the partition key (if any) is the key.
func toProducerMessage(m *message.Message) *pc.ProducerMessage {
	props := make(map[string]string, len(m.Metadata)+1)
	for k, v := range m.Metadata {
		props[k] = v
	}
	props[PropertyUUID] = m.UUID
	return &pc.ProducerMessage{Payload: m.Payload, Properties: props, Key: m.Metadata.Get(MetaPartitionKey)}
}

// toMessage is the inverse of toProducerMessage. A message without a UUID
// property (written by something else) gets its topic and message id as
// UUID, so its redeliveries share one.
func toMessage(pm pc.Message) *message.Message {
	props := pm.Properties()
	uuid := props[PropertyUUID]
	md := make(message.Metadata, len(props))
	for k, v := range props {
		if k != PropertyUUID {
			md[k] = v
		}
	}
	if uuid == "" {
		uuid = fmt.Sprintf("%s/%s", pm.Topic(), MessageIDString(pm.ID()))
	}
	if pm.Key() != "" && md[MetaPartitionKey] == "" {
		md[MetaPartitionKey] = pm.Key()
	}
	m := message.NewMessage(uuid, pm.Payload())
	m.Metadata = md
	return m
}

// MessageIDString is a message id as ledger:entry:partition:batch, the
// form Pulsar's tools print.
func MessageIDString(id pc.MessageID) string {
	return fmt.Sprintf("%d:%d:%d:%d", id.LedgerID(), id.EntryID(), id.PartitionIdx(), id.BatchIdx())
}
