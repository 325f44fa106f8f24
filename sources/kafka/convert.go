package kafka

import (
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/sources/internal/cerecord"
)

// The conversion itself is cerecord's, shared with the Pulsar source; what
// is Kafka's is below: headers in the record's order, and a mapped event's
// fallbacks — id <topic>-<partition>-<offset>, the record key as subject,
// the record timestamp as time, and the extensions topic, partition and
// offset.

// words name a record's parts in the errors conversion returns.
var words = cerecord.Words{Record: "record", Value: "value", Header: "header"}

// IsInvalid reports whether err says a record cannot become an event.
func IsInvalid(err error) bool { return cerecord.IsInvalid(err) }

// convert turns one record into an encoded event.
func convert(r *kgo.Record, m *cerecord.Mapping, now time.Time) (pipeline.Record, error) {
	return cerecord.Convert[[]byte](record{r}, m, words, now)
}

// record is a Kafka record as cerecord reads it.
type record struct{ r *kgo.Record }

func (r record) Headers(yield func(string, []byte) bool) {
	for _, h := range r.r.Headers {
		if !yield(h.Key, h.Value) {
			return
		}
	}
}

func (r record) Value() []byte { return r.r.Value }

func (r record) DefaultID() string {
	return fmt.Sprintf("%s-%d-%d", r.r.Topic, r.r.Partition, r.r.Offset)
}

func (r record) Subject() string {
	if len(r.r.Key) > 0 && utf8.Valid(r.r.Key) {
		return string(r.r.Key)
	}
	return ""
}

func (r record) Time() time.Time { return r.r.Timestamp }

func (r record) Extend(ev *event.Event) {
	ev.SetExtension("topic", r.r.Topic)
	ev.SetExtension("partition", int32(r.r.Partition))
	ev.SetExtension("offset", strconv.FormatInt(r.r.Offset, 10))
}
