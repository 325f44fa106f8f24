package config

import "time"

// The defaults ApplyDefaults fills in. Each is documented on its field too.
const (
	DefaultMaxBatchEntries = 1000
	DefaultMaxRequestBytes = 4 << 20
	DefaultRetention       = 168 * time.Hour
	DefaultMethod          = "POST"
	DefaultTimeout         = 5 * time.Second
	DefaultMode            = ModeStructured
	DefaultMaxAttempts     = 185
	DefaultMaxEventAge     = 24 * time.Hour
	DefaultInitialInterval = 100 * time.Millisecond
	DefaultMaxInterval     = 60 * time.Second
	DefaultConcurrency     = 64
	DefaultChatConcurrency = 1 // dingtalk, wecom, feishu, slack

	// MaxBusRateLimit bounds a bus's rate_limit_per_second and
	// rate_limit_burst.
	MaxBusRateLimit = 10_000_000
)

// Target types and CloudEvents HTTP binding modes.
const (
	TypeHTTP       = "http"
	ModeStructured = "structured"
	ModeBinary     = "binary"
)

// ApplyDefaults fills every field left at its zero value with its default
// and makes sure the "default" bus is declared. Load and Parse call it after
// validation; call it yourself on a Config built in code. It is idempotent
// and does not validate.
func (c *Config) ApplyDefaults() {
	if c.Transport == "" {
		c.Transport = DefaultTransport
	}
	if c.Ingest.MaxBatchEntries == 0 {
		c.Ingest.MaxBatchEntries = DefaultMaxBatchEntries
	}
	if c.Ingest.MaxRequestBytes == 0 {
		c.Ingest.MaxRequestBytes = DefaultMaxRequestBytes
	}
	c.applyKafkaDefaults()
	c.applyPulsarSourceDefaults()
	hasDefault := false
	for _, b := range c.Buses {
		hasDefault = hasDefault || b.Name == DefaultBus
	}
	if !hasDefault {
		c.Buses = append(c.Buses, Bus{Name: DefaultBus})
	}
	for i := range c.Buses {
		if c.Buses[i].Retention == 0 {
			c.Buses[i].Retention = Duration(DefaultRetention)
		}
		if c.Buses[i].RateLimitPerSecond > 0 && c.Buses[i].RateLimitBurst == 0 {
			c.Buses[i].RateLimitBurst = c.Buses[i].RateLimitPerSecond
		}
	}
	for i := range c.Rules {
		r := &c.Rules[i]
		if r.Bus == "" {
			r.Bus = DefaultBus
		}
		for j := range r.Targets {
			r.Targets[j].applyDefaults()
		}
	}
	c.applyConnectionDefaults()
	c.applyPipeDefaults()
}

func (t *Target) applyDefaults() {
	t.applyPulsarDefaults()
	// A target with a destination takes its method and timeout from it.
	if t.Method == "" && t.Destination == "" {
		t.Method = DefaultMethod
	}
	if t.Timeout == 0 && t.Destination == "" {
		t.Timeout = Duration(DefaultTimeout)
	}
	if t.Mode == "" {
		t.Mode = DefaultMode
	}
	if t.Retry.MaxAttempts == 0 {
		t.Retry.MaxAttempts = DefaultMaxAttempts
	}
	if t.Retry.MaxEventAge == 0 {
		t.Retry.MaxEventAge = Duration(DefaultMaxEventAge)
	}
	if t.Retry.InitialInterval == 0 {
		t.Retry.InitialInterval = Duration(DefaultInitialInterval)
	}
	if t.Retry.MaxInterval == 0 {
		t.Retry.MaxInterval = Duration(DefaultMaxInterval)
	}
	t.applyHTTPBatchDefaults()
	if t.Concurrency == 0 {
		t.Concurrency = t.defaultConcurrency(t.BatchesRequests())
	}
}

// defaultConcurrency is a target's concurrency when the config leaves it
// out; batching says whether it is an http target sending batches.
func (t *Target) defaultConcurrency(batching bool) int {
	switch {
	case t.Type == TypeClickHouse:
		return DefaultClickHouseConcurrency
	case batching:
		return HTTPBatchConcurrency(orInt(t.Batch.MaxRows, DefaultHTTPBatchMaxRows), orInt(t.Batch.MaxInFlight, DefaultHTTPBatchMaxInFlight))
	case IsChat(t.Type):
		// Robots take ~20 messages a minute and people read them in
		// order: one at a time.
		return DefaultChatConcurrency
	default:
		return DefaultConcurrency
	}
}
