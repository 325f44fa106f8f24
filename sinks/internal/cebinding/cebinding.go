// Package cebinding writes a delivery in the CloudEvents Kafka protocol
// binding, the one way the broker sinks share (the Pulsar sink uses the
// same names as properties): structured, the event as the body; binary,
// every attribute as a ce_ header and data as the body. It also renders the
// sinks' topic templates.
//
// Where the headers go (Kafka record headers in order, Pulsar properties),
// the key, which topic names are valid and how a record is sent stay with
// each sink. It must not talk to a broker.
package cebinding

import (
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/buger/jsonparser"

	"github.com/busbar/busbar/pipeline/transport/kafka/kclient"
	"github.com/busbar/busbar/sinks"
)

// Structured is the body and content-type of d in structured mode: the
// event, or the body a transformation made of it.
func Structured(d sinks.Delivery) (body []byte, ct string) {
	if d.Body != nil {
		return d.Body, d.ContentType
	}
	return d.Event, "application/cloudevents+json; charset=UTF-8"
}

// Binary splits d in binary mode: every attribute of the event but data,
// data_base64 and datacontenttype goes to set as "ce_<name>" (strings
// unquoted, other JSON values as they are), in the event's order; body is
// the data (or the body a transformation made), ct its content-type ("":
// none). V is how the sink holds header values.
func Binary[V ~string | ~[]byte](d sinks.Delivery, set func(key string, value V)) (body []byte, ct string, err error) {
	var data []byte
	var dataType jsonparser.ValueType
	var b64 string
	err = jsonparser.ObjectEach(d.Event, func(k, v []byte, typ jsonparser.ValueType, _ int) error {
		name := string(k)
		switch name {
		case "data":
			data, dataType = v, typ
			return nil
		case "data_base64":
			b64 = string(v)
			return nil
		case "datacontenttype":
			ct = string(v)
			return nil
		}
		if typ != jsonparser.String {
			set("ce_"+name, V(v))
			return nil
		}
		s, err := jsonparser.ParseString(v)
		if err != nil {
			return err
		}
		set("ce_"+name, V(s))
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("event is not a JSON object: %w", err)
	}
	switch {
	case d.Body != nil:
		body, ct = d.Body, d.ContentType
	case b64 != "":
		if body, err = base64.StdEncoding.DecodeString(b64); err != nil {
			return nil, "", fmt.Errorf("data_base64: %w", err)
		}
	case dataType == jsonparser.String && !isJSONType(ct):
		s, err := jsonparser.ParseString(data)
		if err != nil {
			return nil, "", err
		}
		body = []byte(s)
	case data != nil:
		body = data
		if ct == "" {
			ct = "application/json"
		}
	}
	return body, ct, nil
}

func isJSONType(ct string) bool {
	media, _, _ := strings.Cut(ct, ";")
	media = strings.TrimSpace(strings.ToLower(media))
	return media == "" || media == "application/json" || strings.HasSuffix(media, "+json") || media == "text/json"
}

// Topic is a topic with {$.json.path} placeholders.
type Topic struct {
	broker string         // "kafka", "pulsar": names the topic in errors
	valid  *regexp.Regexp // a topic name the broker takes
	parts  []string       // literal text between placeholders
	keys   [][]string     // jsonparser keys of each placeholder
}

var placeholderRE = regexp.MustCompile(`\{(\$[^{}]*)\}`)

// ParseTopic parses t, a topic of broker ("kafka", "pulsar") whose rendered
// names must match valid.
func ParseTopic(broker, t string, valid *regexp.Regexp) (*Topic, error) {
	if t == "" {
		return nil, errors.New(broker + " topic is missing")
	}
	tt := &Topic{broker: broker, valid: valid}
	last := 0
	for _, m := range placeholderRE.FindAllStringSubmatchIndex(t, -1) {
		keys, err := kclient.PathKeys(t[m[2]:m[3]])
		if err != nil {
			return nil, fmt.Errorf("%s topic %q: %w", broker, t, err)
		}
		tt.parts = append(tt.parts, t[last:m[0]])
		tt.keys = append(tt.keys, keys)
		last = m[1]
	}
	tt.parts = append(tt.parts, t[last:])
	return tt, nil
}

// Render is the topic of the event ev.
func (tt *Topic) Render(ev []byte) (string, error) {
	if len(tt.keys) == 0 {
		return tt.parts[0], nil
	}
	var b strings.Builder
	for i, keys := range tt.keys {
		b.WriteString(tt.parts[i])
		v, typ, _, err := jsonparser.Get(ev, keys...)
		if err != nil || typ == jsonparser.Null {
			return "", fmt.Errorf("%s topic: the event has no value at placeholder %d", tt.broker, i+1)
		}
		if typ == jsonparser.String {
			s, err := jsonparser.ParseString(v)
			if err != nil {
				return "", err
			}
			v = []byte(s)
		}
		b.Write(v)
	}
	b.WriteString(tt.parts[len(tt.parts)-1])
	topic := b.String()
	if !tt.valid.MatchString(topic) {
		return "", fmt.Errorf("%s topic %q from the event is not a valid topic name", tt.broker, topic)
	}
	return topic, nil
}
