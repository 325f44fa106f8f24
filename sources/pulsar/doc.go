// Package pulsar is the Pulsar source: it reads one existing Pulsar topic
// (Apache Pulsar, or Tencent Cloud TDMQ for Pulsar) through a durable
// subscription and publishes every message to a bus as a CloudEvent.
// Messages that already are CloudEvents pass as they are: structured (the
// event as the payload, content-type application/cloudevents+json, or a
// JSON payload with "specversion") or binary (attributes in ce_ properties,
// data as the payload, as busbar's Pulsar sink writes them); others are
// wrapped by the source's mapping, as for Kafka. Messages that cannot
// become events go to the source's dead-letter queue with the reason and
// never block the topic.
//
// Messages are acknowledged only after the bus accepted the batch's events
// and the dead letters were stored. If the bus refuses, the same batch is
// published again after a backoff (up to 5s), in order; nothing is acked
// meanwhile, and a worker that stops leaves the batch to the subscription
// (Pulsar delivers it again). At-least-once; mapped events get stable ids
// (<topic>-<message id>), so receivers can deduplicate.
//
// start applies to a new subscription: earliest or latest; an RFC 3339
// time makes the source seek the subscription to it when the first message
// it receives was published before that time (so a restart, which finds
// the cursor past it, does not seek again).
//
// Tested by contract tests against pulsarfake (no broker runs in CI), the
// real client against refusing and silent ports, and, with PULSAR_URL set,
// end to end in cmd/busbar.
//
// It must not know about rules, targets or the transport: events go through
// Publisher (the engine), dead letters through DeadLetters.
package pulsar
