package cerecord

import (
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/busbar/busbar/config"
)

// fake is a record with string headers and no fallbacks.
type fake struct {
	headers map[string]string
	value   []byte
}

func (f fake) Headers(yield func(string, string) bool) {
	for k, v := range f.headers {
		if !yield(k, v) {
			return
		}
	}
}
func (f fake) Value() []byte        { return f.value }
func (fake) DefaultID() string      { return "d" }
func (fake) Subject() string        { return "" }
func (fake) Time() time.Time        { return time.Time{} }
func (fake) Extend(ev *event.Event) {}

// TestErrorWords: each broker's errors read exactly as they did when each
// source had its own copy of the conversion.
func TestErrorWords(t *testing.T) {
	kafka := Words{"record", "value", "header"}
	pulsar := Words{"message", "payload", "property"}
	m, err := Compile(&config.SourceMapping{Source: "s", Type: "$.kind"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		w    Words
		m    *Mapping
		r    fake
		want string
	}{
		{kafka, nil, fake{value: []byte("x")}, `the record is not a CloudEvent (no content-type application/cloudevents+json, no ce_specversion header, no "specversion" in a JSON value) and the source has no mapping`},
		{pulsar, nil, fake{value: []byte("x")}, `the message is not a CloudEvent (no content-type application/cloudevents+json, no ce_specversion property, no "specversion" in a JSON payload) and the source has no mapping`},
		{kafka, nil, fake{headers: map[string]string{"Content-Type": MediaStructured}, value: []byte("x")}, "structured CloudEvent: the value is not valid JSON"},
		{pulsar, nil, fake{headers: map[string]string{"content-type": MediaStructured}, value: []byte("x")}, "structured CloudEvent: the payload is not valid JSON"},
		{kafka, m, fake{value: []byte("x")}, "mapping type: $.kind: the record value is not JSON"},
		{pulsar, m, fake{value: []byte("x")}, "mapping type: $.kind: the message payload is not JSON"},
		{kafka, m, fake{value: []byte("{}")}, "mapping type: $.kind found nothing in the record value"},
		{pulsar, m, fake{value: []byte("{}")}, "mapping type: $.kind found nothing in the message payload"},
		{kafka, nil, fake{headers: map[string]string{"ce_specversion": "1.0", "content-type": "application/json"}, value: []byte("x")}, "data: content-type application/json but the value is not valid JSON"},
		{pulsar, nil, fake{headers: map[string]string{"ce_specversion": "1.0", "content-type": "application/json"}, value: []byte("x")}, "data: content-type application/json but the payload is not valid JSON"},
	} {
		_, err := Convert[string](c.r, c.m, c.w, time.Now())
		if err == nil || err.Error() != c.want || !IsInvalid(err) {
			t.Errorf("%s %q: got %v, want invalid %q", c.w.Record, c.r.value, err, c.want)
		}
	}
}
