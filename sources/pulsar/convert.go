package pulsar

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strings"
	"time"
	"unicode/utf8"

	pc "github.com/apache/pulsar-client-go/pulsar"
	"github.com/buger/jsonparser"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/pipeline/transport/kafka/kclient"
)

// Properties of the CloudEvents binding busbar uses on Pulsar (the same
// names as the Kafka protocol binding: there is no CloudEvents Pulsar
// binding in the specification).
const (
	mediaStructured = "application/cloudevents+json"
	propCT          = "content-type"
	propPrefix      = "ce_"
)

// attr is one mapped attribute: a constant, or a JSONPath into the payload.
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
		if !strings.HasPrefix(f.src, "$") {
			*f.dst = attr{constant: f.src, src: f.src}
			continue
		}
		keys, err := kclient.PathKeys(f.src)
		if err != nil {
			return nil, err
		}
		*f.dst = attr{path: keys, src: f.src}
	}
	return out, nil
}

// value resolves a from the payload; ok is false when a path finds nothing.
func (a attr) value(val []byte, isJSON bool) (string, bool, error) {
	if a.path == nil {
		return a.constant, a.constant != "", nil
	}
	if !isJSON {
		return "", false, fmt.Errorf("%s: the message payload is not JSON", a.src)
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

// invalidError marks a message that cannot become an event.
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }

func invalid(format string, args ...any) error { return &invalidError{fmt.Sprintf(format, args...)} }

// IsInvalid reports whether err says a message cannot become an event.
func IsInvalid(err error) bool {
	var ie *invalidError
	var ve *pipeline.ValidationError
	return errors.As(err, &ie) || errors.As(err, &ve) || errors.Is(err, pipeline.ErrTooLarge)
}

// convert turns one message into an encoded event.
func convert(m pc.Message, mp *mapping, now time.Time) (pipeline.Record, error) {
	props := m.Properties()
	var ct string
	binary := false
	for k, v := range props {
		switch strings.ToLower(k) {
		case propCT:
			ct = v
		case propPrefix + "specversion":
			binary = true
		}
	}
	media, _, _ := mime.ParseMediaType(ct)
	var ev *event.Event
	var err error
	switch {
	case media == mediaStructured:
		ev, err = structured(m.Payload())
	case binary:
		ev, err = binaryEvent(props, m.Payload(), ct)
	case media == "" && looksLikeEvent(m.Payload()):
		ev, err = structured(m.Payload())
	case mp != nil:
		ev, err = mapped(m, mp, ct)
	default:
		err = invalid("the message is not a CloudEvent (no content-type %s, no ce_specversion property, no \"specversion\" in a JSON payload) and the source has no mapping", mediaStructured)
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
		return nil, invalid("structured CloudEvent: the payload is not valid JSON")
	}
	ev, err := pipeline.Decode(v)
	if err != nil {
		return nil, invalid("structured CloudEvent: %v", err)
	}
	return ev, nil
}

func binaryEvent(props map[string]string, payload []byte, ct string) (*event.Event, error) {
	ev := event.New()
	for k, v := range props {
		name, ok := strings.CutPrefix(strings.ToLower(k), propPrefix)
		if !ok {
			continue
		}
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
	if err := setData(&ev, payload, ct); err != nil {
		return nil, err
	}
	return &ev, nil
}

// setData puts a payload into ev as its data: JSON inline, text as a
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
			return invalid("data: content-type %s but the payload is not valid JSON", ct)
		}
		ev.DataEncoded, ev.DataBase64 = v, false
	case strings.HasPrefix(media, "text/") && utf8.Valid(v):
		ev.DataEncoded, ev.DataBase64 = v, false
	default:
		ev.DataEncoded, ev.DataBase64 = v, true
	}
	return nil
}

func mapped(m pc.Message, mp *mapping, ct string) (*event.Event, error) {
	payload := m.Payload()
	isJSON := json.Valid(payload)
	ev := event.New()
	get := func(a attr, name string, required bool) (string, error) {
		v, ok, err := a.value(payload, isJSON)
		if err != nil {
			return "", invalid("mapping %s: %v", name, err)
		}
		if !ok && required {
			return "", invalid("mapping %s: %s found nothing in the message payload", name, a.src)
		}
		return v, nil
	}
	src, err := get(mp.source, "source", true)
	if err != nil {
		return nil, err
	}
	typ, err := get(mp.typ, "type", true)
	if err != nil {
		return nil, err
	}
	ev.SetSource(src)
	ev.SetType(typ)
	id, err := get(mp.id, "id", false)
	if err != nil {
		return nil, err
	}
	mid := messageID(m.ID())
	if id == "" {
		id = m.Topic() + "-" + mid
	}
	ev.SetID(id)
	subject, err := get(mp.subject, "subject", false)
	if err != nil {
		return nil, err
	}
	if subject == "" && m.Key() != "" && utf8.ValidString(m.Key()) {
		subject = m.Key()
	}
	if subject != "" {
		ev.SetSubject(subject)
	}
	ts, err := get(mp.time, "time", false)
	if err != nil {
		return nil, err
	}
	switch {
	case ts != "":
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return nil, invalid("mapping time: %q is not an RFC 3339 time", ts)
		}
		ev.SetTime(t)
	case !m.EventTime().IsZero():
		ev.SetTime(m.EventTime())
	case !m.PublishTime().IsZero():
		ev.SetTime(m.PublishTime())
	}
	ev.SetExtension("topic", m.Topic())
	ev.SetExtension("messageid", mid)
	if mp.contentType != "" {
		ct = mp.contentType
	}
	if err := setData(&ev, payload, ct); err != nil {
		return nil, err
	}
	return &ev, nil
}
