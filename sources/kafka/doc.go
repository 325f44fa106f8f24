// Package kafka is the Kafka source: it reads one topic in a consumer group
// and publishes every record to a bus as a CloudEvent. Records that already
// are CloudEvents (the Kafka protocol binding: structured, the event as the
// value with content-type application/cloudevents+json, or a JSON value
// with "specversion"; binary, attributes in ce_ headers and data as the
// value) pass as they are; others are wrapped by the source's mapping.
// Records that cannot become events go to the source's dead-letter queue
// with the reason and never block the partition.
//
// Offsets are committed only after the bus accepted the batch's events and
// the dead letters were stored (rebalances wait for that: the consumer
// blocks rebalancing from a poll to its commit). If the bus refuses, the
// batch is read again from its first offset after a backoff, so nothing is
// skipped; events may be published twice (at-least-once), with the same
// ids for mapped records (<topic>-<partition>-<offset>).
//
// It must not know about rules, targets or the transport: events go through
// Publisher (the engine), dead letters through DeadLetters.
package kafka
