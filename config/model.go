package config

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// DefaultTransport is the transport used when the config names none: an
// embedded NATS JetStream server storing under the data dir.
const DefaultTransport = "embedded://"

// DefaultBus always exists, whether or not the config declares it.
const DefaultBus = "default"

// Config is the whole declarative model: what busbar serves. The YAML file,
// the JSON form and (later) the management API all speak this model.
type Config struct {
	// Transport is the URL of the Pub/Sub that holds buses, target queues and
	// dead-letter queues: "embedded://" (default) for the embedded NATS
	// JetStream server under --data-dir, or a nats://, kafka:// or pulsar://
	// URL.
	Transport string `yaml:"transport,omitempty" json:"transport,omitempty"`
	// Ingest holds limits of the HTTP ingest API.
	Ingest Ingest `yaml:"ingest,omitempty" json:"ingest,omitempty"`
	// Buses declares the buses; "default" exists even when not listed.
	Buses []Bus `yaml:"buses,omitempty" json:"buses,omitempty"`
	// Rules select events from a bus and deliver them to targets.
	Rules []Rule `yaml:"rules,omitempty" json:"rules,omitempty"`
	// Sources bind external streams (Kafka topics) to buses: every record
	// becomes an event on its bus (docs/kafka.md).
	Sources []Source `yaml:"sources,omitempty" json:"sources,omitempty"`
	// Pipes route one source straight to one target, without a bus or a
	// target queue: the high-throughput path, such as a Kafka topic into a
	// ClickHouse table (docs/pipes.md).
	Pipes []Pipe `yaml:"pipes,omitempty" json:"pipes,omitempty"`
	// Connections are reusable credentials of API destinations: Basic,
	// API key or OAuth 2.0 client credentials, with extra request
	// parameters (docs/targets.md).
	Connections []Connection `yaml:"connections,omitempty" json:"connections,omitempty"`
	// Destinations are named HTTP APIs that http targets deliver to: URL
	// with path parameters, method, connection, timeout and rate limit.
	Destinations []Destination `yaml:"destinations,omitempty" json:"destinations,omitempty"`

	// templates maps the field path of every string that held an ${ENV}
	// reference to its text before expansion; Redacted puts it back.
	templates map[string]string
}

// Ingest limits what one HTTP request may carry.
type Ingest struct {
	// MaxBatchEntries is the most events one batch or PutEvents request may
	// hold: 1 to 100000 (default 1000).
	MaxBatchEntries int `yaml:"max_batch_entries,omitempty" json:"max_batch_entries,omitempty"`
	// MaxRequestBytes is the largest request body accepted, in bytes: 1024
	// to 1 GiB (default 4194304, 4 MiB).
	MaxRequestBytes int64 `yaml:"max_request_bytes,omitempty" json:"max_request_bytes,omitempty"`
}

// Bus is a named, durable, ordered stream of events.
type Bus struct {
	// Name of the bus, unique across the config: letters, digits, '-' and
	// '_', at most 64 characters. It becomes a topic name on the transport.
	Name string `yaml:"name" json:"name"`
	// Description is free text for people reading the config.
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Retention is how long events stay on the bus after they were published:
	// at least 1m (default 168h, 7 days).
	Retention Duration `yaml:"retention,omitempty" json:"retention,omitempty"`
	// MaxBytes caps the bus's storage in bytes; the oldest events go first
	// (default 0, no cap).
	MaxBytes int64 `yaml:"max_bytes,omitempty" json:"max_bytes,omitempty"`
	// PartitionKey keeps events of one key in order on partitioned
	// transports (kafka://): a JSONPath into the event ($.data.customerId)
	// or an expr-lang expression (source + "/" + subject). Default: the
	// event's source.
	PartitionKey string `yaml:"partition_key,omitempty" json:"partition_key,omitempty"`
	// RateLimitPerSecond caps the events producers may publish to this bus
	// over HTTP, per second, each event counted (a batch of 10 counts 10):
	// 1 to 10000000 (default: no limit). A request over the limit is
	// answered 429 ThrottlingException with Retry-After, and none of its
	// events is published. Kafka and Pulsar sources are not limited.
	RateLimitPerSecond int `yaml:"rate_limit_per_second,omitempty" json:"rate_limit_per_second,omitempty"`
	// RateLimitBurst is how many events may arrive at once above the
	// steady rate: 1 to 10000000 (default: rate_limit_per_second). A
	// request carrying more events than this is refused (413): it could
	// never pass.
	RateLimitBurst int `yaml:"rate_limit_burst,omitempty" json:"rate_limit_burst,omitempty"`
}

// Rule selects events from one bus with an event pattern and delivers the
// matching ones to each of its targets.
type Rule struct {
	// Name of the rule, unique across the config: letters, digits, '-' and
	// '_', at most 64 characters.
	Name string `yaml:"name" json:"name"`
	// Description is free text for people reading the config.
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Bus the rule reads: a bus declared under buses, or "default" (the
	// default).
	Bus string `yaml:"bus,omitempty" json:"bus,omitempty"`
	// Enabled is true unless set to false; a disabled rule matches nothing
	// and keeps its queued events.
	Enabled *bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	// Pattern is an EventBridge event pattern (see docs/patterns.md), written
	// as a YAML mapping or a JSON object, or as a string holding JSON. Loading
	// stores it as compact JSON. Absent matches every event on the bus.
	Pattern json.RawMessage `yaml:"-" json:"pattern,omitempty"`
	// Filter is an expr-lang expression over the event that must return a
	// bool; with a pattern, both must hold.
	Filter string `yaml:"filter,omitempty" json:"filter,omitempty"`
	// Targets receive the matching events; each has its own durable queue.
	// At least one.
	Targets []Target `yaml:"targets" json:"targets"`
}

// IsEnabled reports whether the rule takes part in routing.
func (r *Rule) IsEnabled() bool { return r.Enabled == nil || *r.Enabled }

// Target is where a rule delivers: a sink plus its delivery policy.
type Target struct {
	// ID of the target, unique within its rule: letters, digits, '-' and '_',
	// at most 64 characters.
	ID string `yaml:"id" json:"id"`
	// Type of sink: "http", "clickhouse", or a chat robot: "dingtalk",
	// "wecom", "feishu" (also Lark) or "slack".
	Type string `yaml:"type" json:"type"`
	// URL of the HTTP endpoint, or of a chat robot's webhook: http:// or
	// https:// (required for type http unless destination is set, and for
	// chat robots).
	URL string `yaml:"url,omitempty" json:"url,omitempty"`
	// Destination names an API destination (under destinations:) an http
	// target delivers to instead of url; the destination's method, timeout,
	// connection and rate limit apply.
	Destination string `yaml:"destination,omitempty" json:"destination,omitempty"`
	// Method is the HTTP method: POST (the default), PUT, PATCH, GET or
	// DELETE. GET and DELETE send no body.
	Method string `yaml:"method,omitempty" json:"method,omitempty"`
	// Headers are added to every request; values may be ${ENV} references,
	// and {$.json.path} placeholders filled from the event. Values are never
	// printed: Redacted hides them and errors never quote them.
	Headers map[string]string `yaml:"headers,omitempty" json:"headers,omitempty"`
	// Query parameters are added to the URL of every request; values may
	// hold {$.json.path} placeholders filled from the event.
	Query map[string]string `yaml:"query,omitempty" json:"query,omitempty"`
	// Secret signs the messages of dingtalk and feishu robots (their
	// "signature" security setting): an ${ENV} reference or file:/path.
	// Never printed.
	Secret string `yaml:"secret,omitempty" json:"secret,omitempty"`
	// Text is the message a chat robot posts, with <$.json.path>
	// placeholders filled from the event ("Order <$.data.orderId> failed").
	// Without it, the target's transform makes the text.
	Text string `yaml:"text,omitempty" json:"text,omitempty"`
	// Timeout of one delivery attempt: 1ms to 15m (default 5s).
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// Mode is the CloudEvents HTTP binding mode: "structured" (default) or "binary".
	Mode string `yaml:"mode,omitempty" json:"mode,omitempty"`
	// Transform reshapes what the target receives: the whole event (the
	// default), its data, one part, a constant, a template or an expression,
	// after masking personal data. See docs/transforms.md.
	Transform *Transform `yaml:"transform,omitempty" json:"transform,omitempty"`
	// Retry bounds redelivery of failed attempts.
	Retry Retry `yaml:"retry,omitempty" json:"retry,omitempty"`
	// Concurrency is how many events of this target may be in delivery at
	// once: 1 to 1024 (default 64; 1 for chat robots, which take about 20
	// messages a minute). 1 keeps strict order. Batching sinks
	// fill a batch only from events in delivery: clickhouse targets and
	// http targets with batch take 1 to 100000 (default 10000 for
	// clickhouse; batch.max_rows × batch.max_in_flight, at most 10000, for
	// http).
	Concurrency int `yaml:"concurrency,omitempty" json:"concurrency,omitempty"`
	// Batch groups events into bulk writes: the inserts of a clickhouse
	// target; for an http target (opt-in), one POST per batch in CloudEvents
	// batch mode, or a JSON array of the transformed bodies (see
	// docs/targets.md); the batches of a pipe.
	Batch Batch `yaml:"batch,omitempty" json:"batch,omitzero"`
	// ClickHouse says where and how a clickhouse target stores events
	// (required for type clickhouse).
	ClickHouse ClickHouse `yaml:"clickhouse,omitempty" json:"clickhouse,omitzero"`
	// Kafka says where and how a kafka target produces (required for type
	// kafka).
	Kafka KafkaTarget `yaml:"kafka,omitempty" json:"kafka,omitzero"`
	// Pulsar says where and how a pulsar target produces (required for type
	// pulsar; docs/pulsar.md).
	Pulsar PulsarTarget `yaml:"pulsar,omitempty" json:"pulsar,omitzero"`

	// dest is the destination Destination names, linked by ApplyDefaults.
	dest *Destination
	// pipe marks the target of a pipe, set by ApplyDefaults: its batch
	// shapes the pipe's batches, not the sink's requests.
	pipe bool
}

// Batch bounds the bulk writes of a batching sink. A batch is written when
// it reaches max_rows or max_bytes, or max_wait after its first event, or
// when every event in delivery is waiting for it. An http target's
// defaults differ: max_rows 100, max_bytes 1 MiB, max_wait 10ms,
// max_in_flight 4.
type Batch struct {
	// MaxRows is the most events in one write: 1 to 1000000 (default 50000;
	// 100 for http targets).
	MaxRows int `yaml:"max_rows,omitempty" json:"max_rows,omitempty"`
	// MaxBytes is the most bytes of events in one write: 1024 to 1 GiB
	// (default 16777216, 16 MiB; 1048576, 1 MiB, for http targets).
	MaxBytes int64 `yaml:"max_bytes,omitempty" json:"max_bytes,omitempty"`
	// MaxWait is how long the first event of a batch waits for more: 1ms to
	// 1h (default 1s; 10ms for http targets).
	MaxWait Duration `yaml:"max_wait,omitempty" json:"max_wait,omitempty"`
	// MaxInFlight is how many writes may run at once: 1 to 64 (default 4).
	MaxInFlight int `yaml:"max_in_flight,omitempty" json:"max_in_flight,omitempty"`
}

// ClickHouse is a clickhouse target's server and table. Without columns,
// events go to the default events table (one row per event: CloudEvents
// attributes as columns, data as JSON; see docs/clickhouse.md), created when
// missing. With columns, they go to a table of yours.
type ClickHouse struct {
	// DSN of the server: clickhouse://user:password@host:9000/database for
	// the native protocol, or http://user:password@host:8123/database (or
	// https://...?secure=true) for HTTP. Keep the password in ${ENV}.
	DSN string `yaml:"dsn" json:"dsn"`
	// Table to write, as name or database.name (default "events").
	Table string `yaml:"table,omitempty" json:"table,omitempty"`
	// CreateTable creates the default events table when it is missing
	// (default true). A table with columns must exist already.
	CreateTable *bool `yaml:"create_table,omitempty" json:"create_table,omitempty"`
	// DataType is the type of the data column of a created events table:
	// "json" (the default: ClickHouse's JSON type, paths queryable as
	// data.a.b) or "string" (the data as JSON text).
	DataType string `yaml:"data_type,omitempty" json:"data_type,omitempty"`
	// TTL drops rows this long after they were ingested, for a created
	// events table: 1h or more (default: keep forever).
	TTL Duration `yaml:"ttl,omitempty" json:"ttl,omitempty"`
	// AsyncInsert lets the server buffer inserts (async_insert=1,
	// wait_for_async_insert=1): fewer parts from small batches, at the price
	// of weaker deduplication of retried batches.
	AsyncInsert bool `yaml:"async_insert,omitempty" json:"async_insert,omitempty"`
	// Columns map the columns of your own table to parts of the event; an
	// event whose value does not fit its column's type fails alone (to the
	// dead-letter queue).
	Columns []ClickHouseColumn `yaml:"columns,omitempty" json:"columns,omitempty"`
}

// ClickHouseColumn fills one column of a custom table: from a JSONPath
// into the event, or from an expr-lang expression over it.
type ClickHouseColumn struct {
	// Name of the column in the table.
	Name string `yaml:"name" json:"name"`
	// Path into the CloudEvent (or into the transformed body when the target
	// has a transform): $.data.order.id, $.source, $['odd key'], $.items[0].
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
	// Expr is an expr-lang expression over the event (id, source, type,
	// time, data, ...) whose result fills the column, instead of path.
	Expr string `yaml:"expr,omitempty" json:"expr,omitempty"`
	// Default is used when the path finds nothing or null, converted like a
	// value from the event. Without it a missing value is NULL in a
	// Nullable column and an error for the event in any other.
	Default string `yaml:"default,omitempty" json:"default,omitempty"`
}

// Retry is a target's retry policy: exponential backoff with full jitter.
type Retry struct {
	// MaxAttempts counts the first attempt too: 1 (no retries) to 1000
	// (default 185, as EventBridge).
	MaxAttempts int `yaml:"max_attempts,omitempty" json:"max_attempts,omitempty"`
	// MaxEventAge gives up on an event this long after it was ingested,
	// whatever attempts remain: 1s to 168h (default 24h).
	MaxEventAge Duration `yaml:"max_event_age,omitempty" json:"max_event_age,omitempty"`
	// InitialInterval before the first retry: 1ms to 1h, at most
	// max_interval (default 100ms).
	InitialInterval Duration `yaml:"initial_interval,omitempty" json:"initial_interval,omitempty"`
	// MaxInterval caps the backoff: 1ms to 24h (default 60s).
	MaxInterval Duration `yaml:"max_interval,omitempty" json:"max_interval,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("5s", "1h30m").
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String is the shortest Go duration string for d: "168h", "1m30s", "100ms".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// MarshalText writes d as a Go duration string; JSON and YAML encoders use it.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a Go duration string; JSON and YAML decoders use it.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (use Go syntax like \"5s\", \"1m30s\")", b)
	}
	*d = Duration(v)
	return nil
}

// Transform reshapes the events one target receives (docs/transforms.md).
// It has one form, named by form or by the one form field set (path,
// constant, template, expr); masks apply first, with any form.
type Transform struct {
	// Form is the shape delivered: "whole" (the CloudEvent; the default),
	// "data", "part", "constant", "template" or "expr". Left out, it is the
	// form of the field that is set.
	Form string `yaml:"form,omitempty" json:"form,omitempty"`
	// Path is the JSONPath of the part delivered, for form part
	// ($.data.order). A path with [*], .* or .. delivers the list of values.
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
	// Constant is delivered instead of every event, for form constant: sent
	// as application/json when it is JSON, as text/plain otherwise.
	Constant *string `yaml:"constant,omitempty" json:"constant,omitempty"`
	// Paths define the template's variables, for form template: up to 100
	// of name: JSONPath into the event.
	Paths map[string]string `yaml:"paths,omitempty" json:"paths,omitempty"`
	// Template is JSON or text with <variable> placeholders, for form
	// template (EventBridge's input template). A JSON template always gives
	// valid JSON: strings are quoted and escaped, a missing value is null.
	Template string `yaml:"template,omitempty" json:"template,omitempty"`
	// Expr is an expr-lang expression over the event, for form expr: a map,
	// list, number or boolean result is sent as JSON, a string as text.
	Expr string `yaml:"expr,omitempty" json:"expr,omitempty"`
	// Mask hides personal data before the form applies, one mask after the
	// other (at most 100).
	Mask []Mask `yaml:"mask,omitempty" json:"mask,omitempty"`
}

// Mask hides the values one JSONPath reaches.
type Mask struct {
	// Path is the JSONPath of the values to hide: $.data.customer.phone;
	// [*], .* and ..name reach every match.
	Path string `yaml:"path" json:"path"`
	// Action is what becomes of them: "redact" (replaced by replacement),
	// "remove", "hash" (HMAC-SHA256 with key, in hex, so equal values stay
	// joinable) or "partial" (keep_first and keep_last characters kept, the
	// rest replaced by *).
	Action string `yaml:"action" json:"action"`
	// Replacement is the string redact writes (default "REDACTED"); partial
	// writes it for objects, lists, booleans and null.
	Replacement *string `yaml:"replacement,omitempty" json:"replacement,omitempty"`
	// Key is the secret of hash, at least 16 bytes, written as an ${ENV}
	// reference. It is never printed.
	Key string `yaml:"key,omitempty" json:"key,omitempty"`
	// KeepFirst is how many leading characters partial keeps: 0 to 1000
	// (default 0).
	KeepFirst int `yaml:"keep_first,omitempty" json:"keep_first,omitempty"`
	// KeepLast is how many trailing characters partial keeps: 0 to 1000
	// (default 0).
	KeepLast int `yaml:"keep_last,omitempty" json:"keep_last,omitempty"`
}

// Connection is a reusable set of credentials for API destinations, with
// extra parameters added to every request made with it. Its type names the
// one auth block it holds.
type Connection struct {
	// Name of the connection, unique across the config: letters, digits,
	// '-' and '_', at most 64 characters.
	Name string `yaml:"name" json:"name"`
	// Description is free text for people reading the config.
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Type of auth: "basic", "api_key" or "oauth2_client_credentials".
	Type string `yaml:"type" json:"type"`
	// Basic holds the username and password of type basic.
	Basic *BasicAuth `yaml:"basic,omitempty" json:"basic,omitempty"`
	// APIKey holds the key of type api_key.
	APIKey *APIKey `yaml:"api_key,omitempty" json:"api_key,omitempty"`
	// OAuth2 holds the token endpoint and client of type
	// oauth2_client_credentials.
	OAuth2 *OAuth2 `yaml:"oauth2,omitempty" json:"oauth2,omitempty"`
	// Headers are added to every request made with the connection (a
	// target's own headers win). Values are never printed.
	Headers map[string]string `yaml:"headers,omitempty" json:"headers,omitempty"`
	// Query parameters are added to every request made with the connection
	// (a target's own win). Values are never printed.
	Query map[string]string `yaml:"query,omitempty" json:"query,omitempty"`
	// Body fields are set in every JSON object body sent with the
	// connection, as strings; other bodies are sent unchanged. Values are
	// never printed.
	Body map[string]string `yaml:"body,omitempty" json:"body,omitempty"`
}

// BasicAuth is HTTP Basic authentication.
type BasicAuth struct {
	// Username sent with every request.
	Username string `yaml:"username" json:"username"`
	// Password sent with every request: an ${ENV} reference or file:/path.
	// Never printed.
	Password string `yaml:"password" json:"password"`
}

// APIKey is a key sent with every request, in a header or in the query
// string.
type APIKey struct {
	// Name of the header or query parameter ("X-Api-Key", "api_key").
	Name string `yaml:"name" json:"name"`
	// Value is the key: an ${ENV} reference or file:/path. Never printed.
	Value string `yaml:"value" json:"value"`
	// In is where the key goes: "header" (the default) or "query".
	In string `yaml:"in,omitempty" json:"in,omitempty"`
}

// OAuth2 is the OAuth 2.0 client credentials grant: busbar fetches a token
// from the token endpoint, caches it, refreshes it before it expires (and
// once when a destination answers 401) and sends it as a bearer token.
type OAuth2 struct {
	// TokenURL is the token endpoint: http:// or https://.
	TokenURL string `yaml:"token_url" json:"token_url"`
	// ClientID identifies busbar to the token endpoint.
	ClientID string `yaml:"client_id" json:"client_id"`
	// ClientSecret authenticates busbar to the token endpoint: an ${ENV}
	// reference or file:/path. Never printed.
	ClientSecret string `yaml:"client_secret" json:"client_secret"`
	// Scopes requested, if any.
	Scopes []string `yaml:"scopes,omitempty" json:"scopes,omitempty"`
	// Method of the token request: "POST" (the default) or "GET" (the
	// parameters then go in the query string).
	Method string `yaml:"method,omitempty" json:"method,omitempty"`
	// AuthStyle is how the client id and secret are sent: "auto" (the
	// default: tried as Basic auth, then in the body), "header" (Basic
	// auth) or "body" (form fields).
	AuthStyle string `yaml:"auth_style,omitempty" json:"auth_style,omitempty"`
	// Headers are added to token requests. Values are never printed.
	Headers map[string]string `yaml:"headers,omitempty" json:"headers,omitempty"`
	// Query parameters are added to token requests. Values are never
	// printed.
	Query map[string]string `yaml:"query,omitempty" json:"query,omitempty"`
	// Body parameters are added to the form of token requests (audience,
	// resource, ...). Values are never printed.
	Body map[string]string `yaml:"body,omitempty" json:"body,omitempty"`
}

// Destination is an HTTP API that http targets deliver to: where, how,
// with which credentials and how fast.
type Destination struct {
	// Name of the destination, unique across the config: letters, digits,
	// '-' and '_', at most 64 characters.
	Name string `yaml:"name" json:"name"`
	// Description is free text for people reading the config.
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// URL of the API: http:// or https://, with {$.json.path} path
	// parameters filled from each event
	// (https://api.example.com/orders/{$.data.orderId}).
	URL string `yaml:"url" json:"url"`
	// Method is the HTTP method: POST (the default), PUT, PATCH, GET or
	// DELETE. GET and DELETE send no body.
	Method string `yaml:"method,omitempty" json:"method,omitempty"`
	// Connection names the connection (under connections:) whose
	// credentials and parameters every request carries; none when empty.
	Connection string `yaml:"connection,omitempty" json:"connection,omitempty"`
	// RateLimitPerSecond caps the requests to this destination per second,
	// across every target and rule of the process that uses it: 1 to 100000
	// (default: no limit).
	RateLimitPerSecond int `yaml:"rate_limit_per_second,omitempty" json:"rate_limit_per_second,omitempty"`
	// Timeout of one request: 1ms to 15m (default 5s).
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`

	// conn is the connection Connection names, linked by ApplyDefaults.
	conn *Connection
}

// Source binds an external stream to a bus: every record becomes an event
// on the bus (docs/kafka.md). Its type names the one block it holds.
type Source struct {
	// Name of the source, unique across the config: letters, digits, '-'
	// and '_', at most 64 characters. It names the source's dead-letter
	// queue (busbar.dlq.source.<name>) and its default consumer group.
	Name string `yaml:"name" json:"name"`
	// Description is free text for people reading the config.
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Type of source: "kafka" or "pulsar".
	Type string `yaml:"type" json:"type"`
	// Bus the events go to: a bus declared under buses, or "default" (the
	// default).
	Bus string `yaml:"bus,omitempty" json:"bus,omitempty"`
	// Kafka says which topic a kafka source reads (required for type kafka).
	Kafka KafkaSource `yaml:"kafka,omitempty" json:"kafka,omitzero"`
	// Pulsar says which topic a pulsar source reads (required for type
	// pulsar; docs/pulsar.md).
	Pulsar PulsarSource `yaml:"pulsar,omitempty" json:"pulsar,omitzero"`
	// Mapping wraps records that are not CloudEvents into events. Without
	// it such records go to the source's dead-letter queue.
	Mapping *SourceMapping `yaml:"mapping,omitempty" json:"mapping,omitempty"`
}

// KafkaSource is the topic a kafka source reads and how to reach it.
type KafkaSource struct {
	// Brokers are the bootstrap servers, host:port (at least one).
	Brokers []string `yaml:"brokers" json:"brokers"`
	// Topic to read.
	Topic string `yaml:"topic" json:"topic"`
	// Group is the Kafka consumer group; workers with the same config share
	// the topic's partitions (default "busbar.source.<name>").
	Group string `yaml:"group,omitempty" json:"group,omitempty"`
	// Start is where a group without committed offsets begins: "earliest"
	// (the default), "latest", or an RFC 3339 time (the first record at or
	// after it).
	Start string `yaml:"start,omitempty" json:"start,omitempty"`
	// ClientID is the Kafka client id (default "busbar").
	ClientID string `yaml:"client_id,omitempty" json:"client_id,omitempty"`
	// SessionTimeout is how long after a worker dies (kill -9, power loss)
	// the group moves its partitions to the other workers: 6s to 30m
	// (default 45s).
	SessionTimeout Duration `yaml:"session_timeout,omitempty" json:"session_timeout,omitempty"`
	// SASL authenticates to the brokers.
	SASL *KafkaSASL `yaml:"sasl,omitempty" json:"sasl,omitempty"`
	// TLS encrypts the connection to the brokers.
	TLS *KafkaTLS `yaml:"tls,omitempty" json:"tls,omitempty"`
}

// SourceMapping makes a CloudEvent of a record that is not one. Each
// attribute is a constant ("erp.sap") or, starting with $, a JSONPath into
// the record's JSON value ($.header.origin). The event's data is the record
// value; the record's topic, partition and offset become the extensions
// topic, partition and offset.
type SourceMapping struct {
	// ID of the event (default: <topic>-<partition>-<offset>, the same on
	// every read of the record, so receivers can deduplicate).
	ID string `yaml:"id,omitempty" json:"id,omitempty"`
	// Source attribute of the event (required).
	Source string `yaml:"source" json:"source"`
	// Type attribute of the event (required).
	Type string `yaml:"type" json:"type"`
	// Subject attribute of the event (default: the record key, if any).
	Subject string `yaml:"subject,omitempty" json:"subject,omitempty"`
	// Time attribute of the event, an RFC 3339 time (default: the record's
	// timestamp).
	Time string `yaml:"time,omitempty" json:"time,omitempty"`
	// DataContentType of the data (default: the record's content-type
	// header, else application/json for a JSON value and
	// application/octet-stream for any other).
	DataContentType string `yaml:"datacontenttype,omitempty" json:"datacontenttype,omitempty"`
}

// Pipe is a point-to-point route with no bus and no target queue: the
// records of one source, selected by an optional pattern and filter and
// reshaped by an optional transform, go to one target, and the source's
// offsets are committed once the target settled them (docs/pipes.md).
type Pipe struct {
	// Name of the pipe, unique among pipes: letters, digits, '-' and '_', at
	// most 64 characters. It names the pipe's dead-letter queue
	// (busbar.dlq.pipe.<name>) and its default consumer group.
	Name string `yaml:"name" json:"name"`
	// Description is free text for people reading the config.
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Source is what the pipe reads: a sources entry without name and bus.
	Source PipeSource `yaml:"source" json:"source"`
	// Pattern is an EventBridge event pattern (see docs/patterns.md) the
	// events must match; the others are skipped. Absent matches every event.
	Pattern json.RawMessage `yaml:"-" json:"pattern,omitempty"`
	// Filter is an expr-lang expression over the event that must return a
	// bool; with a pattern, both must hold.
	Filter string `yaml:"filter,omitempty" json:"filter,omitempty"`
	// Transform reshapes what the target receives (docs/transforms.md).
	Transform *Transform `yaml:"transform,omitempty" json:"transform,omitempty"`
	// Target receives the matching events: a target as under rules, without
	// its own transform, retry.max_attempts or retry.max_event_age (a pipe
	// retries until the target takes the event, holding the source back).
	Target Target `yaml:"target" json:"target"`
}

// PipeSource is the source of a pipe. Its type names the one block it
// holds.
type PipeSource struct {
	// Type of source: "kafka".
	Type string `yaml:"type" json:"type"`
	// Kafka says which topic a kafka source reads (required for type kafka);
	// group defaults to "busbar.pipe.<name>".
	Kafka KafkaSource `yaml:"kafka,omitempty" json:"kafka,omitzero"`
	// Mapping wraps records that are not CloudEvents into events. Without
	// it such records go to the pipe's dead-letter queue.
	Mapping *SourceMapping `yaml:"mapping,omitempty" json:"mapping,omitempty"`
}

// KafkaTarget is where a kafka target produces and how.
type KafkaTarget struct {
	// Brokers are the bootstrap servers, host:port (at least one).
	Brokers []string `yaml:"brokers" json:"brokers"`
	// Topic to produce to; {$.json.path} placeholders are filled from the
	// event ("audit.{$.source}"). An event whose topic comes out empty or
	// invalid goes to the dead-letter queue.
	Topic string `yaml:"topic" json:"topic"`
	// Key of each record: a JSONPath into the event ($.data.orderId) or an
	// expr-lang expression (source + ":" + subject). Default: the event's
	// partitionkey extension, else no key.
	Key string `yaml:"key,omitempty" json:"key,omitempty"`
	// Mode is the CloudEvents Kafka binding: "binary" (the default:
	// attributes as ce_ headers, data as the value) or "structured" (the
	// whole event as the value, content-type application/cloudevents+json).
	Mode string `yaml:"mode,omitempty" json:"mode,omitempty"`
	// Compression of record batches: "none", "gzip", "snappy" (the
	// default), "lz4" or "zstd".
	Compression string `yaml:"compression,omitempty" json:"compression,omitempty"`
	// Acks the producer waits for: "all" (the default: every in-sync
	// replica) or "leader".
	Acks string `yaml:"acks,omitempty" json:"acks,omitempty"`
	// Linger is how long a batch waits for more records: 0 to 10s
	// (default 0: batches form from concurrent deliveries).
	Linger Duration `yaml:"linger,omitempty" json:"linger,omitempty"`
	// BatchMaxBytes caps one record batch: 1 KiB to 64 MiB (default
	// 1000000).
	BatchMaxBytes int `yaml:"batch_max_bytes,omitempty" json:"batch_max_bytes,omitempty"`
	// ClientID is the Kafka client id (default "busbar").
	ClientID string `yaml:"client_id,omitempty" json:"client_id,omitempty"`
	// SASL authenticates to the brokers.
	SASL *KafkaSASL `yaml:"sasl,omitempty" json:"sasl,omitempty"`
	// TLS encrypts the connection to the brokers.
	TLS *KafkaTLS `yaml:"tls,omitempty" json:"tls,omitempty"`
}

// KafkaSASL authenticates a Kafka client.
type KafkaSASL struct {
	// Mechanism is "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512".
	Mechanism string `yaml:"mechanism" json:"mechanism"`
	// Username to authenticate as.
	Username string `yaml:"username" json:"username"`
	// Password of the user; write it as an ${ENV} reference.
	Password string `yaml:"password" json:"password"`
}

// KafkaTLS encrypts a Kafka client's connections.
type KafkaTLS struct {
	// Enabled turns TLS on with the system's CAs (setting any file turns it
	// on too).
	Enabled bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	// CAFile is a PEM file of the CAs that sign the brokers' certificates.
	CAFile string `yaml:"ca_file,omitempty" json:"ca_file,omitempty"`
	// CertFile is the PEM client certificate, for mutual TLS.
	CertFile string `yaml:"cert_file,omitempty" json:"cert_file,omitempty"`
	// KeyFile is the PEM key of cert_file.
	KeyFile string `yaml:"key_file,omitempty" json:"key_file,omitempty"`
	// ServerName overrides the name checked in the brokers' certificates.
	ServerName string `yaml:"server_name,omitempty" json:"server_name,omitempty"`
	// InsecureSkipVerify skips checking the brokers' certificates (tests
	// only).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify,omitempty" json:"insecure_skip_verify,omitempty"`
}

// PulsarSource is the topic a pulsar source reads and how to reach it.
type PulsarSource struct {
	// URL of the brokers: pulsar://host:6650 (several as
	// pulsar://p1:6650,p2:6650) or pulsar+ssl://host:6651 for TLS.
	URL string `yaml:"url" json:"url"`
	// Topic to read: a full name (persistent://tenant/namespace/topic) or a
	// short one (orders, in public/default).
	Topic string `yaml:"topic" json:"topic"`
	// Subscription is the durable Pulsar subscription; workers with the same
	// config share it (default "busbar.source.<name>").
	Subscription string `yaml:"subscription,omitempty" json:"subscription,omitempty"`
	// SubscriptionType is how the subscription spreads messages over
	// workers: "key_shared" (the default: one worker per key at a time, in
	// order), "shared" (round-robin, no order), "failover" (one active
	// worker, in order) or "exclusive" (one worker only).
	SubscriptionType string `yaml:"subscription_type,omitempty" json:"subscription_type,omitempty"`
	// Start is where a new subscription begins: "earliest" (the default),
	// "latest", or an RFC 3339 time (the subscription seeks to the first
	// message published at or after it).
	Start string `yaml:"start,omitempty" json:"start,omitempty"`
	// Token authenticates with a JWT (Pulsar token authentication, as TDMQ
	// issues); write it as an ${ENV} reference or file:/path.
	Token string `yaml:"token,omitempty" json:"token,omitempty"`
	// OAuth2 authenticates with the OAuth 2.0 client credentials flow.
	OAuth2 *PulsarOAuth2 `yaml:"oauth2,omitempty" json:"oauth2,omitempty"`
	// TLS configures a pulsar+ssl:// connection.
	TLS *PulsarTLS `yaml:"tls,omitempty" json:"tls,omitempty"`
}

// PulsarTarget is where a pulsar target produces and how.
type PulsarTarget struct {
	// URL of the brokers: pulsar://host:6650 (several as
	// pulsar://p1:6650,p2:6650) or pulsar+ssl://host:6651 for TLS.
	URL string `yaml:"url" json:"url"`
	// Topic to produce to: a full name (persistent://tenant/namespace/topic)
	// or a short one (in public/default); {$.json.path} placeholders are
	// filled from the event ("audit-{$.source}").
	Topic string `yaml:"topic" json:"topic"`
	// Key of each message: a JSONPath into the event ($.data.orderId) or an
	// expr-lang expression (source + ":" + subject). It picks the partition
	// and, for Key_Shared consumers, the consumer. Default: the event's
	// partitionkey extension, else no key.
	Key string `yaml:"key,omitempty" json:"key,omitempty"`
	// Mode is the CloudEvents binding: "binary" (the default: attributes as
	// ce_ properties, data as the payload) or "structured" (the whole event
	// as the payload, content-type application/cloudevents+json).
	Mode string `yaml:"mode,omitempty" json:"mode,omitempty"`
	// Compression of batches: "none" (the default), "lz4", "zlib", "zstd"
	// or "snappy".
	Compression string `yaml:"compression,omitempty" json:"compression,omitempty"`
	// Batching groups concurrent deliveries into one request (default
	// true).
	Batching *bool `yaml:"batching,omitempty" json:"batching,omitempty"`
	// BatchMaxDelay is how long a batch waits for more messages: 1ms to 10s
	// (default 10ms).
	BatchMaxDelay Duration `yaml:"batch_max_delay,omitempty" json:"batch_max_delay,omitempty"`
	// BatchMaxMessages caps the messages of one batch: 1 to 100000
	// (default 1000).
	BatchMaxMessages int `yaml:"batch_max_messages,omitempty" json:"batch_max_messages,omitempty"`
	// BatchMaxBytes caps the bytes of one batch: 1 KiB to 64 MiB (default
	// 131072).
	BatchMaxBytes int `yaml:"batch_max_bytes,omitempty" json:"batch_max_bytes,omitempty"`
	// Token authenticates with a JWT (Pulsar token authentication, as TDMQ
	// issues); write it as an ${ENV} reference or file:/path.
	Token string `yaml:"token,omitempty" json:"token,omitempty"`
	// OAuth2 authenticates with the OAuth 2.0 client credentials flow.
	OAuth2 *PulsarOAuth2 `yaml:"oauth2,omitempty" json:"oauth2,omitempty"`
	// TLS configures a pulsar+ssl:// connection.
	TLS *PulsarTLS `yaml:"tls,omitempty" json:"tls,omitempty"`
}

// PulsarOAuth2 is Pulsar's OAuth 2.0 client credentials flow: busbar asks
// the issuer for a token and sends it to the brokers.
type PulsarOAuth2 struct {
	// IssuerURL is the authorization server (its token endpoint is found
	// through OpenID discovery).
	IssuerURL string `yaml:"issuer_url" json:"issuer_url"`
	// Audience the token is requested for (the cluster's, as your provider
	// names it).
	Audience string `yaml:"audience,omitempty" json:"audience,omitempty"`
	// Scope requested, space-separated.
	Scope string `yaml:"scope,omitempty" json:"scope,omitempty"`
	// ClientID of busbar at the issuer.
	ClientID string `yaml:"client_id,omitempty" json:"client_id,omitempty"`
	// ClientSecret of the client; write it as an ${ENV} reference or
	// file:/path.
	ClientSecret string `yaml:"client_secret,omitempty" json:"client_secret,omitempty"`
	// PrivateKey is the path of a key file (JSON with client_id and
	// client_secret, as Pulsar's tools write it), instead of client_id and
	// client_secret.
	PrivateKey string `yaml:"private_key,omitempty" json:"private_key,omitempty"`
}

// PulsarTLS secures a pulsar+ssl:// connection.
type PulsarTLS struct {
	// CAFile is a PEM file of the CAs that sign the brokers' certificates
	// (default: the system's).
	CAFile string `yaml:"ca_file,omitempty" json:"ca_file,omitempty"`
	// CertFile is the PEM client certificate, for mutual TLS.
	CertFile string `yaml:"cert_file,omitempty" json:"cert_file,omitempty"`
	// KeyFile is the PEM key of cert_file.
	KeyFile string `yaml:"key_file,omitempty" json:"key_file,omitempty"`
	// InsecureSkipVerify skips checking the brokers' certificates (tests
	// only).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify,omitempty" json:"insecure_skip_verify,omitempty"`
	// VerifyHostname checks that a broker's certificate names its host.
	VerifyHostname bool `yaml:"verify_hostname,omitempty" json:"verify_hostname,omitempty"`
}
