package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/busbar/busbar/filters"
)

// namePattern is what bus names, rule names and target ids may look like:
// they become topic and queue names on every transport.
const namePattern = `^[A-Za-z0-9_-]{1,64}$`

var nameRE = regexp.MustCompile(namePattern)

var (
	targetTypes      = []string{TypeHTTP, TypeClickHouse, TypeDingTalk, TypeWeCom, TypeFeishu, TypeSlack, TypeKafka, TypePulsar}
	modes            = []string{ModeStructured, ModeBinary}
	methods          = []string{"POST", "PUT", "PATCH", "GET", "DELETE"}
	transportSchemes = []string{"embedded", "nats", "kafka", "kafka+sarama", "pulsar", "pulsar+ssl"}
)

// intLimits and durationLimits bound the numeric fields, by "Type.field".
// The JSON Schema carries the same integer bounds.
var intLimits = map[string][2]int64{
	"Ingest.max_batch_entries":          {1, 100_000},
	"Ingest.max_request_bytes":          {1 << 10, 1 << 30},
	"Bus.max_bytes":                     {0, math.MaxInt64},
	"Bus.rate_limit_per_second":         {1, MaxBusRateLimit},
	"Bus.rate_limit_burst":              {1, MaxBusRateLimit},
	"Target.concurrency":                {1, 1024},
	"Batch.max_rows":                    {1, 1_000_000},
	"Batch.max_bytes":                   {1 << 10, 1 << 30},
	"Batch.max_in_flight":               {1, 64},
	"Retry.max_attempts":                {1, 1000},
	"Destination.rate_limit_per_second": {1, MaxRateLimitPerSecond},
}

var durationLimits = map[string][2]time.Duration{
	"Bus.retention":               {time.Minute, 100 * 365 * 24 * time.Hour},
	"Target.timeout":              {time.Millisecond, 15 * time.Minute},
	"Destination.timeout":         {time.Millisecond, 15 * time.Minute},
	"Retry.initial_interval":      {time.Millisecond, time.Hour},
	"Retry.max_interval":          {time.Millisecond, 24 * time.Hour},
	"Batch.max_wait":              {time.Millisecond, time.Hour},
	"ClickHouse.ttl":              {time.Hour, 100 * 365 * 24 * time.Hour},
	"Retry.max_event_age":         {time.Second, 7 * 24 * time.Hour},
	"KafkaSource.session_timeout": {6 * time.Second, 30 * time.Minute},
}

// Validate checks a Config built in code (for example by the management
// API) the way Load checks a file, and returns an ErrorList naming the field
// path of each problem. Zero values count as "use the default".
func (c *Config) Validate() error {
	v := &validator{templates: c.templates}
	v.config(c)
	return v.errs.err()
}

// validator checks the meaning of a decoded config: names, references,
// ranges, patterns. pos places its errors in the file when there is one.
type validator struct {
	file      string
	pos       map[string]Pos
	bad       map[string]bool
	templates map[string]string
	strings   map[string]*yaml.Node // string fields' nodes, by path
	src       []byte                // the file, to place errors inside values
	errs      ErrorList
	dests     map[string]*Destination // declared destinations, by name
	inPipe    bool                    // checking a pipe's target
}

// at is where path is in the file, or where its closest present parent is.
func (v *validator) at(path string) Pos {
	for p := path; ; p = parent(p) {
		if pos, ok := v.pos[p]; ok {
			return pos
		}
		if p == "" {
			return Pos{}
		}
	}
}

// written reports whether path was written in the file (so a zero there is
// a value, not "use the default").
func (v *validator) written(path string) bool {
	_, ok := v.pos[path]
	return ok
}

// isBad reports whether path or a field containing it already has an error
// from decoding, so that nothing is reported twice.
func (v *validator) isBad(path string) bool {
	for p := path; p != ""; p = parent(p) {
		if v.bad[p] {
			return true
		}
	}
	return false
}

func (v *validator) add(path, format string, args ...any) {
	v.addAt(v.at(path), path, format, args...)
}

func (v *validator) addAt(pos Pos, path, format string, args ...any) {
	if v.isBad(path) || len(v.errs) >= maxErrors {
		return
	}
	v.errs = append(v.errs, &Error{File: v.file, Pos: pos, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// where describes the position of path for "first ..." messages:
// "at busbar.yaml:3:11 (buses[0].name)", or "at buses[0].name" without a file.
func (v *validator) where(path string) string {
	p := v.at(path)
	if p.Line == 0 {
		return "at " + path
	}
	e := Error{File: v.file, Pos: p}
	return "at " + strings.TrimSuffix(e.Error(), ": ") + " (" + path + ")"
}

// show quotes a value for a message, or names its ${ENV} reference when it
// came from the environment.
func (v *validator) show(path, s string) string {
	if t, ok := v.templates[path]; ok {
		return fmt.Sprintf("the value of %q", t)
	}
	return strconv.Quote(s)
}

func (v *validator) config(c *Config) {
	v.transport(c.Transport)
	v.intField("ingest.max_batch_entries", "Ingest.max_batch_entries", int64(c.Ingest.MaxBatchEntries), DefaultMaxBatchEntries)
	v.intField("ingest.max_request_bytes", "Ingest.max_request_bytes", c.Ingest.MaxRequestBytes, DefaultMaxRequestBytes)

	buses := map[string]string{} // name -> path of its name
	for i, b := range c.Buses {
		p := fmt.Sprintf("buses[%d]", i)
		if v.name(p+".name", "bus name", b.Name) {
			if first, dup := buses[b.Name]; dup {
				v.add(p+".name", "bus %q is declared twice (first %s); bus names must be unique", b.Name, v.where(first))
			} else {
				buses[b.Name] = p + ".name"
			}
		}
		v.durationField(p+".retention", "Bus.retention", b.Retention, DefaultRetention)
		v.intField(p+".max_bytes", "Bus.max_bytes", b.MaxBytes, 0)
		v.intField(p+".rate_limit_per_second", "Bus.rate_limit_per_second", int64(b.RateLimitPerSecond), 0)
		v.intField(p+".rate_limit_burst", "Bus.rate_limit_burst", int64(b.RateLimitBurst), 0)
		if b.RateLimitBurst != 0 && b.RateLimitPerSecond == 0 {
			v.add(p+".rate_limit_burst", "rate_limit_burst needs rate_limit_per_second: set the steady rate too, or leave both out for no limit")
		}
		v.partitionKey(p+".partition_key", b.PartitionKey)
	}
	v.dests = v.destinations(c.Destinations, v.connections(c.Connections))

	v.sources(c.Sources, buses)
	v.pulsarSources(c)
	v.pipes(c.Pipes)

	rules := map[string]string{}
	for i := range c.Rules {
		r := &c.Rules[i]
		p := fmt.Sprintf("rules[%d]", i)
		if v.name(p+".name", "rule name", r.Name) {
			if first, dup := rules[r.Name]; dup {
				v.add(p+".name", "rule %q is declared twice (first %s); rule names must be unique across the file", r.Name, v.where(first))
			} else {
				rules[r.Name] = p + ".name"
			}
		}
		v.busRef(p+".bus", r.Bus, buses)
		v.pattern(p+".pattern", r.Pattern)
		v.filter(p+".filter", r.Filter)
		if len(r.Targets) == 0 {
			v.add(p+".targets", "a rule needs at least one target (add targets: with - id: ..., type: http, url: ...)")
		}
		ids := map[string]string{}
		for j := range r.Targets {
			t := &r.Targets[j]
			tp := fmt.Sprintf("%s.targets[%d]", p, j)
			if v.name(tp+".id", "target id", t.ID) {
				if first, dup := ids[t.ID]; dup {
					v.add(tp+".id", "target id %q is used twice in this rule (first %s); ids must be unique within a rule", t.ID, v.where(first))
				} else {
					ids[t.ID] = tp + ".id"
				}
			}
			v.target(tp, t)
			v.httpBatch(tp, t)
		}
	}
}

// name checks a required name and reports whether it is usable.
func (v *validator) name(path, what, s string) bool {
	if s == "" {
		key := path[strings.LastIndexByte(path, '.')+1:]
		v.add(path, "missing %s (add %s: using letters, digits, \"-\" and \"_\")", what, key)
		return false
	}
	if !nameRE.MatchString(s) {
		hint := ""
		if len(s) > 64 {
			hint = fmt.Sprintf("; it has %d characters", len(s))
		} else if fixed := fixName(s); fixed != "" {
			hint = fmt.Sprintf("; try %q", fixed)
		}
		v.add(path, "%s is not a valid %s: use letters, digits, \"-\" and \"_\", at most 64 characters, since it becomes a topic name%s", v.show(path, s), what, hint)
		return false
	}
	return true
}

// fixName suggests a valid name close to s.
func fixName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r < 128 && (r == '_' || r == '-' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'):
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-")
	if !nameRE.MatchString(out) {
		return ""
	}
	return out
}

func (v *validator) transport(s string) {
	const path = "transport"
	if s == "" {
		return
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		v.add(path, "not a transport URL (use embedded://, or a nats://, kafka:// or pulsar:// URL)")
		return
	}
	if !slices.Contains(transportSchemes, u.Scheme) {
		hint := ""
		if c := closest(u.Scheme, transportSchemes); c != "" {
			hint = fmt.Sprintf("; did you mean %s://?", c)
		}
		v.add(path, "transport scheme %q is not supported (use embedded://, nats://, kafka:// or pulsar://%s)", u.Scheme, hint)
	}
}

func (v *validator) busRef(path, bus string, buses map[string]string) {
	if bus == "" || bus == DefaultBus {
		return
	}
	if _, ok := buses[bus]; ok {
		return
	}
	names := make([]string, 0, len(buses)+1)
	for n := range buses {
		names = append(names, n)
	}
	names = append(names, DefaultBus)
	slices.Sort(names)
	hint := ""
	if c := closest(bus, names); c != "" {
		hint = fmt.Sprintf("; did you mean %q?", c)
	}
	v.add(path, "bus %s is not declared (declare it under buses:, or use %q%s)", v.show(path, bus), DefaultBus, hint)
}

// pattern validates an event pattern with the filters package and places
// the error on the line of the pattern key it names.
func (v *validator) pattern(path string, p json.RawMessage) {
	if len(p) == 0 || v.isBad(path) {
		return
	}
	err := filters.ValidatePattern(p)
	if err == nil {
		return
	}
	var pe *filters.PatternError
	if !errors.As(err, &pe) {
		v.add(path, "invalid pattern: %v", err)
		return
	}
	fp := path
	if pe.Path != "" {
		fp = path + "." + pe.Path
	}
	v.add(fp, "invalid pattern: %s (see docs/patterns.md)", pe.Msg)
}

// filter compiles an expr-lang filter with the filters package and places
// its error at the line and column inside the expression when it can.
func (v *validator) filter(path, expr string) {
	if expr == "" || v.isBad(path) {
		return
	}
	err := filters.ValidateFilter(expr)
	if err == nil {
		return
	}
	var fe *filters.FilterError
	if !errors.As(err, &fe) {
		v.add(path, "invalid filter: %v", err)
		return
	}
	if p, ok := v.inValue(path, fe.Line, fe.Column); ok {
		v.addAt(p, path, "invalid filter: %s", fe.Msg)
		return
	}
	if fe.Line > 0 {
		v.add(path, "invalid filter at line %d, column %d of the expression: %s", fe.Line, fe.Column, fe.Msg)
		return
	}
	v.add(path, "invalid filter: %s", fe.Msg)
}

// inValue maps a line and column inside the string at path to a position
// in the file. It succeeds only when the file shows the text verbatim there:
// a one-line plain or quoted scalar without escapes, or a literal block (|).
func (v *validator) inValue(path string, line, col int) (Pos, bool) {
	n := v.strings[path]
	if n == nil || line < 1 || col < 1 || v.src == nil {
		return Pos{}, false
	}
	if _, env := v.templates[path]; env {
		return Pos{}, false
	}
	srcLines := bytes.Split(v.src, []byte("\n"))
	exprLines := strings.Split(n.Value, "\n")
	if line > len(exprLines) {
		return Pos{}, false
	}
	want := exprLines[line-1]
	switch {
	case n.Style == 0 || n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0:
		if len(exprLines) != 1 || n.Line > len(srcLines) {
			return Pos{}, false
		}
		start := n.Column - 1 // 0-based byte column of the scalar
		if n.Style != 0 {
			start++ // the opening quote
		}
		src := srcLines[n.Line-1]
		if start > len(src) || !bytes.HasPrefix(src[start:], []byte(want)) {
			return Pos{}, false // folded over lines, or escapes: cannot map
		}
		return Pos{Line: n.Line, Column: start + col}, true
	case n.Style&yaml.LiteralStyle != 0:
		l := n.Line + line // the block starts on the line after "|"
		if l > len(srcLines) || n.Line >= len(srcLines) {
			return Pos{}, false
		}
		first := srcLines[n.Line] // the block's indentation is its first line's
		indent := len(first) - len(bytes.TrimLeft(first, " "))
		src := bytes.TrimRight(srcLines[l-1], "\r")
		if len(src) < indent || !bytes.Equal(src[indent:], []byte(want)) {
			return Pos{}, false
		}
		return Pos{Line: l, Column: indent + col}, true
	}
	return Pos{}, false
}

func (v *validator) target(path string, t *Target) {
	switch {
	case t.Type == "":
		v.add(path+".type", "missing target type (add type: http)")
	case !slices.Contains(targetTypes, t.Type):
		v.add(path+".type", "%s is not a target type (use %s%s)", v.show(path+".type", t.Type), orList(targetTypes), didYouMean(t.Type, targetTypes))
	}
	v.httpTarget(path, t)
	v.method(path+".method", t.Method)
	if t.Mode != "" && !slices.Contains(modes, t.Mode) {
		v.add(path+".mode", "%s is not a CloudEvents HTTP mode (use %s%s)", v.show(path+".mode", t.Mode), orList(modes), didYouMean(t.Mode, modes))
	}
	v.headers(path+".headers", t.Headers)
	v.transform(path+".transform", t.Transform)
	v.durationField(path+".timeout", "Target.timeout", t.Timeout, DefaultTimeout)
	batching := t.Type == TypeHTTP && t.Batch != (Batch{}) && !v.inPipe
	def := t.defaultConcurrency(batching)
	switch {
	case t.Type == TypeClickHouse:
		v.batchingConcurrency(path+".concurrency", t.Concurrency, def, "a clickhouse target batches the events in delivery, so give it thousands")
	case batching:
		v.batchingConcurrency(path+".concurrency", t.Concurrency, def,
			"an http target with batch fills its batches from the events in delivery, so give it at least batch.max_rows × batch.max_in_flight")
	default:
		v.intField(path+".concurrency", "Target.concurrency", int64(t.Concurrency), int64(def))
	}
	v.batch(path+".batch", &t.Batch, t.Type == TypeHTTP && !v.inPipe)
	v.clickhouse(path, t)
	v.kafkaTarget(path, t)
	v.pulsarTarget(path, t)

	rp := path + ".retry"
	v.intField(rp+".max_attempts", "Retry.max_attempts", int64(t.Retry.MaxAttempts), DefaultMaxAttempts)
	v.durationField(rp+".max_event_age", "Retry.max_event_age", t.Retry.MaxEventAge, DefaultMaxEventAge)
	initOK := v.durationField(rp+".initial_interval", "Retry.initial_interval", t.Retry.InitialInterval, DefaultInitialInterval)
	maxOK := v.durationField(rp+".max_interval", "Retry.max_interval", t.Retry.MaxInterval, DefaultMaxInterval)
	initial, maxI := orDefault(t.Retry.InitialInterval, DefaultInitialInterval), orDefault(t.Retry.MaxInterval, DefaultMaxInterval)
	if initOK && maxOK && initial > maxI {
		what := "max_interval " + Duration(maxI).String()
		if t.Retry.MaxInterval == 0 {
			what += " (the default)"
		}
		v.add(rp+".initial_interval", "initial_interval %s is longer than %s; raise max_interval or lower initial_interval", Duration(initial), what)
	}
}

func orDefault(d Duration, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d.D()
}

func (v *validator) httpURL(path, s string) {
	if s == "" {
		v.add(path, "missing url: an http target needs the endpoint (add url: https://...)")
		return
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, which may hold a secret
		}
		v.add(path, "not a valid URL: %v", err)
		return
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		v.add(path, "the URL must start with http:// or https://")
		return
	}
	if u.Host == "" {
		v.add(path, "the URL has no host (write it like https://example.com/hook)")
	}
}

func (v *validator) headers(path string, h map[string]string) {
	seen := map[string]string{}
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		hp := join(path, k)
		if !validHeaderName(k) {
			v.add(hp, "%q is not a valid HTTP header name (use letters, digits and -)", k)
			continue
		}
		canon := http.CanonicalHeaderKey(k)
		if first, dup := seen[canon]; dup {
			v.add(hp, "header %q is set twice (also as %q; header names ignore case); keep one", k, first)
			continue
		}
		seen[canon] = k
		// Never quote the value: headers carry credentials.
		if strings.ContainsAny(h[k], "\r\n\x00") {
			v.add(hp, "the header value contains a line break or NUL byte; remove it (check the environment variable it comes from, if any)")
		}
	}
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// intField checks a bounded integer; zero means the default unless it was
// written in the file.
func (v *validator) intField(path, key string, n, def int64) {
	if n == 0 && !v.written(path) {
		return
	}
	lim := intLimits[key]
	if n >= lim[0] && n <= lim[1] {
		return
	}
	msg := fmt.Sprintf("%d is out of range: use %d to %d", n, lim[0], lim[1])
	if lim[1] == math.MaxInt64 {
		msg = fmt.Sprintf("%d is out of range: use %d or more", n, lim[0])
	}
	if def != 0 {
		msg += fmt.Sprintf(", or leave it out for the default %d", def)
	}
	if key == "Retry.max_attempts" && n < 1 {
		msg += " (1 means no retries)"
	}
	v.add(path, "%s", msg)
}

// durationField checks a bounded duration; zero means the default unless it
// was written in the file. It reports whether the value is usable.
func (v *validator) durationField(path, key string, d Duration, def time.Duration) bool {
	if v.isBad(path) {
		return false
	}
	if d == 0 && !v.written(path) {
		return true
	}
	lim := durationLimits[key]
	if d.D() >= lim[0] && d.D() <= lim[1] {
		return true
	}
	v.add(path, "%s is out of range: use %s to %s, or leave it out for the default %s", d, Duration(lim[0]), Duration(lim[1]), Duration(def))
	return false
}

func orList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = strconv.Quote(x)
	}
	switch len(q) {
	case 1:
		return q[0]
	case 2:
		return q[0] + " or " + q[1]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

func didYouMean(s string, xs []string) string {
	if len(xs) < 2 {
		return "" // the message already names the only choice
	}
	if c := closest(s, xs); c != "" {
		return fmt.Sprintf("; did you mean %q?", c)
	}
	return ""
}
