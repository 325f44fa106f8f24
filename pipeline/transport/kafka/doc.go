// Package kafka keeps busbar's buses, target queues and dead-letter queues
// on Kafka topics, so several `busbar serve` workers with the same config
// share the work: Kafka consumer groups spread the partitions over the
// workers and move them when one joins, leaves or dies. It registers two
// URL schemes with pipeline/transport in init; import it for its side
// effect:
//
//	kafka://k1:9092,k2:9092?...         franz-go (github.com/twmb/franz-go), the default
//	kafka+sarama://k1:9092,k2:9092?...  IBM/sarama through watermill-kafka/v3
//
// Both paths implement watermill's Publisher and Subscriber, pass
// watermill's universal Pub/Sub suite (pubsub_test.go), and use the same
// topics, groups, headers and key hashing, so a deployment can switch
// between them (all workers on one scheme at a time). franz-go is the
// default because it is several times faster (bench/RESULTS.md): Sarama,
// as watermill-kafka drives it, waits for each message's acknowledgement
// in turn and hands out one message per partition at a time.
//
// # Topics
//
// A busbar topic's leading "busbar." is replaced by the URL's prefix
// (default "busbar.", so names are unchanged):
//
//	busbar.bus.<bus>                      a bus
//	busbar.q.<bus>.<rule>.<target>        a target queue
//	busbar.dlq.<bus>.<rule>.<target>      a target's dead-letter queue
//	busbar.dlq.bus.<bus>                  events a bus's router could not read
//	busbar.dlq.source.<source>            records a source could not turn into events
//
// With prefix=acme.busbar. the bus orders is acme.busbar.bus.orders. Names
// of buses, rules and targets are limited to letters, digits, '-' and '_',
// so every topic is a valid Kafka name (at most 9+3*64+2 characters). Kafka
// treats '.' and '_' as the same in metric names and refuses topics that
// differ only there; avoid bus/rule/target names whose joined forms could
// collide that way (bus a_b, rule c vs bus a, rule b_c).
//
// CreateTopic (called by the engine for every bus, queue and dead-letter
// queue at start) creates a missing topic with the URL's partitions
// (default 6) and replication (default: the broker's), and sets
// retention.ms (the bus's retention, 14 days for dead letters, unlimited
// for queues) and retention.bytes (the bus's max_bytes divided among the
// partitions). An existing topic keeps its partitions: adding partitions
// moves keys, so do it knowingly with Kafka's tools. Topics used before
// anyone declared them are created with the broker's default retention
// (auto_create=false makes that an error instead).
//
// # Keys and order
//
// The metadata entry busbar-partition-key (MetaPartitionKey) becomes the
// record key; routers copy metadata, so an event keeps its key on the bus,
// its target queues and dead-letter queues. Keys are hashed with murmur2,
// as by the Java client. The engine sets the key from the bus's
// partition_key (default: the event's source). Records of one key are in
// one partition, in order; with MaxInFlight 1 (a target's concurrency: 1)
// they are also delivered in order.
//
// # Consumer groups, acks and commits
//
// Subscriber(group) consumes each topic in the Kafka consumer group
// <prefix><group>.<topic without "busbar.">, for example
// busbar.router.bus.orders and busbar.dispatch.q.orders.audit.crm: one
// group per (busbar group, topic), so adding a target never rebalances
// another's queue. A new group starts at the oldest retained record, as a
// new durable consumer does on the embedded transport.
//
// franz-go path: each Subscribe runs one client (cooperative-sticky
// rebalancing, auto-commit off, BlockRebalanceOnPoll). Up to MaxInFlight
// records are handed out at once, in offset order per partition, round-robin
// over partitions. Each assigned partition keeps the window of records it
// handed out in offset order; a record leaves the window once it and every
// record before it were acked, and the offset after it becomes
// committable: with MaxInFlight > 1 only the contiguous acked prefix is
// ever committed. Commits run every commit_interval (default 1s), when
// partitions are revoked, and on close. A nacked record is handed out again
// after NackDelay by the same worker (it keeps its place: nothing after it
// is committed past it). There is no AckWait: Kafka does not redeliver to a
// live member, so a handler may take as long as it needs.
//
// Rebalances: records are attached to the partition state of the
// assignment they were fetched under while rebalances are blocked (poll to
// queue takes microseconds), and every assignment gets fresh state, so an
// ack of a record from an earlier assignment can never move a later
// assignment's commit (the failure behind Redpanda Connect's rebalance
// data-loss fixes). On revoke the subscription stops handing out the
// partition's records, waits up to min(DrainTimeout, 10s) for those in
// flight, commits the acked prefix and forgets the rest: the next owner
// starts at the committed offset and delivers them again (duplicates, never
// loss). On a lost session (a worker paused past session_timeout) nothing
// is committed. A worker killed with -9 leaves its partitions to the others
// after session_timeout (default 45s).
//
// Close (or cancelling Subscribe's ctx) stops fetching and handing out,
// waits up to DrainTimeout for handed-out messages to be acked or nacked,
// commits, closes the output channel, then leaves the group. Messages'
// contexts are cancelled when they are settled, revoked or closed.
//
// Sarama path: watermill-kafka's consumer hands out one message per
// partition and waits for its ack (so MaxInFlight is reached only across
// partitions); acked offsets are marked and committed every
// commit_interval; a nack resends the message after NackDelay.
//
// # Durability
//
// Publish returns nil only after every record was acknowledged by all
// in-sync replicas (acks=all, idempotent producer); with replication ≥ 3
// and the brokers' min.insync.replicas ≥ 2 an acknowledged event survives
// the loss of a broker. Delivery is at-least-once.
//
// # URL
//
//	kafka://k1:9092,k2:9092           brokers (port 9092 when left out)
//	kafka://user:pass@k1:9092?sasl=scram-sha-512   SASL (plain is the default with credentials)
//	?tls=true&tls_ca=ca.pem&tls_cert=c.pem&tls_key=k.pem&tls_server_name=...&tls_insecure_skip_verify=false
//	?prefix=busbar.                   topic and group prefix
//	?partitions=6&replication=3       of topics busbar creates
//	?auto_create=true                 create undeclared topics on first use
//	?session_timeout=45s&rebalance_timeout=60s&commit_interval=1s
//	?publish_timeout=30s&linger=0s&compression=snappy   (none, gzip, snappy, lz4, zstd)
//	?client_id=busbar
//
// Unknown options are an error. Keep the password in ${ENV}: printed
// configs hide it.
package kafka
