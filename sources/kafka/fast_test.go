package kafka

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/busbar/busbar/config"
)

// fastMappings are mappings the equivalence tests run records through.
var fastMappings = []*config.SourceMapping{
	{Source: "web", Type: "$.kind"},
	{Source: "$.origin", Type: "$.kind", Subject: "$.user", Time: "$.at"},
	{Source: "https://shop.example.com/orders", Type: "order.created", ID: "$.id", Subject: "$.n"},
	{Source: "erp sap", Type: "$.kind"},                        // the SDK escapes the space: convert only
	{Source: "web", Type: "$.kind", DataContentType: "text/x"}, // a content type: convert only
	{Source: "web", Type: "$.kind", Time: "2026-01-02T03:04:05+02:00"},
	{Source: "urn:busbar:web", Type: "$.kind"},
	{Source: "0:web", Type: "$.kind"}, // not a URI reference: convert refuses it
}

// fastValues are record values, plain and awkward.
var fastValues = []string{
	`{"kind":"click","user":"u1","origin":"web","at":"2026-05-01T10:00:00.5Z","n":7,"id":"x-1"}`,
	`{"kind":"click"}`,
	`{"kind": "view", "user": "u\"2\\", "nested": {"a": [1, 2, {"b": null}]}, "html": "<a&b>"}` + "\n",
	`{"kind":"click","user":"  padded  "}`,
	`{"kind":"click","user":"ünï\u2028cödé","origin":"wëb"}`,
	`{"kind":"click","user":"tab\there"}`,
	`{"kind":"","user":"u"}`,
	`{"kind":"   "}`,
	`{"kind":5,"user":true}`,
	`{"kind":{"x":1}}`,
	`{"kind":"click","at":"yesterday"}`,
	`{"kind":"click","at":"2026-05-01T10:00:00+05:30"}`,
	`{"kind":"click","id":"   "}`,
	`{"kind":"click","origin":"a b"}`,
	`{"specversion":"1.0","id":"s","source":"x","type":"y"}`,
	`{"kind":"click"`,
	`[1,2,3]`,
	`"just a string"`,
	` {"kind":"click"}`,
	"\x00binary",
	``,
}

// fastRecords is every value under a few headers and keys.
func fastRecords() []*kgo.Record {
	var out []*kgo.Record
	headers := [][]kgo.RecordHeader{
		nil,
		{{Key: "trace", Value: []byte("abc")}},
		{{Key: "Content-Type", Value: []byte("application/json")}},
		{{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte("b")}, {Key: "ce_source", Value: []byte("s")}, {Key: "ce_type", Value: []byte("t")}},
	}
	keys := [][]byte{nil, []byte("key-1"), []byte(" spaced"), {0xff, 0xfe}}
	ts := time.Date(2026, 5, 1, 9, 0, 0, 123456789, time.FixedZone("x", 3600))
	for i, v := range fastValues {
		for j, h := range headers {
			for k, key := range keys {
				r := &kgo.Record{Topic: "web.clicks", Partition: int32(j), Offset: int64(i*100 + k), Key: key, Value: []byte(v), Headers: h}
				if k%2 == 0 {
					r.Timestamp = ts
				}
				out = append(out, r)
			}
		}
	}
	return out
}

// checkFast compares fastMapped with convert for one record and mapping,
// and reports whether the fast path took it.
func checkFast(t *testing.T, m *config.SourceMapping, r *kgo.Record) bool {
	t.Helper()
	cv, err := NewConverter(m)
	if err != nil {
		t.Fatal(err)
	}
	cm := cv.m
	now := time.Date(2026, 11, 22, 11, 0, 0, 987654321, time.UTC)
	fast, ok := cv.fastMapped(r, now)
	if !ok {
		return false
	}
	slow, err := convert(r, cm, now)
	if err != nil {
		t.Errorf("mapping %+v, value %q: the fast path made an event, convert refuses: %v", *m, r.Value, err)
		return true
	}
	var a, b any
	if err := json.Unmarshal(fast.Event, &a); err != nil {
		t.Errorf("mapping %+v, value %q: the fast path made invalid JSON %s: %v", *m, r.Value, fast.Event, err)
		return true
	}
	if err := json.Unmarshal(slow.Event, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) || fast.ID != slow.ID || !fast.IngestTime.Equal(slow.IngestTime) {
		t.Errorf("mapping %+v, value %q key %q:\nfast %s (id %q)\nslow %s (id %q)", *m, r.Value, r.Key, fast.Event, fast.ID, slow.Event, slow.ID)
	}
	// Attributes come out byte for byte; only data may differ (convert's
	// goes through json.Marshal, which compacts it).
	i, j := strings.Index(string(fast.Event), `,"data":`), strings.Index(string(slow.Event), `,"data":`)
	if i != j || string(fast.Event[:i]) != string(slow.Event[:j]) {
		t.Errorf("attributes before data differ:\nfast %s\nslow %s", fast.Event, slow.Event)
	}
	return true
}

// TestFastMappedMatchesConvert: for every record the fast path takes, it
// makes the event convert makes (equal as JSON, same id), and it takes the
// plain ones.
func TestFastMappedMatchesConvert(t *testing.T) {
	taken := 0
	for _, m := range fastMappings {
		for _, r := range fastRecords() {
			if checkFast(t, m, r) {
				taken++
			}
		}
	}
	if taken < 50 {
		t.Errorf("the fast path took only %d records", taken)
	}
	// The plain case must be fast.
	cv, _ := NewConverter(fastMappings[0])
	if _, ok := cv.fastMapped(&kgo.Record{Topic: "t", Value: []byte(fastValues[0])}, time.Now()); !ok {
		t.Error("the fast path does not take a plain JSON record")
	}
}

// TestFastMappedRandom: random JSON objects with awkward strings.
func TestFastMappedRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", "0", " ", "\"", "\\", "\t", "\n", "\b", "\f", "\x01", "<", "&", "é", "\u2028", "😀", "/", ":", "%", "."}
	str := func() string {
		var sb strings.Builder
		for range rng.IntN(8) {
			sb.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		return sb.String()
	}
	taken := 0
	for i := range 3000 {
		obj := map[string]any{"kind": str(), "user": str(), "origin": str(), "n": rng.IntN(1000)}
		if rng.IntN(3) == 0 {
			obj["at"] = time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).Format(time.RFC3339Nano)
		}
		v, _ := json.Marshal(obj)
		r := &kgo.Record{Topic: "t", Partition: int32(i % 3), Offset: int64(i), Value: v, Key: []byte(str())}
		if checkFast(t, fastMappings[i%3], r) {
			taken++
		}
	}
	t.Logf("the fast path took %d of 3000 random records", taken)
}

func FuzzFastMapped(f *testing.F) {
	for _, v := range fastValues {
		f.Add([]byte(v), []byte("k"), 0)
	}
	f.Fuzz(func(t *testing.T, value, key []byte, m int) {
		if m < 0 {
			m = -m
		}
		r := &kgo.Record{Topic: "t", Partition: 1, Offset: 42, Value: value, Key: key}
		checkFast(t, fastMappings[m%len(fastMappings)], r)
	})
}

func BenchmarkConvertMapped(b *testing.B) {
	cv, _ := NewConverter(&config.SourceMapping{Source: "web", Type: "$.kind", Subject: "$.user"})
	cm := cv.m
	r := &kgo.Record{Topic: "web.clicks", Partition: 3, Offset: 123456, Timestamp: time.Now(),
		Value: []byte(`{"kind":"click","user":"u42","page":"/p/7","ms":120}`)}
	for _, c := range []struct {
		name string
		f    func() error
	}{
		{"convert", func() error { _, err := convert(r, cm, time.Now()); return err }},
		{"fast", func() error {
			if _, ok := cv.fastMapped(r, time.Now()); !ok {
				return fmt.Errorf("not taken")
			}
			return nil
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.f(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
