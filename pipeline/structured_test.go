package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 22, 12, 0, 0, 123456789, time.UTC)

// orderEvent is a ~1.1 KB retail order, the event of the issue-2 load test
// (bench/load/events.go).
const orderEvent = `{"specversion":"1.0","id":"ld-1042","source":"erp.sap.plant-0042","type":"order.paid","subject":"SO-4500001042","time":"2026-11-22T11:40:00.123456789Z","datacontenttype":"application/json","data":{"sentAt":1795347600123456789,"orderId":"SO-4500001042","customer":{"id":"C-123456","name":"Customer 3 Trading Co., Ltd.","email":"buyer3@example.com","tier":"platinum"},"channel":"b2b-portal","salesOrg":"SO03","currency":"CNY","lines":[{"line":1,"sku":"SKU-10111","name":"Item 3-0 stainless steel fitting","qty":10,"unitPrice":{"amount":2392,"currency":"CNY"},"warehouse":"WH-04"},{"line":2,"sku":"SKU-10112","name":"Item 3-1 stainless steel fitting","qty":1,"unitPrice":{"amount":3369,"currency":"CNY"},"warehouse":"WH-05"},{"line":3,"sku":"SKU-10113","name":"Item 3-2 stainless steel fitting","qty":4,"unitPrice":{"amount":4346,"currency":"CNY"},"warehouse":"WH-06"},{"line":4,"sku":"SKU-10114","name":"Item 3-3 stainless steel fitting","qty":7,"unitPrice":{"amount":5323,"currency":"CNY"},"warehouse":"WH-07"}],"shipping":{"method":"standard","address":{"city":"Xi'an","district":"District 4","street":"19 Industrial Road","postcode":"200303"}},"payment":{"method":"invoice","status":"refunded","amount":91001},"tags":["priority-0","contract"]}}`

// normalizeCases are structured-mode events, valid and not, odd and plain.
// fast says whether the one-pass path must handle the event itself (the
// rest may go to the SDK path).
var normalizeCases = []struct {
	name string
	raw  string
	fast bool
}{
	{"order", orderEvent, true},
	{"minimal", `{"specversion":"1.0","id":"1","source":"s","type":"t"}`, true},
	{"missing id and time", `{"specversion":"1.0","source":"erp/orders","type":"order.created","data":{"a":1}}`, true},
	{"empty id", `{"specversion":"1.0","id":"","source":"s","type":"t"}`, true},
	{"blank id", `{"specversion":"1.0","id":"  ","source":"s","type":"t"}`, false},
	{"attributes after data", `{"data":{"x":[1,2,{"y":null}]},"type":"t","source":"s","id":"9","specversion":"1.0"}`, true},
	{"whitespace everywhere", " \n\t{ \"specversion\" : \"1.0\" ,\r\n \"id\":\"a\", \"source\" :\"s\",\"type\":\"t\" , \"data\" : { \"a\" : [ 1 , 2 ] , \"b\" : \" x y \" } , \"ext\" : true } \n", true},
	{"extensions", `{"specversion":"1.0","id":"1","source":"s","type":"t","zeta":"z","alpha":"a","num":42,"neg":-7,"flag":false,"on":true,"mid":"m"}`, true},
	{"uppercase extension", `{"specversion":"1.0","id":"1","source":"s","type":"t","TraceParent":"00-abc","Zz":1}`, true},
	{"extension names differ in case", `{"specversion":"1.0","id":"1","source":"s","type":"t","abc":"1","ABC":"2"}`, false},
	{"null extension", `{"specversion":"1.0","id":"1","source":"s","type":"t","gone":null,"kept":"k"}`, true},
	{"extension big number", `{"specversion":"1.0","id":"1","source":"s","type":"t","big":12345678901234567890}`, false},
	{"extension int32 max", `{"specversion":"1.0","id":"1","source":"s","type":"t","n":2147483647}`, false},
	{"extension int32 over", `{"specversion":"1.0","id":"1","source":"s","type":"t","n":2147483648}`, false},
	{"extension fraction", `{"specversion":"1.0","id":"1","source":"s","type":"t","n":1.75}`, false},
	{"extension exponent", `{"specversion":"1.0","id":"1","source":"s","type":"t","n":1e3}`, false},
	{"extension minus zero", `{"specversion":"1.0","id":"1","source":"s","type":"t","n":-0}`, false},
	{"extension object", `{"specversion":"1.0","id":"1","source":"s","type":"t","ext":{"a":1}}`, false},
	{"extension array", `{"specversion":"1.0","id":"1","source":"s","type":"t","ext":[1]}`, false},
	{"extension bad name", `{"specversion":"1.0","id":"1","source":"s","type":"t","my-ext":"x"}`, false},
	{"extension underscore", `{"specversion":"1.0","id":"1","source":"s","type":"t","my_ext":"x"}`, false},
	{"extension empty name", `{"":"x","specversion":"1.0","id":"1","source":"s","type":"t"}`, false},
	{"extension unicode name", `{"specversion":"1.0","id":"1","source":"s","type":"t","é":"x"}`, false},
	{"extension named like an attribute", `{"specversion":"1.0","id":"1","source":"s","type":"t","ID":"x"}`, false},
	{"extension DATA", `{"specversion":"1.0","id":"1","source":"s","type":"t","DATA":"x"}`, false},
	{"ingest time from producer", `{"specversion":"1.0","id":"1","source":"s","type":"t","busbaringesttime":"2020-01-01T00:00:00Z"}`, false},
	{"schemaurl", `{"specversion":"1.0","id":"1","source":"s","type":"t","schemaurl":"http://x"}`, false},
	{"unicode escapes in data", `{"specversion":"1.0","id":"1","source":"s","type":"t","data":{"k\u00e9y":"caf\u00e9 \ud83d\ude00 \u0000"}}`, true},
	{"unicode escape in attribute", `{"specversion":"1.0","id":"\u0031","source":"s","type":"t"}`, false},
	{"unicode escape in key", `{"specversion":"1.0","\u0069d":"1","source":"s","type":"t"}`, false},
	{"non-ASCII attributes", `{"specversion":"1.0","id":"订单-1","source":"erp/上海","type":"t","subject":"客户 — 张三"}`, false},
	{"non-ASCII subject", `{"specversion":"1.0","id":"订单-1","source":"erp","type":"t","subject":"客户张三","ext":"值"}`, true},
	{"line separator in subject", "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\",\"subject\":\"a\u2028b\"}", false},
	{"line separator in data", "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\",\"data\":\"a\u2028b\u2029c\u2014d\"}", true},
	{"html in data", `{"specversion":"1.0","id":"1","source":"s","type":"t","data":{"html":"<b>Tom & Jerry</b>"}}`, true},
	{"html in data with whitespace", `{"specversion":"1.0","id":"1","source":"s","type":"t","data": { "html" : "<b>" } }`, true},
	{"html in attribute", `{"specversion":"1.0","id":"1","source":"s","type":"a<b","subject":"x&y"}`, false},
	{"invalid UTF-8 in data", "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\",\"data\":\"\xff\xfe\"}", true},
	{"invalid UTF-8 in attribute", "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\",\"subject\":\"\xff\"}", false},
	{"big number in data", `{"specversion":"1.0","id":"1","source":"s","type":"t","data":{"n":12345678901234567890,"f":1.5e300,"z":-0.0}}`, true},
	{"nested data", `{"specversion":"1.0","id":"1","source":"s","type":"t","data":{"a":{"b":{"c":{"d":[[[[{"e":[]}]]]]}}}}}`, true},
	{"data string", `{"specversion":"1.0","id":"1","source":"s","type":"t","data":"hello"}`, true},
	{"data number", `{"specversion":"1.0","id":"1","source":"s","type":"t","data":12345678901234567890}`, true},
	{"data null", `{"specversion":"1.0","id":"1","source":"s","type":"t","data":null}`, true},
	{"data array", `{"specversion":"1.0","id":"1","source":"s","type":"t","data":[1,"two",null,true]}`, true},
	{"data bool", `{"specversion":"1.0","id":"1","source":"s","type":"t","data":false}`, true},
	{"data empty object", `{"specversion":"1.0","id":"1","source":"s","type":"t","data":{}}`, true},
	{"data text/json", `{"specversion":"1.0","id":"1","source":"s","type":"t","datacontenttype":"text/json","data":{"a":1}}`, true},
	{"data json with charset", `{"specversion":"1.0","id":"1","source":"s","type":"t","datacontenttype":"application/json; charset=utf-8","data":{"a":1}}`, true},
	{"data json bad parameter", `{"specversion":"1.0","id":"1","source":"s","type":"t","datacontenttype":"application/json; charset","data":{"a":1}}`, false},
	{"data json upper case", `{"specversion":"1.0","id":"1","source":"s","type":"t","datacontenttype":"Application/JSON","data":"x"}`, false},
	{"data text/plain string", `{"specversion":"1.0","id":"1","source":"s","type":"t","datacontenttype":"text/plain","data":"hello <world>"}`, false},
	{"data text/plain object", `{"specversion":"1.0","id":"1","source":"s","type":"t","datacontenttype":"text/plain","data":{"a":1}}`, false},
	{"data xml", `{"specversion":"1.0","id":"1","source":"s","type":"t","datacontenttype":"application/xml","data":"<a/>"}`, false},
	{"bad datacontenttype", `{"specversion":"1.0","id":"1","source":"s","type":"t","datacontenttype":"not a type"}`, false},
	{"empty datacontenttype", `{"specversion":"1.0","id":"1","source":"s","type":"t","datacontenttype":""}`, false},
	{"empty datacontenttype first", `{"datacontenttype":"","specversion":"1.0","id":"1","source":"s","type":"t"}`, false},
	{"data_base64", `{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"aGVsbG8="}`, false},
	{"data_base64 bad", `{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"!!"}`, false},
	{"data_base64 number", `{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":5}`, false},
	{"time with offset", `{"specversion":"1.0","id":"1","source":"s","type":"t","time":"2026-11-22T18:00:00.5+08:00"}`, true},
	{"time zero", `{"specversion":"1.0","id":"1","source":"s","type":"t","time":"0001-01-01T00:00:00Z"}`, true},
	{"time empty", `{"specversion":"1.0","id":"1","source":"s","type":"t","time":""}`, true},
	{"time before year 0 in UTC", `{"specversion":"1.0","id":"1","source":"s","type":"t","time":"0000-01-01T00:00:00+01:00"}`, false},
	{"time after year 9999 in UTC", `{"specversion":"1.0","id":"1","source":"s","type":"t","time":"9999-12-31T23:30:00-01:00"}`, false},
	{"time in year 0", `{"specversion":"1.0","id":"1","source":"s","type":"t","time":"0000-01-01T00:00:00Z"}`, true},
	{"bad time", `{"specversion":"1.0","id":"1","source":"s","type":"t","time":"yesterday"}`, false},
	{"time without zone", `{"specversion":"1.0","id":"1","source":"s","type":"t","time":"2026-11-22T10:00:00"}`, false},
	{"time number", `{"specversion":"1.0","id":"1","source":"s","type":"t","time":1700000000}`, false},
	{"source URL", `{"specversion":"1.0","id":"1","source":"https://erp.example.com/orders?x=1#f","type":"t"}`, true},
	{"source with space", `{"specversion":"1.0","id":"1","source":"erp orders","type":"t"}`, false},
	{"source upper scheme", `{"specversion":"1.0","id":"1","source":"HTTP://x/y","type":"t"}`, false},
	{"source bad URI", `{"specversion":"1.0","id":"1","source":"http://[::1","type":"t"}`, false},
	{"source percent", `{"specversion":"1.0","id":"1","source":"a%zz","type":"t"}`, false},
	{"blank source", `{"specversion":"1.0","id":"1","source":" ","type":"t"}`, false},
	{"empty source", `{"specversion":"1.0","id":"1","source":"","type":"t"}`, false},
	{"missing source", `{"specversion":"1.0","type":"t"}`, false},
	{"missing type", `{"specversion":"1.0","source":"s"}`, false},
	{"blank type", `{"specversion":"1.0","source":"s","type":"\t"}`, false},
	{"missing specversion", `{"source":"s","type":"t"}`, false},
	{"specversion 0.3", `{"specversion":"0.3","source":"s","type":"t"}`, false},
	{"specversion 2.0", `{"specversion":"2.0","source":"s","type":"t"}`, false},
	{"specversion number", `{"specversion":1.0,"source":"s","type":"t"}`, false},
	{"id number", `{"specversion":"1.0","id":5,"source":"s","type":"t"}`, false},
	{"id null", `{"specversion":"1.0","id":null,"source":"s","type":"t"}`, false},
	{"source object", `{"specversion":"1.0","source":{"a":1},"type":"t"}`, false},
	{"type array", `{"specversion":"1.0","source":"s","type":["t"]}`, false},
	{"subject", `{"specversion":"1.0","id":"1","source":"s","type":"t","subject":"orders/42"}`, true},
	{"empty subject", `{"specversion":"1.0","id":"1","source":"s","type":"t","subject":""}`, true},
	{"blank subject", `{"specversion":"1.0","id":"1","source":"s","type":"t","subject":" "}`, false},
	{"subject bool", `{"specversion":"1.0","id":"1","source":"s","type":"t","subject":true}`, false},
	{"dataschema", `{"specversion":"1.0","id":"1","source":"s","type":"t","dataschema":"https://schemas.example.com/order.json"}`, true},
	{"relative dataschema", `{"specversion":"1.0","id":"1","source":"s","type":"t","dataschema":"order.json"}`, false},
	{"bad dataschema", `{"specversion":"1.0","id":"1","source":"s","type":"t","dataschema":"http://[x"}`, false},
	{"duplicate id", `{"specversion":"1.0","id":"1","id":"2","source":"s","type":"t"}`, false},
	{"duplicate id, first an object", `{"specversion":"1.0","id":{},"id":"2","source":"s","type":"t"}`, false},
	{"duplicate specversion", `{"specversion":"1.0","specversion":"1.0","source":"s","type":"t"}`, false},
	{"duplicate data", `{"specversion":"1.0","source":"s","type":"t","data":1,"data":2}`, false},
	{"duplicate extension", `{"specversion":"1.0","source":"s","type":"t","e":1,"e":"x"}`, false},
	{"duplicate datacontenttype", `{"specversion":"1.0","source":"s","type":"t","datacontenttype":"text/json","datacontenttype":"application/json"}`, false},
	{"empty object", `{}`, false},
	{"null", `null`, false},
	{"array", `[1]`, false},
	{"string", `"x"`, false},
	{"number", `12`, false},
	{"too many extensions", `{"specversion":"1.0","id":"1","source":"s","type":"t","e1":1,"e2":1,"e3":1,"e4":1,"e5":1,"e6":1,"e7":1,"e8":1,"e9":1,"e10":1,"e11":1,"e12":1,"e13":1,"e14":1,"e15":1,"e16":1,"e17":1}`, false},
	{"malformed", `{"specversion":"1.0",`, false},
	{"trailing garbage", `{"specversion":"1.0","source":"s","type":"t"} x`, false},
	{"two values", `{} {}`, false},
	{"empty", ``, false},
	{"blank", " \n", false},
	{"bad escape", `{"specversion":"1.0","source":"s","type":"t","data":"\x"}`, false},
	{"bad number", `{"specversion":"1.0","source":"s","type":"t","data":01}`, false},
	{"control character", "{\"specversion\":\"1.0\",\"source\":\"s\",\"type\":\"t\",\"data\":\"a\tb\"}", false},
	{"too large", `{"specversion":"1.0","id":"1","source":"s","type":"t","data":"` + strings.Repeat("x", MaxEventSize) + `"}`, true},
	{"too large after escaping", `{"specversion":"1.0","id":"1","source":"s","type":"t","data":"` + strings.Repeat("<", MaxEventSize/5) + `"}`, true},
	{"just fits", `{"specversion":"1.0","id":"1","source":"s","type":"t","data":"` + strings.Repeat("y", MaxEventSize-200) + `"}`, true},
	{"deep nesting", `{"specversion":"1.0","id":"1","source":"s","type":"t","data":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`, true},
	{"too deep", `{"specversion":"1.0","id":"1","source":"s","type":"t","data":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`, false},
}

// fastPath runs only the one-pass path; ok false means it would fall back.
func fastPath(raw []byte, now time.Time) (Record, bool) {
	s := scanner{b: raw}
	i := s.ws(0)
	if i >= len(raw) || raw[i] != '{' {
		return Record{}, false
	}
	var p eventParser
	if end := p.parse(&s, i, 1); end < 0 || s.ws(end) != len(raw) || p.slow {
		return Record{}, false
	}
	return p.encode(raw, now)
}

// oldPath is what the HTTP source did before NormalizeJSON: checkJSON
// (json.Valid), DecodeStructured, Normalize, Encode.
func oldPath(raw []byte, now time.Time) (Record, error) {
	if !json.Valid(raw) {
		return Record{}, ErrMalformedJSON
	}
	return NormalizeSDK(raw, now)
}

// fieldOf names the attribute an error blames ("" if none).
func fieldOf(err error) string {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return ve.Field
	}
	return ""
}

// compareOldNew checks that NormalizeJSON agrees with the old path on raw.
func compareOldNew(t *testing.T, raw []byte) {
	t.Helper()
	got, gerr := NormalizeJSON(raw, testNow)
	want, werr := oldPath(raw, testNow)
	switch {
	case (gerr == nil) != (werr == nil):
		t.Fatalf("accept differs: new err %v, old err %v\ninput %q", gerr, werr, raw)
	case gerr != nil:
		if errors.Is(werr, ErrMalformedJSON) != errors.Is(gerr, ErrMalformedJSON) {
			t.Fatalf("malformed differs: new %v, old %v\ninput %q", gerr, werr, raw)
		}
		if errors.Is(werr, ErrTooLarge) != errors.Is(gerr, ErrTooLarge) {
			t.Fatalf("too large differs: new %v, old %v\ninput %q", gerr, werr, raw)
		}
		// The SDK reports one of several faults at random (map order):
		// the new path's field must be one the old path can name.
		fields := map[string]bool{fieldOf(werr): true}
		for k := 0; k < 50 && !fields[fieldOf(gerr)]; k++ {
			_, werr = oldPath(raw, testNow)
			fields[fieldOf(werr)] = true
		}
		if !fields[fieldOf(gerr)] {
			t.Fatalf("field differs: new %q (%v), old %v\ninput %q", fieldOf(gerr), gerr, fields, raw)
		}
	default:
		if !got.IngestTime.Equal(want.IngestTime) {
			t.Fatalf("ingest time differs")
		}
		g := got.Event
		if got.ID != want.ID { // both generated
			if len(got.ID) != 26 || len(want.ID) != 26 {
				t.Fatalf("ids differ: new %q, old %q\ninput %q", got.ID, want.ID, raw)
			}
			g = bytes.Replace(g, []byte(got.ID), []byte(want.ID), 1)
		}
		if !bytes.Equal(g, want.Event) {
			t.Fatalf("stored events differ\nnew %s\nold %s\ninput %q", g, want.Event, raw)
		}
		ge, err := Decode(g)
		if err != nil {
			t.Fatalf("new event does not decode: %v\n%s", err, g)
		}
		we, _ := Decode(want.Event)
		if ge.String() != we.String() || !bytes.Equal(ge.Data(), we.Data()) {
			t.Fatalf("decoded events differ\nnew %s\nold %s", ge, we)
		}
	}
}

func TestNormalizeJSONMatchesSDKPath(t *testing.T) {
	for _, c := range normalizeCases {
		t.Run(c.name, func(t *testing.T) {
			compareOldNew(t, []byte(c.raw))
			if _, ok := fastPath([]byte(c.raw), testNow); ok != c.fast {
				t.Errorf("fast path taken: %v, want %v", ok, c.fast)
			}
		})
	}
}

func TestNormalizeJSONRecord(t *testing.T) {
	rec, err := NormalizeJSON([]byte(orderEvent), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if rec.ID != "ld-1042" || !rec.IngestTime.Equal(testNow) {
		t.Errorf("record: %q %v", rec.ID, rec.IngestTime)
	}
	e, err := Decode(rec.Event)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := e.Extensions()[ExtIngestTime].(string); got != "2026-11-22T12:00:00.123456789Z" {
		t.Errorf("busbaringesttime = %q", got)
	}
	rec, err = NormalizeJSON([]byte(`{"specversion":"1.0","source":"s","type":"t"}`), testNow)
	if err != nil || len(rec.ID) != 26 || !bytes.Contains(rec.Event, []byte(`"time":"2026-11-22T12:00:00.123456789Z"`)) {
		t.Errorf("defaults: %v %q %s", err, rec.ID, rec.Event)
	}
}

func TestBatchJSON(t *testing.T) {
	elems := []string{orderEvent, `{"specversion":"1.0","source":"s"}`, `[1]`, `{"specversion":"1.0","id":"x","source":"s","type":"t","data":[1, 2]}`}
	body := " [ " + strings.Join(elems, " ,\n") + " ] "
	w := NewBatchJSON([]byte(body))
	if !w.IsArray() {
		t.Fatal("not an array")
	}
	n := 0
	for {
		rec, err, ok := w.Next(testNow)
		if !ok {
			break
		}
		want, werr := NormalizeSDK([]byte(elems[n]), testNow)
		if (err == nil) != (werr == nil) || fieldOf(err) != fieldOf(werr) {
			t.Errorf("element %d: err %v, want %v", n, err, werr)
		}
		if err == nil && !bytes.Equal(rec.Event, want.Event) {
			t.Errorf("element %d: %s, want %s", n, rec.Event, want.Event)
		}
		n++
	}
	if w.Err() != nil || n != len(elems) {
		t.Fatalf("walked %d elements, err %v", n, w.Err())
	}

	for _, c := range []struct {
		body      string
		array     bool
		n         int
		malformed bool
	}{
		{`[]`, true, 0, false},
		{` [ ] `, true, 0, false},
		{`[] x`, true, 0, true},
		{`[`, true, 0, true},
		{`[{}`, true, 1, true},
		{`[{},]`, true, 1, true},
		{`[{} {}]`, true, 1, true},
		{`[1,2,3]`, true, 3, false},
		{`[1,2,3]]`, true, 3, true},
		{`{"a":1}`, false, 0, false},
		{`null`, false, 0, false},
		{``, false, 0, false},
	} {
		w := NewBatchJSON([]byte(c.body))
		n := 0
		for ; n < 2; n++ { // the first two normalised, the rest skipped
			if _, _, ok := w.Next(testNow); !ok {
				break
			}
		}
		if n == 2 {
			for w.Skip() {
				n++
			}
		}
		if w.IsArray() != c.array || n != c.n || (w.Err() != nil) != c.malformed || (c.array && c.malformed == json.Valid([]byte(c.body))) {
			t.Errorf("%q: array %v, %d elements, err %v", c.body, w.IsArray(), n, w.Err())
		}
	}
}

func FuzzNormalizeJSON(f *testing.F) {
	for _, c := range normalizeCases {
		if len(c.raw) < 4096 {
			f.Add([]byte(c.raw))
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		compareOldNew(t, raw)
		// The same event as the element of a batch.
		w := NewBatchJSON(append(append([]byte("[\n"), raw...), " ]"...))
		rec, err, ok := w.Next(testNow)
		want, werr := oldPath(raw, testNow)
		if errors.Is(werr, ErrMalformedJSON) {
			return // the element may end early, or the array swallow it
		}
		if !ok || w.Err() != nil {
			t.Fatalf("batch element: ok %v, err %v\ninput %q", ok, w.Err(), raw)
		}
		if (err == nil) != (werr == nil) {
			t.Fatalf("batch element: err %v, want %v\ninput %q", err, werr, raw)
		}
		if err == nil && rec.ID == want.ID && !bytes.Equal(rec.Event, want.Event) {
			t.Fatalf("batch element stored differs\nnew %s\nold %s", rec.Event, want.Event)
		}
	})
}

// TestWriteFuzzCorpus writes the table as the fuzz seed corpus under
// testdata when BUSBAR_WRITE_FUZZ_CORPUS is set.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("BUSBAR_WRITE_FUZZ_CORPUS") == "" {
		t.Skip("set BUSBAR_WRITE_FUZZ_CORPUS=1 to rewrite testdata/fuzz/FuzzNormalizeJSON")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzNormalizeJSON")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, c := range normalizeCases {
		if len(c.raw) >= 4096 {
			continue
		}
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", c.raw)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%03d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// orderBatch is a batch-mode body of ten order events.
var orderBatch = func() []byte {
	var b []byte
	b = append(b, '[')
	for i := range 10 {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, strings.Replace(orderEvent, `"ld-1042"`, fmt.Sprintf(`"ld-%d"`, 1042+i), 1)...)
	}
	return append(b, ']')
}()

// BenchmarkNormalizeJSON compares the one-pass path with what the HTTP
// source did before (json.Valid, DecodeStructured, Normalize, Encode; in
// batch mode json.Unmarshal into []json.RawMessage first), per event.
func BenchmarkNormalizeJSON(b *testing.B) {
	raw := []byte(orderEvent)
	b.Run("single/sdk", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := oldPath(raw, testNow); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("single/onepass", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := NormalizeJSON(raw, testNow); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("batch10/sdk", func(b *testing.B) {
		b.SetBytes(int64(len(orderBatch)))
		b.ReportAllocs()
		for b.Loop() {
			if !json.Valid(orderBatch) {
				b.Fatal("invalid")
			}
			var raws []json.RawMessage
			if err := json.Unmarshal(orderBatch, &raws); err != nil {
				b.Fatal(err)
			}
			for _, r := range raws {
				if _, err := NormalizeSDK(r, testNow); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10/1000, "µs/event")
	})
	b.Run("batch10/onepass", func(b *testing.B) {
		b.SetBytes(int64(len(orderBatch)))
		b.ReportAllocs()
		for b.Loop() {
			w := NewBatchJSON(orderBatch)
			for {
				_, err, ok := w.Next(testNow)
				if !ok {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			if w.Err() != nil {
				b.Fatal(w.Err())
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10/1000, "µs/event")
	})
}
