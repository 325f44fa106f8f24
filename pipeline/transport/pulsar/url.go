package pulsar

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	pc "github.com/apache/pulsar-client-go/pulsar"

	"github.com/busbar/busbar/pipeline/transport/pulsar/pclient"
)

// URL schemes: plain TCP and TLS, as Pulsar's own service URLs.
const (
	Scheme    = pclient.SchemePlain
	SchemeTLS = pclient.SchemeTLS
)

// Subscription types a transport URL may ask for.
const (
	SubKeyShared = "key_shared"
	SubShared    = "shared"
)

// config is what a transport URL says.
type config struct {
	conn pclient.Conn

	tenant, namespace string
	prefix            string // replaces the leading "busbar." of every topic and subscription
	subType           pc.SubscriptionType
	subTypeName       string

	admin      string // admin REST base URL; "" = busbar does not create topics or set retention
	partitions int    // of topics busbar creates through admin; 0 = non-partitioned

	publishTimeout time.Duration
	batching       bool
	batchDelay     time.Duration
	compression    string
	ackInterval    time.Duration // ack grouping; 0 = every ack sent at once
	maxDeliveries  int           // Pulsar dead-letter policy; 0 = off
}

// knownOptions are the URL's query options, for the error on an unknown one.
var knownOptions = []string{
	"tenant", "namespace", "prefix", "subscription",
	"token", "token_file",
	"oauth2_issuer_url", "oauth2_audience", "oauth2_scope", "oauth2_client_id", "oauth2_client_secret", "oauth2_private_key",
	"tls_ca", "tls_cert", "tls_key", "tls_insecure_skip_verify", "tls_verify_hostname",
	"listener_name", "connect_timeout", "operation_timeout", "publish_timeout",
	"admin", "partitions", "batching", "batch_delay", "compression", "ack_interval", "max_deliveries",
}

// SecretOptions are the URL options that hold secrets: printed configs
// hide them.
var SecretOptions = []string{"token", "oauth2_client_secret"}

// parseURL reads pulsar:// and pulsar+ssl:// URLs. Unknown options are an
// error, so a typo never silently falls back to a default.
func parseURL(u *url.URL) (config, error) {
	c := config{
		tenant:         "public",
		namespace:      "default",
		prefix:         "busbar.",
		subType:        pc.KeyShared,
		subTypeName:    SubKeyShared,
		publishTimeout: 30 * time.Second,
		batching:       true,
		batchDelay:     time.Millisecond,
		compression:    "none",
		ackInterval:    100 * time.Millisecond,
	}
	if u.Scheme != Scheme && u.Scheme != SchemeTLS {
		return c, fmt.Errorf("scheme %q is not %s or %s", u.Scheme, Scheme, SchemeTLS)
	}
	if u.Host == "" {
		return c, fmt.Errorf("%s:// needs a broker address, for example %s://127.0.0.1:6650 or %s://p1:6650,p2:6650", u.Scheme, u.Scheme, u.Scheme)
	}
	if u.User != nil {
		return c, fmt.Errorf("%s:// takes no user info; authenticate with ?token=${PULSAR_TOKEN} or the oauth2_* options", u.Scheme)
	}
	if u.Path != "" && u.Path != "/" {
		return c, fmt.Errorf("%s:// takes no path; put options in the query (?tenant=...&namespace=...)", u.Scheme)
	}
	hosts := strings.Split(u.Host, ",")
	for i, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			return c, fmt.Errorf("empty broker address in %q", u.Host)
		}
		if !strings.Contains(h, ":") {
			if u.Scheme == SchemeTLS {
				h += ":6651"
			} else {
				h += ":6650"
			}
		}
		hosts[i] = h
	}
	c.conn.URL = u.Scheme + "://" + strings.Join(hosts, ",")

	q := u.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	oauth := &pclient.OAuth2{}
	for _, k := range keys {
		v := q.Get(k)
		var err error
		switch k {
		case "tenant":
			c.tenant, err = pulsarName(v)
		case "namespace":
			c.namespace, err = pulsarName(v)
		case "prefix":
			if strings.ContainsFunc(v, func(r rune) bool { return !nameRune(r) && r != '.' }) {
				err = fmt.Errorf("use letters, digits, '.', '_' and '-'")
			}
			c.prefix = v
		case "subscription":
			switch v {
			case SubKeyShared:
				c.subType = pc.KeyShared
			case SubShared:
				c.subType = pc.Shared
			default:
				err = fmt.Errorf("use %s (per-key order, the default) or %s", SubKeyShared, SubShared)
			}
			c.subTypeName = v
		case "token":
			c.conn.Token = v
		case "token_file":
			c.conn.TokenFile = v
		case "oauth2_issuer_url":
			oauth.IssuerURL = v
		case "oauth2_audience":
			oauth.Audience = v
		case "oauth2_scope":
			oauth.Scope = v
		case "oauth2_client_id":
			oauth.ClientID = v
		case "oauth2_client_secret":
			oauth.ClientSecret = v
		case "oauth2_private_key":
			oauth.PrivateKey = v
		case "tls_ca":
			c.conn.TLS.CAFile = v
		case "tls_cert":
			c.conn.TLS.CertFile = v
		case "tls_key":
			c.conn.TLS.KeyFile = v
		case "tls_insecure_skip_verify":
			c.conn.TLS.InsecureSkipVerify, err = strconv.ParseBool(v)
		case "tls_verify_hostname":
			c.conn.TLS.VerifyHostname, err = strconv.ParseBool(v)
		case "listener_name":
			c.conn.ListenerName = v
		case "connect_timeout":
			c.conn.ConnectTimeout, err = positiveDuration(v)
		case "operation_timeout":
			c.conn.OperationTimeout, err = positiveDuration(v)
		case "publish_timeout":
			c.publishTimeout, err = positiveDuration(v)
		case "admin":
			var au *url.URL
			if au, err = url.Parse(v); err == nil && (au.Scheme != "http" && au.Scheme != "https" || au.Host == "") {
				err = fmt.Errorf("use the brokers' admin REST address, like http://pulsar:8080")
			}
			c.admin = strings.TrimRight(v, "/")
		case "partitions":
			if c.partitions, err = strconv.Atoi(v); err == nil && (c.partitions < 0 || c.partitions > 10000) {
				err = fmt.Errorf("use 0 (non-partitioned topics) to 10000")
			}
		case "batching":
			c.batching, err = strconv.ParseBool(v)
		case "batch_delay":
			c.batchDelay, err = positiveDuration(v)
		case "compression":
			if _, ok := pclient.Compressions[v]; !ok {
				err = fmt.Errorf("use none, lz4, zlib, zstd or snappy")
			}
			c.compression = v
		case "ack_interval":
			if c.ackInterval, err = time.ParseDuration(v); err == nil && c.ackInterval < 0 {
				err = fmt.Errorf("must not be negative")
			}
		case "max_deliveries":
			if c.maxDeliveries, err = strconv.Atoi(v); err == nil && (c.maxDeliveries < 0 || c.maxDeliveries > 100000) {
				err = fmt.Errorf("use 0 (off) to 100000")
			}
		default:
			return c, fmt.Errorf("unknown URL option %q (known: %s)", k, strings.Join(knownOptions, ", "))
		}
		if err != nil {
			if k == "token" || k == "oauth2_client_secret" {
				v = "xxxxx"
			}
			return c, fmt.Errorf("URL option %s=%q: %v", k, v, err)
		}
	}
	if *oauth != (pclient.OAuth2{}) {
		c.conn.OAuth2 = oauth
	}
	if err := c.conn.Check(); err != nil {
		return c, err
	}
	if c.partitions > 0 && c.admin == "" {
		return c, fmt.Errorf("URL option partitions=%d needs admin=http://host:8080: topics are created through the admin API", c.partitions)
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

func nameRune(r rune) bool {
	return r == '_' || r == '-' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z'
}

// pulsarName checks a tenant or namespace name.
func pulsarName(s string) (string, error) {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return !nameRune(r) && r != '.' && r != '=' && r != ':' }) {
		return s, fmt.Errorf("use letters, digits, '-', '_', '.', '=' and ':'")
	}
	return s, nil
}

// local is the topic's local name: the leading "busbar." replaced by the
// prefix. Other names are used unchanged.
func (c *config) local(topic string) string {
	if rest, ok := strings.CutPrefix(topic, "busbar."); ok {
		return c.prefix + rest
	}
	return topic
}

// Topic is the full Pulsar topic of a busbar topic:
// persistent://<tenant>/<namespace>/<local name>.
func (c *config) Topic(topic string) string {
	return "persistent://" + c.tenant + "/" + c.namespace + "/" + c.local(topic)
}

// Subscription is the Pulsar subscription of a busbar consumer group. A
// subscription belongs to one topic, so the group alone names it:
// <prefix><group>, for example busbar.router on busbar.bus.orders.
func (c *config) Subscription(group string) string { return c.prefix + group }

// DeadLetterTopic is where the Pulsar dead-letter policy moves messages of
// topic: the busbar dead-letter queue of a bus or target queue, or
// "<topic>.dlq" for other topics. "" for dead-letter queues themselves.
func DeadLetterTopic(topic string) string {
	switch {
	case strings.HasPrefix(topic, "busbar.dlq."):
		return ""
	case strings.HasPrefix(topic, "busbar.bus."):
		return "busbar.dlq.bus." + strings.TrimPrefix(topic, "busbar.bus.")
	case strings.HasPrefix(topic, "busbar.q."):
		return "busbar.dlq." + strings.TrimPrefix(topic, "busbar.q.")
	}
	return topic + ".dlq"
}
