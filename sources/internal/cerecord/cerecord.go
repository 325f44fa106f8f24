// Package cerecord turns one broker record (a Kafka record, a Pulsar
// message) into an encoded CloudEvent, the one way the broker sources share:
// a structured CloudEvent (content-type application/cloudevents+json, or a
// JSON value with "specversion") passes as it is, a binary one (attributes
// in ce_ headers or properties, data as the value) is assembled, and any
// other record is wrapped by the source's mapping.
//
// What differs between brokers stays with each source, behind Record: where
// the headers are, the id a mapped event gets when the mapping finds none,
// the time it falls back on, the extensions naming the record's position,
// and the words its errors use (Words). It must not read from or write to a
// broker, nor know about buses or dead-letter queues.
package cerecord

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/buger/jsonparser"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/pipeline/transport/kafka/kclient"
)

// Names of the CloudEvents Kafka protocol binding, which busbar uses on
// Pulsar too (there is no CloudEvents Pulsar binding in the specification).
const (
	MediaStructured = "application/cloudevents+json"
	KeyContentType  = "content-type"
	KeyPrefix       = "ce_"
)

// Words name the parts of a broker record in the errors Convert returns:
// {"record", "value", "header"} for Kafka, {"message", "payload",
// "property"} for Pulsar.
type Words struct {
	Record, Value, Header string
}

// Record is one broker record as Convert reads it. V is how the broker
// holds header values: []byte (Kafka), string (Pulsar).
type Record[V ~string | ~[]byte] interface {
	// Headers yields the record's headers (properties) in the broker's order.
	Headers(yield func(key string, value V) bool)
	// Value is the record's value (payload).
	Value() []byte
	// DefaultID is the id of a mapped event whose mapping finds none.
	DefaultID() string
	// Subject is the subject of a mapped event whose mapping finds none:
	// the record key when it is valid UTF-8, else "".
	Subject() string
	// Time is the time of a mapped event whose mapping finds none (zero:
	// no time).
	Time() time.Time
	// Extend sets the extensions that say where a mapped event came from.
	Extend(ev *event.Event)
}

// Attr is one mapped attribute: a constant, or a JSONPath into the value.
type Attr struct {
	constant string
	path     []string // jsonparser keys; nil for a constant
	src      string
}

// Mapping is a compiled config.SourceMapping.
type Mapping struct {
	ID, Source, Type, Subject, Time Attr
	ContentType                     string
}

// Compile compiles a mapping; nil compiles to nil (only CloudEvents are
// events).
func Compile(m *config.SourceMapping) (*Mapping, error) {
	if m == nil {
		return nil, nil
	}
	out := &Mapping{ContentType: m.DataContentType}
	for _, f := range []struct {
		dst *Attr
		src string
	}{{&out.ID, m.ID}, {&out.Source, m.Source}, {&out.Type, m.Type}, {&out.Subject, m.Subject}, {&out.Time, m.Time}} {
		if !strings.HasPrefix(f.src, "$") {
			*f.dst = Attr{constant: f.src, src: f.src}
			continue
		}
		keys, err := kclient.PathKeys(f.src)
		if err != nil {
			return nil, err
		}
		*f.dst = Attr{path: keys, src: f.src}
	}
	return out, nil
}

// Value resolves a to a string from a record value (isJSON says whether it
// is valid JSON); ok is false when a path finds nothing. w names the value
// in the error a path into a value that is not JSON gets.
func (a Attr) Value(val []byte, isJSON bool, w Words) (string, bool, error) {
	if a.path == nil {
		return a.constant, a.constant != "", nil
	}
	if !isJSON {
		return "", false, fmt.Errorf("%s: the %s %s is not JSON", a.src, w.Record, w.Value)
	}
	v, typ, _, err := jsonparser.Get(val, a.path...)
	if err != nil || typ == jsonparser.NotExist || typ == jsonparser.Null {
		return "", false, nil
	}
	switch typ {
	case jsonparser.String:
		s, err := jsonparser.ParseString(v)
		return s, s != "", err
	case jsonparser.Number, jsonparser.Boolean:
		return string(v), true, nil
	}
	return "", false, fmt.Errorf("%s: found a %s, want a string or number", a.src, typ)
}

// invalidError marks a record that cannot become an event (dead-lettered).
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }

func invalid(format string, args ...any) error { return &invalidError{fmt.Sprintf(format, args...)} }

// IsInvalid reports whether err says a record cannot become an event.
func IsInvalid(err error) bool {
	var ie *invalidError
	var ve *pipeline.ValidationError
	return errors.As(err, &ie) || errors.As(err, &ve) || errors.Is(err, pipeline.ErrTooLarge)
}

// Convert turns one record into an encoded event; m may be nil, now is the
// ingestion time. An error means the record is not an event (IsInvalid).
func Convert[V ~string | ~[]byte, R Record[V]](r R, m *Mapping, w Words, now time.Time) (pipeline.Record, error) {
	var ct string
	binary := false
	for k, v := range r.Headers {
		switch strings.ToLower(k) {
		case KeyContentType:
			ct = string(v)
		case KeyPrefix + "specversion":
			binary = true
		}
	}
	media, _, _ := mime.ParseMediaType(ct)
	var ev *event.Event
	var err error
	switch {
	case media == MediaStructured:
		ev, err = structured(r.Value(), w)
	case binary:
		ev, err = binaryEvent[V](r, ct, w)
	case media == "" && LooksLikeEvent(r.Value()):
		ev, err = structured(r.Value(), w)
	case m != nil:
		ev, err = mapped[V](r, m, ct, w)
	default:
		err = invalid("the %s is not a CloudEvent (no content-type %s, no ce_specversion %s, no \"specversion\" in a JSON %s) and the source has no mapping", w.Record, MediaStructured, w.Header, w.Value)
	}
	if err != nil {
		return pipeline.Record{}, err
	}
	if err := pipeline.Normalize(ev, now); err != nil {
		return pipeline.Record{}, err
	}
	b, err := pipeline.Encode(ev)
	if err != nil {
		return pipeline.Record{}, err
	}
	return pipeline.Record{ID: ev.ID(), Event: b, IngestTime: now}, nil
}

// LooksLikeEvent reports whether v is a JSON object with a string
// "specversion" (a structured CloudEvent without its content-type).
func LooksLikeEvent(v []byte) bool {
	if len(v) == 0 || v[0] != '{' {
		return false
	}
	_, typ, _, err := jsonparser.Get(v, "specversion")
	return err == nil && typ == jsonparser.String
}

func structured(v []byte, w Words) (*event.Event, error) {
	if !json.Valid(v) {
		return nil, invalid("structured CloudEvent: the %s is not valid JSON", w.Value)
	}
	ev, err := pipeline.Decode(v)
	if err != nil {
		return nil, invalid("structured CloudEvent: %v", err)
	}
	return ev, nil
}

func binaryEvent[V ~string | ~[]byte, R Record[V]](r R, ct string, w Words) (*event.Event, error) {
	ev := event.New()
	for k, hv := range r.Headers {
		name, ok := strings.CutPrefix(strings.ToLower(k), KeyPrefix)
		if !ok {
			continue
		}
		v := string(hv)
		switch name {
		case "specversion":
			ev.SetSpecVersion(v)
		case "id":
			ev.SetID(v)
		case "source":
			ev.SetSource(v)
		case "type":
			ev.SetType(v)
		case "subject":
			ev.SetSubject(v)
		case "dataschema":
			ev.SetDataSchema(v)
		case "time":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return nil, invalid("binary CloudEvent: ce_time %q is not an RFC 3339 time", v)
			}
			ev.SetTime(t)
		default:
			ev.SetExtension(name, v)
		}
	}
	if err := setData(&ev, r.Value(), ct, w); err != nil {
		return nil, err
	}
	return &ev, nil
}

// setData puts a record value into ev as its data: JSON inline, text as a
// string, anything else base64.
func setData(ev *event.Event, v []byte, ct string, w Words) error {
	if len(v) == 0 {
		if ct != "" {
			ev.SetDataContentType(ct)
		}
		return nil
	}
	media, _, _ := mime.ParseMediaType(ct)
	isJSON := media == "application/json" || strings.HasSuffix(media, "+json") || media == "text/json"
	switch {
	case ct == "" && json.Valid(v):
		ct, isJSON = event.ApplicationJSON, true
	case ct == "":
		ct = "application/octet-stream"
	}
	ev.SetDataContentType(ct)
	switch {
	case isJSON:
		if !json.Valid(v) {
			return invalid("data: content-type %s but the %s is not valid JSON", ct, w.Value)
		}
		ev.DataEncoded, ev.DataBase64 = v, false
	case strings.HasPrefix(media, "text/") && utf8.Valid(v):
		ev.DataEncoded, ev.DataBase64 = v, false
	default:
		ev.DataEncoded, ev.DataBase64 = v, true
	}
	return nil
}

func mapped[V ~string | ~[]byte, R Record[V]](r R, m *Mapping, ct string, w Words) (*event.Event, error) {
	val := r.Value()
	isJSON := json.Valid(val)
	ev := event.New()
	get := func(a Attr, name string, required bool) (string, error) {
		v, ok, err := a.Value(val, isJSON, w)
		if err != nil {
			return "", invalid("mapping %s: %v", name, err)
		}
		if !ok && required {
			return "", invalid("mapping %s: %s found nothing in the %s %s", name, a.src, w.Record, w.Value)
		}
		return v, nil
	}
	src, err := get(m.Source, "source", true)
	if err != nil {
		return nil, err
	}
	typ, err := get(m.Type, "type", true)
	if err != nil {
		return nil, err
	}
	ev.SetSource(src)
	ev.SetType(typ)
	id, err := get(m.ID, "id", false)
	if err != nil {
		return nil, err
	}
	if id == "" {
		id = r.DefaultID()
	}
	ev.SetID(id)
	subject, err := get(m.Subject, "subject", false)
	if err != nil {
		return nil, err
	}
	if subject == "" {
		subject = r.Subject()
	}
	if subject != "" {
		ev.SetSubject(subject)
	}
	ts, err := get(m.Time, "time", false)
	if err != nil {
		return nil, err
	}
	if ts != "" {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return nil, invalid("mapping time: %q is not an RFC 3339 time", ts)
		}
		ev.SetTime(t)
	} else if t := r.Time(); !t.IsZero() {
		ev.SetTime(t)
	}
	r.Extend(&ev)
	if m.ContentType != "" {
		ct = m.ContentType
	}
	if err := setData(&ev, val, ct, w); err != nil {
		return nil, err
	}
	return &ev, nil
}
