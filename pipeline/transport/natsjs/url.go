package natsjs

import (
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// config is what a transport URL says.
type config struct {
	embedded bool
	// servers is the nats:// URL passed to nats.Connect (query removed).
	servers string

	// embedded only
	syncAlways   bool
	syncInterval time.Duration // 0 = server default (2 min)
	maxPayload   int32         // 0 = server default (1 MiB)
	listen       string        // "" = no TCP listener

	// both
	replicas        int
	autoCreate      bool
	publishTimeout  time.Duration
	maxPending      int
	defaultMaxAge   time.Duration
	defaultMaxBytes int64
}

// parseURL reads embedded:// and nats:// URLs. Unknown query parameters are
// an error, so a typo never silently falls back to a default.
func parseURL(u *url.URL) (config, error) {
	c := config{
		replicas:       1,
		autoCreate:     true,
		publishTimeout: 10 * time.Second,
		maxPending:     4096,
	}
	switch u.Scheme {
	case "embedded":
		c.embedded = true
		if u.Host != "" || (u.Path != "" && u.Path != "/") {
			return c, fmt.Errorf("embedded:// takes no host or path (data lives under --data-dir), got %q", u.Redacted())
		}
	case "nats":
		if u.Host == "" {
			return c, fmt.Errorf("nats:// needs a host, for example nats://127.0.0.1:4222")
		}
		s := *u
		s.RawQuery = ""
		s.Path = ""
		c.servers = s.String()
	default:
		return c, fmt.Errorf("scheme %q is not embedded or nats", u.Scheme)
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
		case "sync":
			if !c.embedded {
				return c, fmt.Errorf("URL option sync applies to embedded:// only (configure fsync on the NATS servers)")
			}
			if v == "always" {
				c.syncAlways = true
			} else if c.syncInterval, err = time.ParseDuration(v); err == nil && c.syncInterval <= 0 {
				err = fmt.Errorf("must be positive")
			}
		case "max_payload":
			if !c.embedded {
				return c, fmt.Errorf("URL option max_payload applies to embedded:// only (the NATS servers set it)")
			}
			var n int64
			n, err = parseSize(v)
			if err == nil && (n < 1024 || n > 64<<20) {
				err = fmt.Errorf("must be between 1KB and 64MB")
			}
			c.maxPayload = int32(n)
		case "listen":
			if !c.embedded {
				return c, fmt.Errorf("URL option listen applies to embedded:// only")
			}
			_, _, err = net.SplitHostPort(v)
			c.listen = v
		case "replicas":
			c.replicas, err = strconv.Atoi(v)
			if err == nil && (c.replicas < 1 || c.replicas > 5) {
				err = fmt.Errorf("must be 1 to 5")
			}
			if err == nil && c.embedded && c.replicas != 1 {
				err = fmt.Errorf("an embedded server has one replica")
			}
		case "auto_create":
			c.autoCreate, err = strconv.ParseBool(v)
		case "publish_timeout":
			c.publishTimeout, err = time.ParseDuration(v)
			if err == nil && c.publishTimeout <= 0 {
				err = fmt.Errorf("must be positive")
			}
		case "max_pending":
			c.maxPending, err = strconv.Atoi(v)
			if err == nil && c.maxPending < 1 {
				err = fmt.Errorf("must be at least 1")
			}
		case "max_age":
			c.defaultMaxAge, err = time.ParseDuration(v)
		case "max_bytes":
			c.defaultMaxBytes, err = parseSize(v)
		default:
			return c, fmt.Errorf("unknown URL option %q (known: sync, max_payload, listen, replicas, auto_create, publish_timeout, max_pending, max_age, max_bytes)", k)
		}
		if err != nil {
			return c, fmt.Errorf("URL option %s=%q: %w", k, v, err)
		}
	}
	return c, nil
}

// parseSize reads 1048576, 512KB, 8MB, 2GB (K, M, G are powers of 1024;
// a trailing B or iB is optional).
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := int64(1)
	switch {
	case strings.HasSuffix(t, "K"):
		mult = 1 << 10
	case strings.HasSuffix(t, "M"):
		mult = 1 << 20
	case strings.HasSuffix(t, "G"):
		mult = 1 << 30
	}
	if mult > 1 {
		t = t[:len(t)-1]
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a size (examples: 1048576, 512KB, 8MB)")
	}
	return n * mult, nil
}
