package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Pulsar sources and targets (docs/pulsar.md).
const (
	TypePulsar = "pulsar"
	// Subscription types of pulsar sources.
	PulsarKeyShared = "key_shared"
	PulsarShared    = "shared"
	PulsarFailover  = "failover"
	PulsarExclusive = "exclusive"
	// Defaults of pulsar targets.
	DefaultPulsarCompression      = "none"
	DefaultPulsarBatchMaxDelay    = 10 * time.Millisecond
	DefaultPulsarBatchMaxMessages = 1000
	DefaultPulsarBatchMaxBytes    = 128 << 10
)

var (
	pulsarSubTypes     = []string{PulsarKeyShared, PulsarShared, PulsarFailover, PulsarExclusive}
	pulsarCompressions = []string{"none", "lz4", "zlib", "zstd", "snappy"}
	// pulsarTopicRE is a Pulsar topic: a short name, or
	// persistent://tenant/namespace/name (non-persistent too).
	pulsarTopicRE = regexp.MustCompile(`^((persistent|non-persistent)://[A-Za-z0-9_.=:-]+/[A-Za-z0-9_.=:-]+/)?[A-Za-z0-9_.=:-]{1,255}$`)
	// pulsarSecretOptions are transport URL options holding secrets.
	pulsarSecretOptions = []string{"token", "oauth2_client_secret"}
)

func init() {
	// sourceTypes lives with the Kafka source (kafka.go).
	sourceTypes = append(sourceTypes, TypePulsar)
	intLimits["PulsarTarget.batch_max_messages"] = [2]int64{1, 100_000}
	intLimits["PulsarTarget.batch_max_bytes"] = [2]int64{1 << 10, 64 << 20}
	durationLimits["PulsarTarget.batch_max_delay"] = [2]time.Duration{time.Millisecond, 10 * time.Second}
}

// SourceSubscription is the subscription of a pulsar source: subscription,
// or "busbar.source.<name>".
func (s *Source) SourceSubscription() string {
	if s.Pulsar.Subscription != "" {
		return s.Pulsar.Subscription
	}
	return "busbar.source." + s.Name
}

// applyPulsarSourceDefaults fills the defaults of pulsar sources.
func (c *Config) applyPulsarSourceDefaults() {
	for i := range c.Sources {
		s := &c.Sources[i]
		if s.Type != TypePulsar {
			continue
		}
		s.Pulsar.Subscription = s.SourceSubscription()
		if s.Pulsar.SubscriptionType == "" {
			s.Pulsar.SubscriptionType = PulsarKeyShared
		}
		if s.Pulsar.Start == "" {
			s.Pulsar.Start = KafkaStartOldest
		}
	}
}

// applyPulsarDefaults fills the defaults of a pulsar target.
func (t *Target) applyPulsarDefaults() {
	if t.Type != TypePulsar {
		return
	}
	p := &t.Pulsar
	if p.Mode == "" {
		p.Mode = KafkaModeBinary
	}
	if p.Compression == "" {
		p.Compression = DefaultPulsarCompression
	}
	if p.Batching == nil {
		on := true
		p.Batching = &on
	}
	if p.BatchMaxDelay == 0 {
		p.BatchMaxDelay = Duration(DefaultPulsarBatchMaxDelay)
	}
	if p.BatchMaxMessages == 0 {
		p.BatchMaxMessages = DefaultPulsarBatchMaxMessages
	}
	if p.BatchMaxBytes == 0 {
		p.BatchMaxBytes = DefaultPulsarBatchMaxBytes
	}
}

// pulsarSources checks the pulsar blocks of sources, and that no pipe reads
// Pulsar (pipes read kafka sources only).
func (v *validator) pulsarSources(c *Config) {
	for i := range c.Sources {
		s := &c.Sources[i]
		p := fmt.Sprintf("sources[%d].pulsar", i)
		if s.Type != TypePulsar {
			if v.written(p) {
				v.add(p, "pulsar: applies to sources of type pulsar only; remove it or set type: pulsar")
			}
			continue
		}
		ps := &s.Pulsar
		v.pulsarConn(p, ps.URL, ps.Token, ps.OAuth2, ps.TLS)
		switch {
		case ps.Topic == "":
			v.add(p+".topic", "missing topic: a pulsar source needs the topic it reads (add topic: persistent://public/default/orders)")
		case !pulsarTopicRE.MatchString(ps.Topic):
			v.add(p+".topic", "%s is not a Pulsar topic: write persistent://tenant/namespace/name, or a name of letters, digits, '-', '_', '.', '=' and ':'", v.show(p+".topic", ps.Topic))
		}
		if ps.SubscriptionType != "" && !slices.Contains(pulsarSubTypes, ps.SubscriptionType) {
			v.add(p+".subscription_type", "%s is not a subscription type (use %s%s)", v.show(p+".subscription_type", ps.SubscriptionType), orList(pulsarSubTypes), didYouMean(ps.SubscriptionType, pulsarSubTypes))
		}
		if ps.Subscription != "" && strings.ContainsAny(ps.Subscription, " /") {
			v.add(p+".subscription", "%s is not a subscription name (no spaces or '/')", v.show(p+".subscription", ps.Subscription))
		}
		switch ps.Start {
		case "", KafkaStartOldest, KafkaStartNewest:
		default:
			if _, err := time.Parse(time.RFC3339, ps.Start); err != nil {
				v.add(p+".start", "%s is not a start position (use \"earliest\", \"latest\" or an RFC 3339 time like 2026-01-02T15:04:05Z)", v.show(p+".start", ps.Start))
			}
		}
	}
	for i := range c.Pipes {
		if c.Pipes[i].Source.Type == TypePulsar {
			v.add(fmt.Sprintf("pipes[%d].source.type", i), "%q is not a source type of pipes: pipes read kafka sources only; bind the Pulsar topic to a bus under sources: and route it with a rule", TypePulsar)
		}
	}
}

// pulsarTarget checks the pulsar block of target t at path.
func (v *validator) pulsarTarget(path string, t *Target) {
	p := path + ".pulsar"
	if t.Type != TypePulsar {
		if v.written(p) {
			v.add(p, "pulsar: applies to targets of type pulsar only (this one is %q); remove it or set type: pulsar", t.Type)
		}
		return
	}
	k := &t.Pulsar
	v.pulsarConn(p, k.URL, k.Token, k.OAuth2, k.TLS)
	switch {
	case k.Topic == "":
		v.add(p+".topic", "missing topic: a pulsar target needs the topic it produces to (add topic: persistent://public/default/orders, or a template like audit-{$.source})")
	default:
		if !pulsarTopicRE.MatchString(v.topicTemplate(p+".topic", k.Topic)) {
			v.add(p+".topic", "%s is not a Pulsar topic: write persistent://tenant/namespace/name or a short name (and {$.json.path} placeholders)", v.show(p+".topic", k.Topic))
		}
	}
	v.keyExpr(p+".key", k.Key)
	if k.Mode != "" && !slices.Contains(kafkaModes, k.Mode) {
		v.add(p+".mode", "%s is not a CloudEvents mode (use %s)", v.show(p+".mode", k.Mode), orList(kafkaModes))
	}
	if k.Compression != "" && !slices.Contains(pulsarCompressions, k.Compression) {
		v.add(p+".compression", "%s is not a compression (use %s)", v.show(p+".compression", k.Compression), orList(pulsarCompressions))
	}
	v.durationField(p+".batch_max_delay", "PulsarTarget.batch_max_delay", k.BatchMaxDelay, DefaultPulsarBatchMaxDelay)
	v.intField(p+".batch_max_messages", "PulsarTarget.batch_max_messages", int64(k.BatchMaxMessages), DefaultPulsarBatchMaxMessages)
	v.intField(p+".batch_max_bytes", "PulsarTarget.batch_max_bytes", int64(k.BatchMaxBytes), DefaultPulsarBatchMaxBytes)
}

// pulsarConn checks how a pulsar source or target reaches its cluster.
func (v *validator) pulsarConn(p, rawURL, token string, o *PulsarOAuth2, tls *PulsarTLS) {
	u, err := url.Parse(rawURL)
	switch {
	case rawURL == "":
		v.add(p+".url", "missing url (add url: pulsar://broker:6650)")
	case err != nil || (u.Scheme != "pulsar" && u.Scheme != "pulsar+ssl") || u.Host == "":
		v.add(p+".url", "not a Pulsar service URL (write pulsar://host:6650, pulsar://p1:6650,p2:6650 or pulsar+ssl://host:6651)")
	case u.User != nil:
		v.add(p+".url", "put no credentials in the URL; use token: or oauth2:")
	case tls != nil && u.Scheme != "pulsar+ssl":
		v.add(p+".tls", "tls: needs a pulsar+ssl:// url")
	}
	if token != "" && o != nil {
		v.add(p+".oauth2", "use token or oauth2, not both")
	}
	if token != "" {
		v.secret(p+".token", token, "token")
	}
	if o != nil {
		op := p + ".oauth2"
		if o.IssuerURL == "" {
			v.add(op+".issuer_url", "missing issuer_url (the OAuth 2.0 authorization server, https://...)")
		} else if iu, err := url.Parse(o.IssuerURL); err != nil || (iu.Scheme != "https" && iu.Scheme != "http") || iu.Host == "" {
			v.add(op+".issuer_url", "not an http:// or https:// URL")
		}
		switch {
		case o.PrivateKey != "" && (o.ClientSecret != "" || o.ClientID != ""):
			v.add(op+".private_key", "give private_key, or client_id and client_secret, not both")
		case o.PrivateKey == "":
			if o.ClientID == "" {
				v.add(op+".client_id", "missing client_id (or give private_key, a key file)")
			}
			v.secret(op+".client_secret", o.ClientSecret, "client_secret")
		}
	}
	if tls != nil && (tls.CertFile == "") != (tls.KeyFile == "") {
		v.add(p+".tls", "give both cert_file and key_file, or neither")
	}
}

func (o *PulsarOAuth2) clone() *PulsarOAuth2 {
	if o == nil {
		return nil
	}
	c := *o
	return &c
}

func (t *PulsarTLS) clone() *PulsarTLS {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

func (p *PulsarTarget) clone() {
	p.OAuth2, p.TLS = p.OAuth2.clone(), p.TLS.clone()
	if p.Batching != nil {
		b := *p.Batching
		p.Batching = &b
	}
}

// clonePulsar deep-copies the pulsar blocks of out (a shallow copy of c
// whose slices Clone already copied).
func (c *Config) clonePulsar(out *Config) {
	for i := range out.Rules {
		for j := range out.Rules[i].Targets {
			out.Rules[i].Targets[j].Pulsar.clone()
		}
	}
	for i := range out.Sources {
		s := &out.Sources[i].Pulsar
		s.OAuth2, s.TLS = s.OAuth2.clone(), s.TLS.clone()
	}
	for i := range out.Pipes {
		out.Pipes[i].Target.Pulsar.clone()
	}
}

// redactPulsar hides the Pulsar secrets of out: tokens and OAuth2 client
// secrets of sources and targets, and the token and oauth2_client_secret
// options of a pulsar:// transport URL, unless they came from ${ENV}
// references (Redacted shows those as the reference) or are file:/path
// references (the path is not the secret).
func (c *Config) redactPulsar(out *Config) {
	hide := func(path string, s *string) {
		if _, ok := c.templates[path]; !ok && *s != "" && !strings.HasPrefix(*s, SecretFilePrefix) {
			*s = RedactedValue
		}
	}
	target := func(tp string, p *PulsarTarget) {
		hide(tp+".pulsar.token", &p.Token)
		if p.OAuth2 != nil {
			hide(tp+".pulsar.oauth2.client_secret", &p.OAuth2.ClientSecret)
		}
	}
	for i := range out.Rules {
		for j := range out.Rules[i].Targets {
			target(fmt.Sprintf("rules[%d].targets[%d]", i, j), &out.Rules[i].Targets[j].Pulsar)
		}
	}
	for i := range out.Pipes {
		target(fmt.Sprintf("pipes[%d].target", i), &out.Pipes[i].Target.Pulsar)
	}
	for i := range out.Sources {
		s := &out.Sources[i].Pulsar
		sp := fmt.Sprintf("sources[%d].pulsar", i)
		hide(sp+".token", &s.Token)
		if s.OAuth2 != nil {
			hide(sp+".oauth2.client_secret", &s.OAuth2.ClientSecret)
		}
	}
	if _, ok := c.templates["transport"]; !ok {
		out.Transport = redactPulsarURL(out.Transport)
	}
}

// redactPulsarURL hides the secret options of a pulsar:// or pulsar+ssl://
// transport URL.
func redactPulsarURL(s string) string {
	if !strings.HasPrefix(s, "pulsar://") && !strings.HasPrefix(s, "pulsar+ssl://") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		return RedactedValue
	}
	q := u.Query()
	changed := false
	for _, k := range pulsarSecretOptions {
		if q.Has(k) {
			q.Set(k, RedactedValue)
			changed = true
		}
	}
	if !changed {
		return s
	}
	u.RawQuery = q.Encode()
	return u.String()
}
