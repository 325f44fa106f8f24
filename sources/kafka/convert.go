package kafka

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/buger/jsonparser"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/pipeline/transport/kafka/kclient"
)

// Media types of the CloudEvents Kafka binding.
const (
	mediaStructured = "application/cloudevents+json"
	headerCT        = "content-type"
	headerPrefix    = "ce_"
)

// attr is one mapped attribute: a constant, or a JSONPath into the value.
type attr struct {
	constant string
	path     []string // jsonparser keys; nil for a constant
	src      string
}

// mapping is a compiled config.SourceMapping.
type mapping struct {
	id, source, typ, subject, time attr
	contentType                    string
}

func compileMapping(m *config.SourceMapping) (*mapping, error) {
	if m == nil {
		return nil, nil
	}
	out := &mapping{contentType: m.DataContentType}
	for _, f := range []struct {
		dst *attr
		src string
	}{{&out.id, m.ID}, {&out.source, m.Source}, {&out.typ, m.Type}, {&out.subject, m.Subject}, {&out.time, m.Time}} {
		a, err := compileAttr(f.src)
		if err != nil {
			return nil, err
		}
		*f.dst = a
	}
	return out, nil
}

func compileAttr(s string) (attr, error) {
	if !strings.HasPrefix(s, "$") {
		return attr{constant: s, src: s}, nil
	}
	keys, err := kclient.PathKeys(s)
	return attr{path: keys, src: s}, err
}

// value resolves a to a string from the record value (nil when the value is
// not JSON); ok is false when a path finds nothing.
func (a attr) value(val []byte, isJSON bool) (string, bool, error) {
	if a.path == nil {
		return a.constant, a.constant != "", nil
	}
	if !isJSON {
		return "", false, fmt.Errorf("%s: the record value is not JSON", a.src)
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

// errInvalid marks a record that cannot become an event (dead-lettered).
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }

func invalid(format string, args ...any) error { return &invalidError{fmt.Sprintf(format, args...)} }

// IsInvalid reports whether err says a record cannot become an event.
func IsInvalid(err error) bool {
	var ie *invalidError
	var ve *pipeline.ValidationError
	return errors.As(err, &ie) || errors.As(err, &ve) || errors.Is(err, pipeline.ErrTooLarge)
}

// convert turns one record into an encoded event.
func convert(r *kgo.Record, m *mapping, now time.Time) (pipeline.Record, error) {
	var ct string
	binary := false
	for _, h := range r.Headers {
		k := strings.ToLower(h.Key)
		if k == headerCT {
			ct = string(h.Value)
		}
		if k == headerPrefix+"specversion" {
			binary = true
		}
	}
	media, _, _ := mime.ParseMediaType(ct)
	var ev *event.Event
	var err error
	switch {
	case media == mediaStructured:
		ev, err = structured(r.Value)
	case binary:
		ev, err = binaryEvent(r, ct)
	case media == "" && looksLikeEvent(r.Value):
		ev, err = structured(r.Value)
	case m != nil:
		ev, err = mapped(r, m, ct)
	default:
		err = invalid("the record is not a CloudEvent (no content-type %s, no ce_specversion header, no \"specversion\" in a JSON value) and the source has no mapping", mediaStructured)
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

func looksLikeEvent(v []byte) bool {
	if len(v) == 0 || v[0] != '{' {
		return false
	}
	_, typ, _, err := jsonparser.Get(v, "specversion")
	return err == nil && typ == jsonparser.String
}

func structured(v []byte) (*event.Event, error) {
	if !json.Valid(v) {
		return nil, invalid("structured CloudEvent: the value is not valid JSON")
	}
	ev, err := pipeline.Decode(v)
	if err != nil {
		return nil, invalid("structured CloudEvent: %v", err)
	}
	return ev, nil
}

func binaryEvent(r *kgo.Record, ct string) (*event.Event, error) {
	ev := event.New()
	for _, h := range r.Headers {
		k := strings.ToLower(h.Key)
		name, ok := strings.CutPrefix(k, headerPrefix)
		if !ok {
			continue
		}
		v := string(h.Value)
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
	if err := setData(&ev, r.Value, ct); err != nil {
		return nil, err
	}
	return &ev, nil
}

// setData puts a record value into ev as its data: JSON inline, text as a
// string, anything else base64.
func setData(ev *event.Event, v []byte, ct string) error {
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
			return invalid("data: content-type %s but the value is not valid JSON", ct)
		}
		ev.DataEncoded, ev.DataBase64 = v, false
	case strings.HasPrefix(media, "text/") && utf8.Valid(v):
		ev.DataEncoded, ev.DataBase64 = v, false
	default:
		ev.DataEncoded, ev.DataBase64 = v, true
	}
	return nil
}

func mapped(r *kgo.Record, m *mapping, ct string) (*event.Event, error) {
	isJSON := json.Valid(r.Value)
	ev := event.New()
	get := func(a attr, name string, required bool) (string, error) {
		v, ok, err := a.value(r.Value, isJSON)
		if err != nil {
			return "", invalid("mapping %s: %v", name, err)
		}
		if !ok && required {
			return "", invalid("mapping %s: %s found nothing in the record value", name, a.src)
		}
		return v, nil
	}
	src, err := get(m.source, "source", true)
	if err != nil {
		return nil, err
	}
	typ, err := get(m.typ, "type", true)
	if err != nil {
		return nil, err
	}
	ev.SetSource(src)
	ev.SetType(typ)
	id, err := get(m.id, "id", false)
	if err != nil {
		return nil, err
	}
	if id == "" {
		id = fmt.Sprintf("%s-%d-%d", r.Topic, r.Partition, r.Offset)
	}
	ev.SetID(id)
	subject, err := get(m.subject, "subject", false)
	if err != nil {
		return nil, err
	}
	if subject == "" && len(r.Key) > 0 && utf8.Valid(r.Key) {
		subject = string(r.Key)
	}
	if subject != "" {
		ev.SetSubject(subject)
	}
	ts, err := get(m.time, "time", false)
	if err != nil {
		return nil, err
	}
	if ts != "" {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return nil, invalid("mapping time: %q is not an RFC 3339 time", ts)
		}
		ev.SetTime(t)
	} else if !r.Timestamp.IsZero() {
		ev.SetTime(r.Timestamp)
	}
	ev.SetExtension("topic", r.Topic)
	ev.SetExtension("partition", int32(r.Partition))
	ev.SetExtension("offset", strconv.FormatInt(r.Offset, 10))
	if m.contentType != "" {
		ct = m.contentType
	}
	if err := setData(&ev, r.Value, ct); err != nil {
		return nil, err
	}
	return &ev, nil
}
