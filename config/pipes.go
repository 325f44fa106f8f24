package config

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Pipes (docs/pipes.md): a source straight into one target, without a bus.
// A pipe's source is a sources entry without name and bus, its target a
// target as under rules; defaults, clones and redaction reuse those of
// sources and targets, so a pipe never lags behind what they learn.

// DefaultKafkaSessionTimeout is the session timeout of the consumer groups
// of kafka sources and pipes.
const DefaultKafkaSessionTimeout = 45 * time.Second

// PipeGroup is the consumer group of a pipe's kafka source: group, or
// "busbar.pipe.<name>".
func (p *Pipe) PipeGroup() string {
	if p.Source.Kafka.Group != "" {
		return p.Source.Kafka.Group
	}
	return "busbar.pipe." + p.Name
}

// applyPipeDefaults fills the defaults of pipes: those of a source for the
// source, those of a target for the target, except that a pipe's target
// has no retry.max_attempts and retry.max_event_age (a pipe never gives up
// on an event the target may still take) and a clickhouse target no
// concurrency (a pipe hands it whole batches).
func (c *Config) applyPipeDefaults() {
	for i := range c.Pipes {
		p := &c.Pipes[i]
		if p.Source.Type == TypeKafka {
			p.Source.Kafka.Group = p.PipeGroup()
			if p.Source.Kafka.Start == "" {
				p.Source.Kafka.Start = KafkaStartOldest
			}
		}
		if p.Target.ID == "" {
			p.Target.ID = p.Name
		}
		keep, conc := p.Target.Retry, p.Target.Concurrency
		tmp := Config{Rules: []Rule{{Targets: []Target{p.Target}}}}
		tmp.applyKafkaDefaults()
		t := tmp.Rules[0].Targets[0]
		t.pipe = true
		t.applyDefaults()
		t.Retry.MaxAttempts, t.Retry.MaxEventAge = keep.MaxAttempts, keep.MaxEventAge
		if t.Type == TypeClickHouse {
			t.Concurrency = conc
		}
		p.Target = t
	}
	c.linkPipes()
}

// linkPipes points pipe targets at the destinations they name.
func (c *Config) linkPipes() {
	for i := range c.Pipes {
		t := &c.Pipes[i].Target
		t.dest, t.pipe = nil, true
		for j := range c.Destinations {
			if c.Destinations[j].Name == t.Destination {
				t.dest = &c.Destinations[j]
			}
		}
	}
}

// clonePipes deep-copies c's pipes into out (a shallow copy of c whose
// destinations are already its own).
func (c *Config) clonePipes(out *Config) {
	out.Pipes = slices.Clone(c.Pipes)
	for i := range out.Pipes {
		p := &out.Pipes[i]
		tmp := (&Config{
			Rules:   []Rule{{Targets: []Target{p.Target}}},
			Sources: []Source{{Kafka: p.Source.Kafka}},
		}).Clone()
		p.Target, p.Source.Kafka = tmp.Rules[0].Targets[0], tmp.Sources[0].Kafka
		if m := p.Source.Mapping; m != nil {
			cp := *m
			p.Source.Mapping = &cp
		}
		p.Pattern = slices.Clone(p.Pattern)
		p.Transform = p.Transform.clone()
	}
	out.linkPipes()
}

// redactPipes hides the secrets of out's pipes (a clone of c's, ${ENV}
// references already restored) the way Redacted hides those of rules'
// targets and sources: each pipe is redacted as a config of one rule and
// one source, with c's references moved to that config's paths.
func (c *Config) redactPipes(out *Config) {
	for i := range out.Pipes {
		p := &out.Pipes[i]
		pp := fmt.Sprintf("pipes[%d].", i)
		tmp := &Config{
			Rules:     []Rule{{Targets: []Target{p.Target, {Transform: p.Transform}}}},
			Sources:   []Source{{Kafka: p.Source.Kafka}},
			templates: map[string]string{},
		}
		for k, v := range c.templates {
			rest, ok := strings.CutPrefix(k, pp)
			if !ok {
				continue
			}
			for from, to := range map[string]string{"target.": "rules[0].targets[0].", "transform.": "rules[0].targets[1].transform.", "source.": "sources[0]."} {
				if r, ok := strings.CutPrefix(rest, from); ok {
					tmp.templates[to+r] = v
				}
			}
		}
		r := tmp.Redacted()
		p.Target, p.Transform, p.Source.Kafka = r.Rules[0].Targets[0], r.Rules[0].Targets[1].Transform, r.Sources[0].Kafka
	}
	out.linkPipes()
}

// pipes checks the pipes: names, sources, patterns, filters, transforms
// and targets.
func (v *validator) pipes(ps []Pipe) {
	names := map[string]string{}
	for i := range ps {
		p := &ps[i]
		path := fmt.Sprintf("pipes[%d]", i)
		if v.name(path+".name", "pipe name", p.Name) {
			if first, dup := names[p.Name]; dup {
				v.add(path+".name", "pipe %q is declared twice (first %s); pipe names must be unique", p.Name, v.where(first))
			} else {
				names[p.Name] = path + ".name"
			}
		}
		v.pipeSource(path+".source", &p.Source)
		v.pattern(path+".pattern", p.Pattern)
		v.filter(path+".filter", p.Filter)
		v.transform(path+".transform", p.Transform)
		v.pipeTarget(path+".target", &p.Target)
	}
}

func (v *validator) pipeSource(path string, s *PipeSource) {
	switch {
	case s.Type == "" && !v.written(path):
		v.add(path, "missing source: a pipe reads one source (add source: {type: kafka, kafka: {brokers: [...], topic: ...}})")
		return
	case s.Type == "":
		v.add(path+".type", "missing source type (add type: kafka)")
	case !slices.Contains(sourceTypes, s.Type):
		v.add(path+".type", "%s is not a source type (use %s)", v.show(path+".type", s.Type), orList(sourceTypes))
	}
	kp := path + ".kafka"
	if s.Type != TypeKafka {
		if v.written(kp) && s.Type != "" {
			v.add(kp, "kafka: applies to sources of type kafka only; remove it or set type: kafka")
		}
	} else {
		v.kafkaSource(kp, &s.Kafka)
	}
	v.sourceMapping(path+".mapping", s.Mapping)
}

func (v *validator) pipeTarget(path string, t *Target) {
	if t.Type == "" && !v.written(path) {
		v.add(path, "missing target: a pipe delivers to one target (add target: {type: clickhouse, clickhouse: {dsn: ...}})")
		return
	}
	if t.ID != "" {
		v.name(path+".id", "target id", t.ID)
	}
	v.inPipe = true
	v.target(path, t)
	v.inPipe = false
	pipe := strings.TrimSuffix(path, ".target")
	if t.Transform != nil {
		v.add(path+".transform", "a pipe's transform belongs to the pipe: move it up to %s.transform", pipe)
	}
	for _, f := range []struct {
		key string
		set bool
	}{{"max_attempts", t.Retry.MaxAttempts != 0}, {"max_event_age", t.Retry.MaxEventAge != 0}} {
		if f.set {
			v.add(path+".retry."+f.key, "retry.%s does not apply to a pipe: a pipe retries until the target takes the event (or refuses it for good), holding its source back meanwhile; remove it", f.key)
		}
	}
	if t.Type == TypeClickHouse && t.Concurrency != 0 {
		v.add(path+".concurrency", "concurrency does not apply to a clickhouse target of a pipe: the pipe hands it whole batches (set batch.max_rows and batch.max_in_flight instead); remove it")
	}
}
