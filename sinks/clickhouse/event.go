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
// The row is a pointer so a batch holds a small item per event: the
// batcher appends items under its lock, and 200-byte items made that
// append (and its regrowth) the sink's hottest copy.
func parseEvent(b []byte, now time.Time) (*eventRow, error) {
	r := new(eventRow)
	// One allocation for the event: attribute values without escapes are
	// substrings of its copy.
	if err := r.parse(b, string(b), now); err != nil {
		return nil, err
	}
	return r, nil
}

// parse reads the CloudEvent b into r, which must be zero. src is a copy
// of b (the same text, which r's strings may be substrings of: b itself
// may be reused once the caller returns). A zero now means time.Now(),
// read only when the event has no ingest time.
func (r *eventRow) parse(b []byte, src string, now time.Time) error {
	var ferr error
	sub := func(val []byte) string {
		if len(val) == 0 {
			return ""
		}
		// Values jsonparser hands out are sub-slices of b; b escapes (to
		// jsonparser), so it is on the heap and does not move.
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
			t, err := parseTime(s)
			if err != nil {
				ferr = fmt.Errorf("attribute time: %q is not an RFC 3339 time", s)
				return ferr
			}
			r.time, r.hasTime = t, true
		case extIngestTime:
			if t, err := parseTime(s); err == nil {
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
		return ferr
	}
	if err != nil {
		return fmt.Errorf("the event is not a JSON object: %v", err)
	}
	if r.id == "" {
		return errors.New("the event has no id")
	}
	if !r.hasIngest {
		if now.IsZero() {
			now = time.Now()
		}
		r.ingest = now
	}
	if !r.hasTime {
		r.time = r.ingest
	}
	if r.time.Before(minTime) || r.time.After(maxTime) {
		return fmt.Errorf("attribute time: %s is outside what ClickHouse DateTime64 holds (1900 to 2299)", r.time.Format(time.RFC3339))
	}
	switch {
	case hasData:
		r.data = dataJSON(data, dataType, sub)
	case b64 != "":
		r.data = `{"data_base64":"` + b64 + `"}` // base64 needs no escaping
	default:
		r.data = "{}"
	}
	return nil
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

// parseTime is time.Parse(time.RFC3339Nano, s) for the usual shape
// (2006-01-02T15:04:05[.fraction](Z|±07:00)), computed without time.Date:
// that call is the deepest in Deliver and the one that made each waiting
// caller's shrunk stack grow again. Anything else goes to time.Parse. The
// result is the same instant, in UTC.
func parseTime(s string) (time.Time, error) {
	if t, ok := fastRFC3339(s); ok {
		return t, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

func fastRFC3339(s string) (time.Time, bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 ||
		day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	rest := s[19:]
	nsec := 0
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 1 || n > 10 {
			return time.Time{}, false
		}
		f, _ := digits(rest[1:n])
		for range 10 - n {
			f *= 10
		}
		nsec, rest = f, rest[n:]
	}
	off := 0
	switch {
	case rest == "Z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digits(rest[1:3])
		om, ok2 := digits(rest[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		off = (oh*60 + om) * 60
		if rest[0] == '-' {
			off = -off
		}
	default:
		return time.Time{}, false
	}
	days := daysFromCivil(year, month, day)
	unix := int64(days)*86400 + int64(hour*3600+minute*60+sec) - int64(off)
	return time.Unix(unix, int64(nsec)).UTC(), true
}

// digits is the value of a string of ASCII digits.
func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is the number of days from 1970-01-01 to a proleptic
// Gregorian date (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}
