package clickhouse

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unsafe"

	"github.com/buger/jsonparser"
)

// eventRow is one event as a row of the default events table.
type eventRow struct {
	id, source, typ, subject   string
	contentType, schema, bus   string
	time, ingest               time.Time
	ext                        map[string]string
	data                       string // JSON text: an object
	specversion                string
	hasIngest, hasTime, hasBus bool
}

// extIngestTime is the extension busbar sources stamp on every event
// (pipeline.ExtIngestTime); it becomes the ingest_time column.
const extIngestTime = "busbaringesttime"

// extBus, when an event carries it, fills the bus column.
const extBus = "busbarbus"

// DateTime64 holds 1900-01-01 to 2299-12-31.
var (
	minTime = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(2299, 12, 31, 23, 59, 59, 0, time.UTC)
)

// parseEvent reads a structured-mode CloudEvent into a row. now fills
// ingest_time (and time) when the event has none. An error means the event
// can never be stored: the caller marks it permanent.
func parseEvent(b []byte, now time.Time) (eventRow, error) {
	var r eventRow
	var ferr error
	// One allocation for the event: attribute values without escapes are
	// substrings of it (values jsonparser hands out are sub-slices of b).
	src := string(b)
	sub := func(val []byte) string {
		if len(val) == 0 {
			return ""
		}
		// b escapes (to jsonparser), so it is on the heap and does not move.
		off := int(uintptr(unsafe.Pointer(unsafe.SliceData(val))) - uintptr(unsafe.Pointer(unsafe.SliceData(b))))
		if off < 0 || off > len(b)-len(val) {
			return string(val) // not inside b
		}
		return src[off : off+len(val)]
	}
	var data []byte
	var dataType jsonparser.ValueType
	var b64 string
	hasData := false
	err := jsonparser.ObjectEach(b, func(key, val []byte, vt jsonparser.ValueType, _ int) error {
		if string(key) == "data" {
			data, dataType, hasData = val, vt, vt != jsonparser.Null
			return nil
		}
		s, err := attrString(key, val, vt, sub)
		if err != nil {
			ferr = err
			return err
		}
		switch string(key) {
		case "id":
			r.id = s
		case "source":
			r.source = s
		case "type":
			r.typ = s
		case "subject":
			r.subject = s
		case "specversion":
			r.specversion = s
		case "datacontenttype":
			r.contentType = s
		case "dataschema":
			r.schema = s
		case "data_base64":
			b64 = s
		case "time":
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				ferr = fmt.Errorf("attribute time: %q is not an RFC 3339 time", s)
				return ferr
			}
			r.time, r.hasTime = t, true
		case extIngestTime:
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				r.ingest, r.hasIngest = t, true
			}
		case extBus:
			r.bus, r.hasBus = s, true
		default:
			if vt == jsonparser.Null {
				return nil
			}
			if r.ext == nil {
				r.ext = make(map[string]string, 4)
			}
			r.ext[sub(key)] = s
		}
		return nil
	})
	if ferr != nil {
		return r, ferr
	}
	if err != nil {
		return r, fmt.Errorf("the event is not a JSON object: %v", err)
	}
	if r.id == "" {
		return r, errors.New("the event has no id")
	}
	if !r.hasIngest {
		r.ingest = now
	}
	if !r.hasTime {
		r.time = r.ingest
	}
	if r.time.Before(minTime) || r.time.After(maxTime) {
		return r, fmt.Errorf("attribute time: %s is outside what ClickHouse DateTime64 holds (1900 to 2299)", r.time.Format(time.RFC3339))
	}
	switch {
	case hasData:
		r.data = dataJSON(data, dataType, sub)
	case b64 != "":
		r.data = `{"data_base64":"` + b64 + `"}` // base64 needs no escaping
	default:
		r.data = "{}"
	}
	return r, nil
}

// attrString is the text of an attribute value: a string unescaped, any
// other JSON value as written.
func attrString(k, val []byte, vt jsonparser.ValueType, sub func([]byte) string) (string, error) {
	if vt != jsonparser.String || !hasEscape(val) {
		return sub(val), nil
	}
	s, err := jsonparser.ParseString(val)
	if err != nil {
		return "", fmt.Errorf("attribute %s: %v", k, err)
	}
	return s, nil
}

func hasEscape(b []byte) bool {
	for _, c := range b {
		if c == '\\' {
			return true
		}
	}
	return false
}

// dataJSON is the data attribute as a JSON object's text: an object as it
// is, anything else wrapped as {"value": ...} — the JSON column stores
// objects only.
func dataJSON(val []byte, vt jsonparser.ValueType, sub func([]byte) string) string {
	switch vt {
	case jsonparser.Object:
		return sub(val)
	case jsonparser.String:
		return `{"value":"` + string(val) + `"}` // val is still escaped
	}
	var sb strings.Builder
	sb.Grow(len(val) + 10)
	sb.WriteString(`{"value":`)
	sb.Write(val)
	sb.WriteByte('}')
	return sb.String()
}
