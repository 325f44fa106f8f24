// Package pulsar is the Pulsar sink (target type pulsar): each event
// becomes one message on a Pulsar topic (Apache Pulsar, or Tencent Cloud
// TDMQ for Pulsar), binary by default (CloudEvents attributes as ce_
// properties, data as the payload, content-type from datacontenttype) or
// structured (the event JSON as the payload, content-type
// application/cloudevents+json). The topic is fixed or a template filled
// from the event; the key comes from a JSONPath or expression, else the
// event's partitionkey extension.
//
// Deliver is called concurrently by the dispatcher (up to the target's
// concurrency); each call sends one message and waits for the broker's
// acknowledgement, and the producer (one per topic, made on first use)
// batches concurrent messages by key (batching, batch_max_delay,
// batch_max_messages, batch_max_bytes, compression). nil from Deliver means
// the broker stored the message. Messages Pulsar can never take (too large,
// an invalid topic from a template, not authorised) fail permanently and go
// to the dead-letter queue; other failures are retried by the dispatcher.
//
// Tested by contract tests against pulsarfake (no broker runs in CI) and,
// with PULSAR_URL set, end to end in cmd/busbar.
//
// It must not know about buses, rules or the dispatcher.
package pulsar
