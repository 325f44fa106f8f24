package clickhouse

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/busbar/busbar/sinks"
)

// The rows DeliverBatch converts into a slab must be the rows Deliver
// converts one by one, and fail the same events.
func TestSlabConvertMatchesConvert(t *testing.T) {
	evs := []string{
		string(benchEvent(1)),
		`{"specversion":"1.0","id":"a","source":"s","type":"t","data":[1,2,3]}`,
		`{"specversion":"1.0","id":"b","source":"s","type":"t","data":"he said \"hi\""}`,
		`{"specversion":"1.0","id":"c","source":"s","type":"t","data_base64":"aGVsbG8="}`,
		`{"specversion":"1.0","id":"d","source":"s","type":"t"}`,
		`not json`,
		`{"specversion":"1.0","source":"x","type":"y"}`,
		`{"specversion":"1.0","id":"old","source":"x","type":"y","time":"1066-10-14T09:00:00Z"}`,
		`{"specversion":"1.0","id":"e\u00e9\"","source":"a\\b","type":"t","subject":"s","tenant":"acme","n":12,"nul":null,"busbarbus":"orders","time":"2025-05-01T10:00:00+02:00","busbaringesttime":"2025-05-01T08:00:01.5Z","dataschema":"x","datacontenttype":"application/json","data":{"k":"v"}}`,
		`{"specversion":"1.0","id":"f","source":"s","type":"t","time":"not a time"}`,
		`{"specversion":"1.0","id":"g","source":"s","type":"t","busbaringesttime":"garbage","data":null}`,
		string(benchEvent(2)),
	}
	ds := make([]sinks.Delivery, len(evs))
	for i, e := range evs {
		ds[i] = sinks.Delivery{EventID: fmt.Sprint(i), Bus: "main", Event: []byte(e)}
	}
	s := &Sink{}
	sl := newSlab(ds)
	for i, d := range ds {
		before := time.Now()
		got, gsize, gerr := sl.convert(i, d)
		want, wsize, werr := s.convert(d)
		after := time.Now()
		if (gerr != nil) != (werr != nil) || gsize != wsize || (gerr != nil && gerr.Error() != werr.Error()) {
			t.Fatalf("event %d: slab %d, %v; convert %d, %v", i, gsize, gerr, wsize, werr)
		}
		if gerr != nil {
			continue
		}
		g, w := *got.ev, *want.ev
		if !g.hasIngest {
			// Both are time.Now() when converted.
			for _, tm := range []time.Time{g.ingest, w.ingest} {
				if tm.Before(before) || tm.After(after) {
					t.Errorf("event %d: ingest %v not within the call", i, tm)
				}
			}
			g.ingest, w.ingest = time.Time{}, time.Time{}
			if !g.hasTime {
				g.time, w.time = time.Time{}, time.Time{}
			}
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("event %d:\nslab    %+v\nconvert %+v", i, g, w)
		}
	}
}

// boxed must hand the driver each row's own value, in order, whatever the
// pattern of repeats.
func TestBoxedKeepsValues(t *testing.T) {
	c := new(eventCols)
	for _, distinct := range []int{1, 5, 8, 9, 20, 1000} {
		ss := make([]string, 3000)
		for i := range ss {
			ss[i] = fmt.Sprint("v", (i*7+i/13)%distinct)
		}
		ss[5] = ""
		out := c.boxed(3, ss)
		if len(out) != len(ss) {
			t.Fatalf("%d values for %d", len(out), len(ss))
		}
		for i, v := range out {
			if v.(string) != ss[i] {
				t.Fatalf("distinct=%d: row %d = %q, want %q", distinct, i, v, ss[i])
			}
		}
		c.release()
		c = colsPool.Get().(*eventCols)
	}
}
