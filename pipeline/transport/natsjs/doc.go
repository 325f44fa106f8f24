// Package natsjs is busbar's default transport: NATS JetStream, either
// embedded in the busbar process (embedded://, the default) or an external
// NATS cluster (nats://host:4222). It registers both schemes with
// pipeline/transport in init; import it for its side effect.
//
// # What it owns
//
// The embedded nats-server (file storage under <DataDir>/jetstream, no TCP
// port: clients connect in-process), one NATS connection per component
// (admin, the shared publisher, each subscriber), the mapping of busbar
// topics to streams and of consumer groups to durable consumers, and the
// watermill Publisher/Subscriber over github.com/nats-io/nats.go/jetstream.
// It knows nothing about buses, rules or targets: routing code sees only
// transport.Transport.
//
// # Why not watermill-nats
//
// Publisher and Subscriber implement watermill's interfaces directly over
// nats.go/jetstream instead of wrapping watermill-nats/v2. Its pkg/nats
// Subscriber.Close deletes the durable consumer (acked messages return
// after a restart, watermill issue #375); its pkg/jetstream handles a message
// inside the consume callback, so one subscription processes one message at
// a time, drops a message silently when the handler outlives AckWait (no
// InProgress), closes the output channel while the callback may still send
// to it ("send on closed channel" on Close), drains the connection it was
// given, and its publisher waits for each PubAck in turn. Those are the core
// of this transport, so working around them would leave little of it.
//
// Streams, consumers and publishing use nats.go/jetstream. Consuming speaks
// the JetStream pull protocol on the subscription's own inbox: cancelling a
// jetstream Fetch unsubscribes and drops messages already on their way
// (each then waits a whole AckWait), and its Messages/Consume iterators
// prefetch beyond MaxInFlight, where buffered messages get no InProgress.
// Messages use watermill-nats's UUID header (see HeaderUUID), so the wire
// format stays readable by it.
//
// # Topics and streams
//
// A topic (busbar.bus.default, busbar.q.<bus>.<rule>.<target>,
// busbar.dlq.<bus>.<rule>.<target>: tokens of letters, digits, '-', '_',
// joined by '.') is the subject of exactly one stream, named by StreamName:
// '.' -> '_', '_' -> "-_", '-' -> "--" (injective; names longer than 200
// characters are cut and suffixed with a hash). busbar.bus.default lives in
// stream busbar_bus_default. Streams use file storage, limits retention
// (MaxAge, MaxBytes from CreateTopic; several consumer groups read one
// stream, so nothing is deleted on ack) and discard-old.
//
// CreateTopic declares a stream or updates its limits. Publishing to, or
// subscribing to, a topic nobody declared declares it with the URL's
// default limits (max_age, max_bytes; unlimited by default) and logs it at
// info; with auto_create=false it fails with an error naming the topic.
//
// # Consumer groups
//
// Subscriber(group) consumes each topic through the durable pull consumer
// named ConsumerName(group) on that topic's stream, created (or updated) by
// Subscribe with AckExplicit, AckWait, MaxDeliver unlimited, MaxAckPending
// max(4*MaxInFlight, 1024) and DeliverAll: a group created after messages
// were published reads every retained message. Closing a subscriber never
// deletes its consumer. Several subscribers of one group (in one process or
// many, over nats://) share the group's messages.
//
// Each subscription pulls only as many messages as it has free slots
// (MaxInFlight), hands each one to the output channel, and tracks it: Ack
// -> a double ack (AckSync: it returns once the server has recorded the
// ack; the slot is reused only then); Nack -> a Nak with NackDelay, also
// confirmed; every AckWait/3 while neither happened -> InProgress, so a
// slow handler never causes a redelivery. The message context is cancelled
// once the message is settled.
//
// Close (or cancelling Subscribe's ctx) stops pulling, drains the inbox and
// gives back (Nak) messages nobody took, waits up to DrainTimeout for handed-out
// messages to be acked or nacked, then Naks the rest (their contexts are
// cancelled; they are delivered again), closes the output channel, and only
// then the connection. Close can take DrainTimeout plus a few seconds for
// the last acks to be confirmed. Transport.Close closes the subscribers
// still open in parallel before stopping the server, so the orderly
// shutdown is: stop taking new events, close routers (their subscribers
// drain), then close the transport.
//
// Messages are tracked (InProgress) from the moment they are taken from
// the subscription's inbox. Read the output channel promptly (watermill's
// Router does, one goroutine per message): at most MaxInFlight messages are
// requested at a time, and those still queued behind an unread channel get
// no InProgress, so a reader stalled longer than AckWait sees them again.
//
// After a restart of the embedded server, messages that were in flight when
// it stopped (nacked by the drain or not) come back once AckWait has passed
// since their delivery: JetStream keeps pending deliveries on disk but not
// its queue of nacked ones. A server that keeps running (nats://, or other
// subscribers of the group) redelivers nacked messages at once.
//
// Ordering: a group reads its stream in order, but with MaxInFlight > 1 or
// several subscribers messages are handled concurrently, and a nacked or
// timed-out message is redelivered after later ones. Delivery is
// at-least-once; after a crash, messages acked just before it may come
// again.
//
// # Durability
//
// Publish returns nil only after every message has its JetStream PubAck:
// the message is in the stream's file store, written to the OS. JetStream
// fsyncs on an interval (nats-server's default, 2 minutes), so a kill -9 of
// busbar loses nothing acknowledged, while a power loss or kernel crash can
// lose the last interval. sync=always fsyncs every write (slower); sync=1s
// shortens the interval.
//
// # URL
//
//	embedded://                      in-process server, data under --data-dir
//	embedded://?sync=always          fsync every write (or sync=<duration>)
//	embedded://?max_payload=8MB      largest message (server default 1MB, max 64MB)
//	embedded://?listen=127.0.0.1:4333  also accept TCP clients (nats CLI); off by default
//	nats://host:4222[,host2:4222]    external cluster (user:pass@ in the URL works)
//	nats://host:4222?replicas=3      stream replicas (external only)
//
// Both schemes accept auto_create=false, publish_timeout=10s (bound of one
// Publish call, acks included), max_pending=4096 (async publish window of
// the process), max_age=<duration> and max_bytes=<size> (limits of
// auto-declared topics). Unknown options are an error.
//
// The embedded server's data dir is locked (flock on jetstream.lock): a
// second process on the same dir fails with a clear error, and the lock of
// a crashed process is released by the kernel, so restarting after kill -9
// just works (JetStream recovers its files on start).
package natsjs
