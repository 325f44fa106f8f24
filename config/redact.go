package config

import (
	"fmt"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strings"
)

// RedactedValue replaces secrets in Redacted output.
const RedactedValue = "REDACTED"

// Redacted returns a deep copy of c that is safe to print, log or return
// from an API:
//   - every value that came from an ${ENV} reference is shown as that
//     reference again ("Bearer ${TOKEN}"), whatever field it is in;
//   - every other header value becomes "REDACTED" (headers carry
//     credentials even when written into the file);
//   - passwords in URLs (https://user:pass@host) become "xxxxx".
//
// Secrets written literally anywhere else (a token in a URL path or query)
// cannot be told apart: keep them in environment variables.
func (c *Config) Redacted() *Config {
	out := c.Clone()
	restoreTemplates(reflect.ValueOf(out).Elem(), "", c.templates)
	hidePassword := func(path string, s *string) {
		if _, ok := c.templates[path]; !ok {
			*s = redactPassword(*s)
		}
	}
	hidePassword("transport", &out.Transport)
	hideSASL := func(path string, s *KafkaSASL) {
		if _, ok := c.templates[path]; !ok && s != nil && s.Password != "" {
			s.Password = RedactedValue
		}
	}
	for i := range out.Rules {
		for j := range out.Rules[i].Targets {
			t := &out.Rules[i].Targets[j]
			tp := fmt.Sprintf("rules[%d].targets[%d]", i, j)
			hidePassword(tp+".url", &t.URL)
			t.Transform.hideKeys(tp+".transform", c.templates)
			hidePassword(tp+".clickhouse.dsn", &t.ClickHouse.DSN)
			hideSASL(tp+".kafka.sasl.password", t.Kafka.SASL)
			for k := range t.Headers {
				if _, ok := c.templates[join(tp+".headers", k)]; !ok {
					t.Headers[k] = RedactedValue
				}
			}
		}
	}
	for i := range out.Sources {
		hideSASL(fmt.Sprintf("sources[%d].kafka.sasl.password", i), out.Sources[i].Kafka.SASL)
	}
	c.redactConnections(out)
	c.redactPipes(out)
	c.redactPulsar(out)
	out.templates = nil
	return out
}

// restoreTemplates puts back the ${ENV} text of every string field (and
// string map value) that held one, whatever type the field belongs to.
func restoreTemplates(v reflect.Value, path string, templates map[string]string) {
	if len(templates) == 0 {
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		fs := fieldsOf(v.Type())
		for _, name := range fs.names {
			restoreTemplates(v.FieldByIndex(fs.byName[name].index), join(path, name), templates)
		}
	case reflect.Slice:
		if v.Type() == rawMessageType {
			return
		}
		for i := 0; i < v.Len(); i++ {
			restoreTemplates(v.Index(i), fmt.Sprintf("%s[%d]", path, i), templates)
		}
	case reflect.Pointer:
		if !v.IsNil() {
			restoreTemplates(v.Elem(), path, templates)
		}
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String || v.Type().Elem().Kind() != reflect.String {
			return
		}
		for _, k := range v.MapKeys() {
			if t, ok := templates[join(path, k.String())]; ok {
				v.SetMapIndex(k, reflect.ValueOf(t).Convert(v.Type().Elem()))
			}
		}
	case reflect.String:
		if t, ok := templates[path]; ok {
			v.SetString(t)
		}
	}
}

// redactPassword hides the password of a URL's user info, if any.
func redactPassword(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		return RedactedValue // cannot tell where the secret is: hide it all
	}
	return u.Redacted()
}

func cloneSASL(s *KafkaSASL) *KafkaSASL {
	if s == nil {
		return nil
	}
	c := *s
	return &c
}

func cloneTLS(t *KafkaTLS) *KafkaTLS {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

// Clone returns a deep copy of c: changing the copy never changes c.
func (c *Config) Clone() *Config {
	out := *c
	out.Buses = slices.Clone(c.Buses)
	out.Rules = slices.Clone(c.Rules)
	for i := range out.Rules {
		r := &out.Rules[i]
		if r.Enabled != nil {
			e := *r.Enabled
			r.Enabled = &e
		}
		r.Pattern = slices.Clone(r.Pattern)
		r.Targets = slices.Clone(r.Targets)
		for j := range r.Targets {
			r.Targets[j].Headers = maps.Clone(r.Targets[j].Headers)
			r.Targets[j].Transform = r.Targets[j].Transform.clone()
			r.Targets[j].ClickHouse.Columns = slices.Clone(r.Targets[j].ClickHouse.Columns)
			k := &r.Targets[j].Kafka
			k.Brokers, k.SASL, k.TLS = slices.Clone(k.Brokers), cloneSASL(k.SASL), cloneTLS(k.TLS)
		}
	}
	out.Sources = slices.Clone(c.Sources)
	for i := range out.Sources {
		k := &out.Sources[i].Kafka
		k.Brokers, k.SASL, k.TLS = slices.Clone(k.Brokers), cloneSASL(k.SASL), cloneTLS(k.TLS)
	}
	c.cloneConnections(&out)
	c.clonePipes(&out)
	c.clonePulsar(&out)
	out.templates = maps.Clone(c.templates)
	return &out
}
