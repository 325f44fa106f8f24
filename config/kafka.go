package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr"
)

// Kafka sources and targets.
const (
	TypeKafka        = "kafka"
	KafkaModeBinary  = "binary"
	KafkaModeStruct  = "structured"
	KafkaStartOldest = "earliest"
	KafkaStartNewest = "latest"
	DefaultKafkaAcks = "all"
	// DefaultKafkaCompression compresses record batches of kafka targets.
	DefaultKafkaCompression = "snappy"
)

var (
	sourceTypes       = []string{TypeKafka}
	kafkaModes        = []string{KafkaModeBinary, KafkaModeStruct}
	kafkaCompressions = []string{"none", "gzip", "snappy", "lz4", "zstd"}
	kafkaAcks         = []string{"all", "leader"}
	kafkaMechanisms   = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}
	// kafkaTopicRE is a valid Kafka topic name.
	kafkaTopicRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)
	// topicPlaceholderRE finds {$.json.path} placeholders in a topic.
	topicPlaceholderRE = regexp.MustCompile(`\{(\$[^{}]*)\}`)
)

// SourceGroup is the consumer group of a kafka source: group, or
// "busbar.source.<name>".
func (s *Source) SourceGroup() string {
	if s.Kafka.Group != "" {
		return s.Kafka.Group
	}
	return "busbar.source." + s.Name
}

// applyKafkaDefaults fills the defaults of sources and kafka targets.
func (c *Config) applyKafkaDefaults() {
	for i := range c.Sources {
		s := &c.Sources[i]
		if s.Bus == "" {
			s.Bus = DefaultBus
		}
		if s.Type == TypeKafka {
			if s.Kafka.Group == "" {
				s.Kafka.Group = s.SourceGroup()
			}
			if s.Kafka.Start == "" {
				s.Kafka.Start = KafkaStartOldest
			}
		}
	}
	for i := range c.Rules {
		for j := range c.Rules[i].Targets {
			t := &c.Rules[i].Targets[j]
			if t.Type != TypeKafka {
				continue
			}
			k := &t.Kafka
			if k.Mode == "" {
				k.Mode = KafkaModeBinary
			}
			if k.Compression == "" {
				k.Compression = DefaultKafkaCompression
			}
			if k.Acks == "" {
				k.Acks = DefaultKafkaAcks
			}
		}
	}
}

// partitionKey checks a bus's partition_key: a JSONPath or an expression.
func (v *validator) partitionKey(path, key string) {
	v.keyExpr(path, key)
}

// keyExpr checks a JSONPath ($...) or an expr-lang expression.
func (v *validator) keyExpr(path, key string) {
	if key == "" || v.isBad(path) {
		return
	}
	if strings.HasPrefix(key, "$") {
		if !jsonPathRE.MatchString(key) {
			v.add(path, "%s is not a supported JSONPath: start with $ and use .name, ['name'] and [index], like $.data.customerId", v.show(path, key))
		}
		return
	}
	if _, err := expr.Compile(key, expr.AllowUndefinedVariables()); err != nil {
		v.add(path, "invalid expression: %s (or write a JSONPath starting with $)", firstLine(err.Error()))
	}
}

func (v *validator) sources(srcs []Source, buses map[string]string) {
	names := map[string]string{}
	for i := range srcs {
		s := &srcs[i]
		p := fmt.Sprintf("sources[%d]", i)
		if v.name(p+".name", "source name", s.Name) {
			if first, dup := names[s.Name]; dup {
				v.add(p+".name", "source %q is declared twice (first %s); source names must be unique", s.Name, v.where(first))
			} else {
				names[s.Name] = p + ".name"
			}
		}
		switch {
		case s.Type == "":
			v.add(p+".type", "missing source type (add type: kafka)")
		case !slices.Contains(sourceTypes, s.Type):
			v.add(p+".type", "%s is not a source type (use %s)", v.show(p+".type", s.Type), orList(sourceTypes))
		}
		v.busRef(p+".bus", s.Bus, buses)
		if s.Type == TypeKafka {
			v.kafkaSource(p+".kafka", &s.Kafka)
		} else if v.written(p + ".kafka") {
			v.add(p+".kafka", "kafka: applies to sources of type kafka only; remove it or set type: kafka")
		}
		v.sourceMapping(p+".mapping", s.Mapping)
	}
}

func (v *validator) brokers(path string, brokers []string) {
	if len(brokers) == 0 {
		v.add(path, "missing brokers: list the bootstrap servers (brokers: [kafka1:9092, kafka2:9092])")
		return
	}
	for i, b := range brokers {
		if b == "" || strings.ContainsAny(b, " /,") {
			v.add(fmt.Sprintf("%s[%d]", path, i), "%s is not a broker address (write host:port, one per list entry)", v.show(fmt.Sprintf("%s[%d]", path, i), b))
		}
	}
}

func (v *validator) kafkaAuth(path string, sasl *KafkaSASL, tls *KafkaTLS) {
	if sasl != nil {
		sp := path + ".sasl"
		if !slices.Contains(kafkaMechanisms, strings.ToUpper(sasl.Mechanism)) {
			v.add(sp+".mechanism", "%s is not a SASL mechanism (use %s)", v.show(sp+".mechanism", sasl.Mechanism), orList(kafkaMechanisms))
		}
		if sasl.Username == "" {
			v.add(sp+".username", "missing username")
		}
	}
	if tls != nil && (tls.CertFile == "") != (tls.KeyFile == "") {
		v.add(path+".tls", "give both cert_file and key_file, or neither")
	}
}

// topicTemplate reports, at path, each {$.json.path} placeholder of a
// kafka or pulsar target's topic that is not a supported JSONPath, and
// returns the topic with every placeholder as "x" for the broker's own
// name check.
func (v *validator) topicTemplate(path, topic string) string {
	return topicPlaceholderRE.ReplaceAllStringFunc(topic, func(ph string) string {
		jp := ph[1 : len(ph)-1]
		if !jsonPathRE.MatchString(jp) {
			v.add(path, "placeholder %s: %q is not a supported JSONPath (like $.source or $.data.region)", ph, jp)
		}
		return "x"
	})
}

// kafkaTarget checks the kafka block of target t at path.
func (v *validator) kafkaTarget(path string, t *Target) {
	k := &t.Kafka
	p := path + ".kafka"
	if t.Type != TypeKafka {
		if v.written(p) {
			v.add(p, "kafka: applies to targets of type kafka only (this one is %q); remove it or set type: kafka", t.Type)
		}
		return
	}
	v.brokers(p+".brokers", k.Brokers)
	switch {
	case k.Topic == "":
		v.add(p+".topic", "missing topic: a kafka target needs the topic it produces to (add topic: orders, or a template like audit.{$.source})")
	default:
		if !kafkaTopicRE.MatchString(v.topicTemplate(p+".topic", k.Topic)) {
			v.add(p+".topic", "%s is not a Kafka topic name: use letters, digits, '.', '_' and '-' (and {$.json.path} placeholders)", v.show(p+".topic", k.Topic))
		}
	}
	v.keyExpr(p+".key", k.Key)
	if k.Mode != "" && !slices.Contains(kafkaModes, k.Mode) {
		v.add(p+".mode", "%s is not a CloudEvents Kafka mode (use %s)", v.show(p+".mode", k.Mode), orList(kafkaModes))
	}
	if k.Compression != "" && !slices.Contains(kafkaCompressions, k.Compression) {
		v.add(p+".compression", "%s is not a compression (use %s)", v.show(p+".compression", k.Compression), orList(kafkaCompressions))
	}
	if k.Acks != "" && !slices.Contains(kafkaAcks, k.Acks) {
		v.add(p+".acks", "%s is not an acks setting (use %s)", v.show(p+".acks", k.Acks), orList(kafkaAcks))
	}
	if k.Linger < 0 || k.Linger.D() > 10*time.Second {
		v.add(p+".linger", "%s is out of range: use 0 to 10s", k.Linger)
	}
	if k.BatchMaxBytes != 0 && (k.BatchMaxBytes < 1<<10 || k.BatchMaxBytes > 64<<20) {
		v.add(p+".batch_max_bytes", "%d is out of range: use 1024 to 67108864, or leave it out for the default 1000000", k.BatchMaxBytes)
	}
	v.kafkaAuth(p, k.SASL, k.TLS)
}

// kafkaSource checks what a kafka source reads, for sources and pipes alike.
func (v *validator) kafkaSource(kp string, k *KafkaSource) {
	v.brokers(kp+".brokers", k.Brokers)
	if k.Topic == "" {
		v.add(kp+".topic", "missing topic: a kafka source needs the topic it reads (add topic: orders)")
	} else if !kafkaTopicRE.MatchString(k.Topic) {
		v.add(kp+".topic", "%s is not a Kafka topic name: use letters, digits, '.', '_' and '-', at most 249 characters", v.show(kp+".topic", k.Topic))
	}
	switch k.Start {
	case "", KafkaStartOldest, KafkaStartNewest:
	default:
		if _, err := time.Parse(time.RFC3339, k.Start); err != nil {
			v.add(kp+".start", "%s is not a start position (use \"earliest\", \"latest\" or an RFC 3339 time like 2026-01-02T15:04:05Z)", v.show(kp+".start", k.Start))
		}
	}
	v.durationField(kp+".session_timeout", "KafkaSource.session_timeout", k.SessionTimeout, DefaultKafkaSessionTimeout)
	v.kafkaAuth(kp, k.SASL, k.TLS)
}

// sourceMapping checks how records that are not CloudEvents become events,
// for sources and pipes alike. A nil mapping is fine.
func (v *validator) sourceMapping(mp string, m *SourceMapping) {
	if m == nil {
		return
	}
	if m.Source == "" {
		v.add(mp+".source", "missing source: the mapping needs the events' source (a constant like erp.sap, or a JSONPath like $.origin)")
	}
	if m.Type == "" {
		v.add(mp+".type", "missing type: the mapping needs the events' type (a constant like order.created, or a JSONPath like $.kind)")
	}
	for _, f := range []struct{ name, val string }{{"id", m.ID}, {"source", m.Source}, {"type", m.Type}, {"subject", m.Subject}, {"time", m.Time}} {
		if strings.HasPrefix(f.val, "$") && !jsonPathRE.MatchString(f.val) {
			v.add(mp+"."+f.name, "%s is not a supported JSONPath: start with $ and use .name, ['name'] and [index], like $.header.origin", v.show(mp+"."+f.name, f.val))
		}
	}
	if m.Time != "" && !strings.HasPrefix(m.Time, "$") {
		if _, err := time.Parse(time.RFC3339, m.Time); err != nil {
			v.add(mp+".time", "%s is neither a JSONPath nor an RFC 3339 time", v.show(mp+".time", m.Time))
		}
	}
}
