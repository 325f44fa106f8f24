// Package kafka is the Kafka sink (target type kafka): each event becomes
// one record in the CloudEvents Kafka protocol binding, binary by default
// (attributes as ce_ headers, data as the value, content-type from
// datacontenttype) or structured (the event JSON as the value, content-type
// application/cloudevents+json). The topic is fixed or a template filled
// from the event; the key comes from a JSONPath or expression, else the
// event's partitionkey extension.
//
// Deliver is called concurrently by the dispatcher (up to the target's
// concurrency); each call produces one record with a promise and waits for
// it, and the franz-go producer batches concurrent records per partition by
// itself (linger, batch_max_bytes, compression). acks=all with the
// idempotent producer by default: nil from Deliver means the record is on
// every in-sync replica. Records Kafka can never take (too large, invalid
// topic, not authorised) fail permanently and go to the dead-letter queue;
// other failures are retried by the dispatcher.
//
// It must not know about buses, rules or the dispatcher.
package kafka
