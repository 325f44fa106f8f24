package kafka

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/sources/internal/cerecord"
)

// fastMapped is convert for the common case of a pipe's records — a plain
// JSON object, no content-type or ce_ headers, wrapped by a mapping whose
// attributes need no normalising — without the CloudEvents SDK and
// encoding/json: it appends the event's JSON directly, with the same
// attributes, values and order as convert. ok is false for every other
// record (and for any record convert would refuse): convert decides then,
// with its own errors. TestFastMappedMatchesConvert holds the two together.
func (c *Converter) fastMapped(r *kgo.Record, now time.Time) (pipeline.Record, bool) {
	m := c.m
	if m == nil || m.ContentType != "" {
		return pipeline.Record{}, false
	}
	for _, h := range r.Headers {
		if strings.EqualFold(h.Key, cerecord.KeyContentType) || len(h.Key) >= 3 && strings.EqualFold(h.Key[:3], cerecord.KeyPrefix) {
			return pipeline.Record{}, false
		}
	}
	v := r.Value
	if len(v) == 0 || v[0] != '{' || cerecord.LooksLikeEvent(v) || !json.Valid(v) {
		return pipeline.Record{}, false
	}
	src, ok := fastValue(m.Source, v)
	if !ok || src == "" || !c.sourceSafe(src) {
		return pipeline.Record{}, false
	}
	typ, ok := fastValue(m.Type, v)
	if !ok || typ == "" {
		return pipeline.Record{}, false
	}
	id, ok := fastValue(m.ID, v)
	if !ok {
		return pipeline.Record{}, false
	}
	subject, ok := fastValue(m.Subject, v)
	if !ok {
		return pipeline.Record{}, false
	}
	if subject == "" && len(r.Key) > 0 && utf8.Valid(r.Key) {
		subject = string(r.Key)
		if !clean(subject) {
			return pipeline.Record{}, false
		}
	}
	ts, ok := fastValue(m.Time, v)
	if !ok {
		return pipeline.Record{}, false
	}
	t := now
	switch {
	case ts != "":
		var err error
		if t, err = time.Parse(time.RFC3339Nano, ts); err != nil {
			return pipeline.Record{}, false
		}
	case !r.Timestamp.IsZero():
		t = r.Timestamp
	}

	b := make([]byte, 0, len(v)+len(src)+len(typ)+len(subject)+len(r.Topic)*2+256)
	b = append(b, `{"specversion":"1.0","id":`...)
	if id == "" {
		b = append(b, '"')
		b = append(b, r.Topic...) // topic names need no escaping
		b = append(b, '-')
		b = strconv.AppendInt(b, int64(r.Partition), 10)
		b = append(b, '-')
		b = strconv.AppendInt(b, r.Offset, 10)
		b = append(b, '"')
		id = string(b[len(`{"specversion":"1.0","id":"`) : len(b)-1])
	} else {
		b = pipeline.AppendJSONString(b, id)
	}
	b = append(b, `,"source":`...)
	b = pipeline.AppendJSONString(b, src)
	b = append(b, `,"type":`...)
	b = pipeline.AppendJSONString(b, typ)
	if subject != "" {
		b = append(b, `,"subject":`...)
		b = pipeline.AppendJSONString(b, subject)
	}
	b = append(b, `,"datacontenttype":"application/json","time":"`...)
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","data":`...)
	b = append(b, v...)
	b = append(b, `,"`+pipeline.ExtIngestTime+`":"`...)
	b = now.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","offset":"`...)
	b = strconv.AppendInt(b, r.Offset, 10)
	b = append(b, `","partition":`...)
	b = strconv.AppendInt(b, int64(r.Partition), 10)
	b = append(b, `,"topic":"`...)
	b = append(b, r.Topic...)
	b = append(b, `"}`...)
	if len(b) > pipeline.MaxEventSize {
		return pipeline.Record{}, false
	}
	return pipeline.Record{ID: id, Event: b, IngestTime: now}, true
}

// fastValue is Attr.Value for fastMapped: ok is false when convert might treat
// the result differently (an error, or text the SDK would trim or
// reject); "" means the attribute is absent.
func fastValue(a cerecord.Attr, v []byte) (string, bool) {
	s, found, err := a.Value(v, true, words)
	if err != nil {
		return "", false
	}
	if !found {
		return "", true
	}
	return s, clean(s)
}

// clean reports whether s is valid UTF-8 without surrounding white space
// (which the SDK's validation trims).
func clean(s string) bool {
	return s != "" && utf8.ValidString(s) && strings.TrimSpace(s) == s
}

// sourceSafe reports whether s survives the SDK's URI-reference parsing
// unchanged (it keeps the source as a url.URL): letters, digits and a few
// punctuation marks, and with a colon only what url.Parse gives back as
// it was. The last source found safe is remembered: it is usually the
// same for every record.
func (c *Converter) sourceSafe(s string) bool {
	if last := c.lastSource.Load(); last != nil && *last == s {
		return true
	}
	colon := false
	for i := 0; i < len(s); i++ {
		b := s[i]
		colon = colon || b == ':'
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte("-._~:/@+=,", b) >= 0) {
			return false
		}
	}
	if colon {
		if u, err := url.Parse(s); err != nil || u.String() != s {
			return false
		}
	}
	c.lastSource.Store(&s)
	return true
}
