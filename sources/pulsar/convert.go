package pulsar

import (
	"time"
	"unicode/utf8"

	pc "github.com/apache/pulsar-client-go/pulsar"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/sources/internal/cerecord"
)

// The conversion itself is cerecord's, shared with the Kafka source, with
// the Kafka binding's names (there is no CloudEvents Pulsar binding in the
// specification); what is Pulsar's is below: properties for headers, and a
// mapped event's fallbacks — id <topic>-<message id>, the message key as
// subject, the event time or else the publish time as time, and the
// extensions topic and messageid.

// words name a message's parts in the errors conversion returns.
var words = cerecord.Words{Record: "message", Value: "payload", Header: "property"}

// IsInvalid reports whether err says a message cannot become an event.
func IsInvalid(err error) bool { return cerecord.IsInvalid(err) }

// convert turns one message into an encoded event.
func convert(m pc.Message, mp *cerecord.Mapping, now time.Time) (pipeline.Record, error) {
	return cerecord.Convert[string](message{m}, mp, words, now)
}

// message is a Pulsar message as cerecord reads it.
type message struct{ m pc.Message }

func (m message) Headers(yield func(string, string) bool) {
	for k, v := range m.m.Properties() {
		if !yield(k, v) {
			return
		}
	}
}

func (m message) Value() []byte { return m.m.Payload() }

func (m message) DefaultID() string { return m.m.Topic() + "-" + messageID(m.m.ID()) }

func (m message) Subject() string {
	if k := m.m.Key(); k != "" && utf8.ValidString(k) {
		return k
	}
	return ""
}

func (m message) Time() time.Time {
	if t := m.m.EventTime(); !t.IsZero() {
		return t
	}
	return m.m.PublishTime()
}

func (m message) Extend(ev *event.Event) {
	ev.SetExtension("topic", m.m.Topic())
	ev.SetExtension("messageid", messageID(m.m.ID()))
}
