package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/busbar/busbar/filters/transform/reshape"
)

// Batching http targets (docs/targets.md, "Batches"): batch: on a rule's
// http target sends many events in one POST. This file holds their
// defaults and the checks that refuse batch: where one request cannot carry
// many events.

// Defaults of the batch of an http target. Receivers answer per request, so
// batches are small and cut quickly: latency stays that of a round trip.
const (
	DefaultHTTPBatchMaxRows     = 100
	DefaultHTTPBatchMaxBytes    = 1 << 20
	DefaultHTTPBatchMaxWait     = 10 * time.Millisecond
	DefaultHTTPBatchMaxInFlight = 4
	// MaxDefaultHTTPBatchConcurrency caps the default concurrency of a
	// batching http target, max_rows × max_in_flight.
	MaxDefaultHTTPBatchConcurrency = 10_000
)

// BatchesRequests reports whether the target sends its events in batches:
// an http target of a rule with batch: set. (A pipe's batch shapes the
// pipe's batches; its http target still gets one request per event.)
func (t *Target) BatchesRequests() bool {
	return t.Type == TypeHTTP && !t.pipe && t.Batch != (Batch{})
}

// applyHTTPBatchDefaults fills the batch limits of a batching http target
// (its concurrency, enough events in delivery to fill max_in_flight batches
// of max_rows, comes from defaultConcurrency).
func (t *Target) applyHTTPBatchDefaults() {
	if !t.BatchesRequests() {
		return
	}
	b := &t.Batch
	if b.MaxRows == 0 {
		b.MaxRows = DefaultHTTPBatchMaxRows
	}
	if b.MaxBytes == 0 {
		b.MaxBytes = DefaultHTTPBatchMaxBytes
	}
	if b.MaxWait == 0 {
		b.MaxWait = Duration(DefaultHTTPBatchMaxWait)
	}
	if b.MaxInFlight == 0 {
		b.MaxInFlight = DefaultHTTPBatchMaxInFlight
	}
}

// HTTPBatchConcurrency is the default concurrency of an http target
// batching maxRows events with maxInFlight requests at once.
func HTTPBatchConcurrency(maxRows, maxInFlight int) int {
	return min(maxRows*maxInFlight, MaxDefaultHTTPBatchConcurrency)
}

// httpBatch checks the batch of a rule's target at path: it must make
// sense for one request that carries many events.
func (v *validator) httpBatch(path string, t *Target) {
	bp := path + ".batch"
	if t.Batch == (Batch{}) && !v.written(bp) {
		return
	}
	if IsChat(t.Type) {
		v.add(bp, "a %s robot takes one message per request; remove batch", t.Type)
		return
	}
	if t.Type != TypeHTTP {
		return
	}
	if t.Batch == (Batch{}) {
		for _, f := range []string{"max_rows", "max_bytes", "max_wait", "max_in_flight"} {
			if v.written(bp + "." + f) {
				return // a zero limit, reported at its field
			}
		}
		v.add(bp, "batch sets no limit; give at least one (batch: {max_rows: %d}) to send many events per request, or remove it", DefaultHTTPBatchMaxRows)
		return
	}
	why := "a batch is one POST for many events"
	if t.Mode == ModeBinary {
		v.add(bp, "%s in CloudEvents batch mode, which has no binary form; remove batch or mode: binary", why)
	}
	method, rawURL, urlField := strings.ToUpper(t.Method), t.URL, path+".url"
	if d := v.dests[t.Destination]; d != nil {
		method, rawURL, urlField = strings.ToUpper(d.Method), d.URL, fmt.Sprintf("destination %q url", d.Name)
	}
	if method == "GET" || method == "DELETE" {
		v.add(bp, "%s; a %s sends no body: remove batch or send with POST, PUT or PATCH", why, method)
	}
	if hasPlaceholder(rawURL) {
		v.add(bp, "%s, so its URL cannot depend on the event, and %s holds {$...} placeholders: remove batch or the placeholders", why, urlField)
	}
	for _, f := range []struct {
		name string
		m    map[string]string
	}{{"headers", t.Headers}, {"query", t.Query}} {
		for _, k := range slices.Sorted(maps.Keys(f.m)) {
			if hasPlaceholder(f.m[k]) {
				v.add(bp, "%s, so its %s cannot depend on the event, and %s holds {$...} placeholders: remove batch or the placeholders", why, f.name, join(path+"."+f.name, k))
			}
		}
	}
	if makesText(t.Transform) {
		v.add(bp, "%s as a JSON array, and the transform makes text, not JSON: remove batch, or make the transform's output JSON", why)
	}
}

func hasPlaceholder(s string) bool {
	_, paths, err := SplitPlaceholders(s, '{', '}')
	return err == nil && len(paths) > 0
}

// probeEvent is what makesText applies a transform to.
var probeEvent = []byte(`{"specversion":"1.0","id":"probe","source":"busbar","type":"probe","data":{}}`)

// makesText reports whether a transform surely makes text: a text constant
// or a text template, whose output type does not depend on the event. (An
// expression or the data form may make text for some events only; those
// events fail alone at delivery.)
func makesText(t *Transform) bool {
	if t == nil {
		return false
	}
	switch t.FormOf() {
	case reshape.FormConstant, reshape.FormTemplate:
	default:
		return false
	}
	p, err := reshape.Compile(t.Spec(), reshape.Options{})
	if err != nil {
		return false // reported by the transform's own check
	}
	_, ctype, err := p.Apply(probeEvent, reshape.Meta{})
	return err == nil && ctype == reshape.ContentTypeText
}

func orInt(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}
