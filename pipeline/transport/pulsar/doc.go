// Package pulsar keeps busbar's buses, target queues and dead-letter queues
// on Apache Pulsar topics (self-hosted Pulsar, or Tencent Cloud TDMQ for
// Pulsar), so several `busbar serve` workers with the same config share the
// work through Pulsar subscriptions. It registers the URL schemes pulsar://
// and pulsar+ssl:// with pipeline/transport in init; import it for its side
// effect.
//
// Publisher and Subscriber implement watermill's interfaces directly over
// github.com/apache/pulsar-client-go (there is no maintained watermill
// Pulsar adapter). The client pulls in many modules (protobuf, prometheus,
// the Athenz and OAuth2 auth providers, …); only this package, pclient,
// sources/pulsar and sinks/pulsar import it, and the binary only through
// blank imports in cmd/busbar.
//
// # What is tested how
//
// busbar's CI has no Pulsar broker. The adapter's logic is tested by
// contract tests (contract_test.go, suite_contract_test.go) against
// pulsarfake, an in-memory implementation of the client interfaces; the
// error paths of the real client by network tests against loopback sockets
// that refuse or never answer (network_test.go); the admin calls against an
// HTTP server answering as the admin API documents (admin_test.go). The
// same watermill suite runs against a real broker when PULSAR_URL is set
// (integration_test.go); that path has not been run in CI.
//
// # Topics
//
// A busbar topic's leading "busbar." is replaced by the URL's prefix and
// the name lives in the URL's tenant and namespace:
//
//	persistent://public/default/busbar.bus.<bus>                  a bus
//	persistent://public/default/busbar.q.<bus>.<rule>.<target>    a target queue
//	persistent://public/default/busbar.dlq.<bus>.<rule>.<target>  its dead letters
//	persistent://public/default/busbar.dlq.bus.<bus>              a bus router's dead letters
//	persistent://public/default/busbar.dlq.source.<source>        a source's dead letters
//
// Creating topics and setting their retention is not part of Pulsar's
// binary protocol. With admin=http://broker:8080, CreateTopic creates each
// topic through the admin REST API (partitioned with partitions=N) and sets
// its retention (the bus's retention and max_bytes, 14 days for dead
// letters, unlimited for queues: topic-level policies must be enabled on
// the brokers, the default since Pulsar 3.0). Without admin (TDMQ, or when
// busbar may not administer the cluster), brokers create topics on first
// use and the namespace's retention applies: set one (pulsar-admin
// namespaces set-retention), because Pulsar deletes messages no
// subscription holds once they fall out of retention — busbar's
// dead-letter topics have no subscription.
//
// # Subscriptions, acks, order
//
// Subscriber(group) consumes each topic through the durable subscription
// <prefix><group> (busbar.router on a bus, busbar.dispatch on a queue),
// created at the earliest message, so a new group reads every retained
// message. The type is Key_Shared by default: every message of one key goes
// to one consumer at a time, in order, while the subscription's keys spread
// over all workers; subscription=shared hands messages round-robin instead
// (no order). The metadata entry busbar-partition-key (MetaPartitionKey)
// becomes the message key; the engine sets it from the bus's partition_key,
// and producers batch by key (KeyBasedBatchBuilder) so Key_Shared never sees
// a batch of mixed keys. Messages without a key all go to one consumer of a
// Key_Shared subscription.
//
// A subscription hands out at most MaxInFlight messages not yet acked or
// nacked. An ack is sent to the broker after the handler acked (after the
// event was handed off or delivered); acks are grouped for ack_interval
// (100ms) unless ack_interval=0. A nack gives the message back: it is
// delivered again after NackDelay (at least 100ms), after later messages.
// There is no ack timeout: a live consumer keeps its messages as long as the
// handler needs. With max_deliveries=N, the client's dead-letter policy
// moves a message delivered N times without an ack to the topic's busbar
// dead-letter queue, with busbar-reason deliveries-exhausted, busbar-error,
// busbar-attempts and busbar-failed-at added to its properties; off by
// default, because busbar's dispatchers retry and dead-letter by their own
// policy and a bus router nacks only while it cannot hand off.
//
// Close (or cancelling Subscribe's ctx) stops receiving, waits up to
// DrainTimeout for handed-out messages to be acked or nacked, cancels the
// contexts of the rest, closes the output channel and then the consumer;
// the broker delivers every unacked message again (to another worker, or
// after a restart). Delivery is at-least-once.
//
// # Durability
//
// Publish returns nil only after the broker acknowledged every message (it
// is written to the bookies' journals, ackQuorum copies). A partial failure
// is a *transport.PublishError.
//
// # URL
//
//	pulsar://p1:6650,p2:6650          brokers (port 6650, 6651 for pulsar+ssl)
//	pulsar+ssl://p1:6651?tls_ca=ca.pem&tls_cert=c.pem&tls_key=k.pem&tls_insecure_skip_verify=false&tls_verify_hostname=true
//	?token=${PULSAR_TOKEN} or ?token_file=/run/secrets/pulsar-token
//	?oauth2_issuer_url=...&oauth2_audience=...&oauth2_client_id=...&oauth2_client_secret=${SECRET}&oauth2_scope=...
//	  (or oauth2_private_key=/path/key.json instead of id and secret)
//	?tenant=public&namespace=default&prefix=busbar.
//	?subscription=key_shared|shared
//	?admin=http://p1:8080&partitions=0
//	?connect_timeout=10s&operation_timeout=30s&publish_timeout=30s
//	?batching=true&batch_delay=1ms&compression=none|lz4|zlib|zstd|snappy
//	?ack_interval=100ms&max_deliveries=0
//	?listener_name=...
//
// Unknown options are an error. connect_timeout also bounds the protocol
// handshake (it is the client's keep-alive interval: a broker silent for
// twice as long is considered gone). Printed configs hide token and
// oauth2_client_secret unless they came from ${ENV}.
package pulsar
