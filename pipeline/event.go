package pipeline

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/oklog/ulid/v2"
)

// MaxEventSize is the largest encoded event (structured JSON) a bus accepts,
// the same limit the cloud EventBridges apply.
const MaxEventSize = 256 * 1024

// ExtIngestTime is the extension attribute busbar adds to every event with the
// time (RFC 3339, UTC, nanoseconds) the event was accepted.
const ExtIngestTime = "busbaringesttime"

// Metadata keys busbar sets on transport messages.
const (
	// MetaEventID carries the CloudEvent id so logs and DLQ tooling need not
	// decode the payload.
	MetaEventID = "busbar-event-id"
	// MetaBus names the bus the event was published to.
	MetaBus = "busbar-bus"
	// MetaRule and MetaTarget name the (rule, target) pair of a target queue.
	MetaRule   = "busbar-rule"
	MetaTarget = "busbar-target"
	// MetaIngestTime is when the event was accepted (RFC 3339, UTC); the
	// dispatcher measures an event's age from it.
	MetaIngestTime = "busbar-ingest-time"
	// Set on dead-lettered messages: why (MetaReason: "permanent-failure",
	// "retries-exhausted", "max-event-age", "transform-failed"), the last
	// error and status, how many attempts, first and last attempt times.
	MetaReason       = "busbar-reason"
	MetaAttempts     = "busbar-attempts"
	MetaError        = "busbar-error"
	MetaStatus       = "busbar-status"
	MetaFirstAttempt = "busbar-first-attempt"
	MetaLastAttempt  = "busbar-last-attempt"
	MetaFailedAt     = "busbar-failed-at"
)

// ErrTooLarge is returned (wrapped) for events over MaxEventSize.
var ErrTooLarge = errors.New("event too large")

// ValidationError says which attribute of an event is wrong and why. Sources
// turn it into a 400 answer (or a failed PutEvents entry).
type ValidationError struct {
	Field string // CloudEvents attribute or JSON field, e.g. "specversion"
	Msg   string
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// NewID returns a new event id: a ULID, so ids sort by creation time.
func NewID() string {
	return ulid.MustNew(ulid.Now(), rand.Reader).String()
}

// Normalize prepares an event from a producer for a bus: it fills in id and
// time when the producer left them out, stamps the ingestion time, and
// validates the result against CloudEvents 1.0. now is the ingestion time.
func Normalize(e *event.Event, now time.Time) error {
	if sv := e.SpecVersion(); sv != event.CloudEventsVersionV1 {
		if sv == "" {
			return &ValidationError{Field: "specversion", Msg: "missing; busbar accepts CloudEvents 1.0 (\"specversion\":\"1.0\")"}
		}
		return &ValidationError{Field: "specversion", Msg: fmt.Sprintf("%q is not supported; use \"1.0\"", sv)}
	}
	if e.ID() == "" {
		e.SetID(NewID())
	}
	if e.Time().IsZero() {
		e.SetTime(now)
	}
	if e.Source() == "" {
		return &ValidationError{Field: "source", Msg: "required attribute is missing or empty"}
	}
	if e.Type() == "" {
		return &ValidationError{Field: "type", Msg: "required attribute is missing or empty"}
	}
	if y := e.Time().UTC().Year(); y < 0 || y > 9999 {
		// RFC 3339 has four-digit years: such a time would be stored in a
		// form no decoder reads back.
		return &ValidationError{Field: "time", Msg: fmt.Sprintf("%s is outside years 0000 to 9999 in UTC", e.Time().UTC().Format(time.RFC3339Nano))}
	}
	e.SetExtension(ExtIngestTime, now.UTC().Format(time.RFC3339Nano))
	if err := e.Validate(); err != nil {
		return validationFromSDK(err)
	}
	return nil
}

// validationFromSDK turns the SDK's multi-line validation error into one
// ValidationError naming the first offending attribute.
func validationFromSDK(err error) error {
	msg := strings.TrimSpace(err.Error())
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	field, rest, ok := strings.Cut(msg, ":")
	if ok && !strings.Contains(field, " ") {
		return &ValidationError{Field: field, Msg: strings.TrimSpace(rest)}
	}
	return &ValidationError{Msg: msg}
}

// Encode returns the event in structured-mode CloudEvents JSON, the form
// busbar keeps on buses and queues. Events over MaxEventSize fail with
// ErrTooLarge.
func Encode(e *event.Event) ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, &ValidationError{Field: "data", Msg: err.Error()}
	}
	if len(b) > MaxEventSize {
		return nil, errTooLarge(len(b))
	}
	return b, nil
}

func errTooLarge(n int) error {
	return fmt.Errorf("%w: %d bytes encoded, the limit is %d bytes (256 KiB); put large payloads in storage and send a reference", ErrTooLarge, n, MaxEventSize)
}

// Decode parses structured-mode CloudEvents JSON, as produced by Encode.
func Decode(b []byte) (*event.Event, error) {
	e := event.New()
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// Record is an encoded event ready for a bus: what sources hand over.
type Record struct {
	ID         string    // CloudEvent id
	Event      []byte    // structured-mode CloudEvents JSON
	IngestTime time.Time // when the source accepted it
}
