package kafka

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/busbar/busbar/pipeline/transport/kafka/kclient"
)

// Client paths: the URL scheme picks the Kafka client library.
const (
	SchemeFranz  = "kafka"        // franz-go (the default)
	SchemeSarama = "kafka+sarama" // IBM/sarama through watermill-kafka/v3
)

// config is what a transport URL says.
type config struct {
	scheme string
	conn   kclient.Conn

	prefix         string        // replaces the leading "busbar." of every topic and group
	partitions     int32         // of topics busbar creates
	replication    int16         // of topics busbar creates; -1 = broker default
	autoCreate     bool          // create undeclared topics on first use
	sessionTimeout time.Duration // consumer group session
	rebalanceTime  time.Duration // consumer group rebalance timeout
	commitInterval time.Duration // how often acked offsets are committed
	publishTimeout time.Duration // bound of one Publish call
	compression    string        // producer batch compression
	linger         time.Duration // producer linger
}

var compressions = map[string]kgo.CompressionCodec{
	"none":   kgo.NoCompression(),
	"gzip":   kgo.GzipCompression(),
	"snappy": kgo.SnappyCompression(),
	"lz4":    kgo.Lz4Compression(),
	"zstd":   kgo.ZstdCompression(),
}

// parseURL reads kafka:// and kafka+sarama:// URLs. Unknown query
// parameters are an error, so a typo never silently falls back to a default.
func parseURL(u *url.URL) (config, error) {
	c := config{
		scheme:         u.Scheme,
		prefix:         "busbar.",
		partitions:     6,
		replication:    -1,
		autoCreate:     true,
		sessionTimeout: 45 * time.Second,
		rebalanceTime:  60 * time.Second,
		commitInterval: time.Second,
		publishTimeout: 30 * time.Second,
		compression:    "snappy",
	}
	if u.Scheme != SchemeFranz && u.Scheme != SchemeSarama {
		return c, fmt.Errorf("scheme %q is not %s or %s", u.Scheme, SchemeFranz, SchemeSarama)
	}
	if u.Host == "" {
		return c, fmt.Errorf("%s:// needs brokers, for example %s://127.0.0.1:9092 or %s://k1:9092,k2:9092", u.Scheme, u.Scheme, u.Scheme)
	}
	if u.Path != "" && u.Path != "/" {
		return c, fmt.Errorf("%s:// takes no path; put options in the query (?prefix=...)", u.Scheme)
	}
	for _, b := range strings.Split(u.Host, ",") {
		if b = strings.TrimSpace(b); b != "" {
			if !strings.Contains(b, ":") {
				b += ":9092"
			}
			c.conn.Brokers = append(c.conn.Brokers, b)
		}
	}
	if u.User != nil {
		c.conn.User = u.User.Username()
		c.conn.Password, _ = u.User.Password()
		c.conn.Mechanism = kclient.MechPlain
	}

	q := u.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := q.Get(k)
		var err error
		switch k {
		case "prefix":
			if strings.ContainsFunc(v, func(r rune) bool { return !validTopicRune(r) }) {
				err = fmt.Errorf("use letters, digits, '.', '_' and '-'")
			}
			c.prefix = v
		case "partitions":
			var n int
			if n, err = strconv.Atoi(v); err == nil && (n < 1 || n > 100000) {
				err = fmt.Errorf("use 1 to 100000")
			}
			c.partitions = int32(n)
		case "replication":
			var n int
			if n, err = strconv.Atoi(v); err == nil && (n < -1 || n == 0 || n > 32) {
				err = fmt.Errorf("use 1 to 32, or -1 for the broker's default")
			}
			c.replication = int16(n)
		case "auto_create":
			c.autoCreate, err = strconv.ParseBool(v)
		case "session_timeout":
			c.sessionTimeout, err = positiveDuration(v)
		case "rebalance_timeout":
			c.rebalanceTime, err = positiveDuration(v)
		case "commit_interval":
			c.commitInterval, err = positiveDuration(v)
		case "publish_timeout":
			c.publishTimeout, err = positiveDuration(v)
		case "linger":
			if c.linger, err = time.ParseDuration(v); err == nil && c.linger < 0 {
				err = fmt.Errorf("must not be negative")
			}
		case "compression":
			if _, ok := compressions[v]; !ok {
				err = fmt.Errorf("use none, gzip, snappy, lz4 or zstd")
			}
			c.compression = v
		case "client_id":
			c.conn.ClientID = v
		case "sasl":
			if c.conn.Mechanism = kclient.NormalizeMechanism(v); c.conn.Mechanism == "" {
				err = fmt.Errorf("use plain, scram-sha-256 or scram-sha-512")
			}
		case "tls":
			c.conn.TLS, err = strconv.ParseBool(v)
		case "tls_ca":
			c.conn.CAFile = v
		case "tls_cert":
			c.conn.CertFile = v
		case "tls_key":
			c.conn.KeyFile = v
		case "tls_server_name":
			c.conn.ServerName = v
		case "tls_insecure_skip_verify":
			c.conn.InsecureSkipVerify, err = strconv.ParseBool(v)
		default:
			return c, fmt.Errorf("unknown URL option %q (known: prefix, partitions, replication, auto_create, session_timeout, rebalance_timeout, commit_interval, publish_timeout, linger, compression, client_id, sasl, tls, tls_ca, tls_cert, tls_key, tls_server_name, tls_insecure_skip_verify)", k)
		}
		if err != nil {
			return c, fmt.Errorf("URL option %s=%q: %v", k, v, err)
		}
	}
	if c.conn.Mechanism != "" && u.User == nil {
		return c, fmt.Errorf("URL option sasl=%s needs credentials: %s://user:password@host:9092 (keep the password in ${ENV})", q.Get("sasl"), u.Scheme)
	}
	return c, nil
}

func positiveDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err == nil && d <= 0 {
		err = fmt.Errorf("must be positive")
	}
	return d, err
}

func validTopicRune(r rune) bool {
	return r == '.' || r == '_' || r == '-' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z'
}

// Topic maps a busbar topic to its Kafka topic: the leading "busbar." is
// replaced by the prefix (by default "busbar." again, so busbar.bus.orders
// stays busbar.bus.orders). Other names are used unchanged.
func (c *config) Topic(topic string) string {
	if rest, ok := strings.CutPrefix(topic, "busbar."); ok {
		return c.prefix + rest
	}
	return topic
}

// Group is the Kafka consumer group of one busbar consumer group on one
// topic: <prefix><group>.<topic without "busbar.">, for example
// busbar.router.bus.orders or busbar.dispatch.q.orders.audit.crm.
func (c *config) Group(group, topic string) string {
	rest, ok := strings.CutPrefix(topic, "busbar.")
	if !ok {
		rest = topic
	}
	return c.prefix + group + "." + rest
}
