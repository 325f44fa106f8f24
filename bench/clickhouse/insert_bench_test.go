package clickhouse

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/chcol"
	"github.com/buger/jsonparser"

	"github.com/busbar/busbar/sinks/clickhouse"
	"github.com/busbar/busbar/sinks/clickhouse/chtest"
)

// BenchmarkInsert is the driver alone: prepared columns of the events table
// sent in inserts of rows each, one at a time, with a dedup token as the
// sink sends them. It separates what the server spends per row (parsing
// data into JSON above all) from the sink's own work. data=json/object
// sends data in the JSON column's binary (object) serialization, converted
// from the event's data text per row, instead of text the server parses.
func BenchmarkInsert(b *testing.B) {
	for _, c := range []struct {
		dataType, mode string
		rows           int
	}{
		{"JSON", "text", 10_000},
		{"JSON", "text", 50_000},
		{"JSON", "object", 50_000},
		{"String", "text", 10_000},
		{"String", "text", 50_000},
	} {
		b.Run(fmt.Sprintf("data=%s/%s/rows=%d", c.dataType, c.mode, c.rows), func(b *testing.B) {
			dsn, _ := chtest.Database(b)
			conn := chtest.Conn(b, dsn)
			ctx := context.Background()
			if err := conn.Exec(ctx, clickhouse.EventsDDL("events", c.dataType, 0)); err != nil {
				b.Fatal(err)
			}
			n := c.rows
			datas := make([]string, n)
			ids, srcs, typs, empty := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			specs, cts := make([]string, n), make([]string, n)
			times := make([]time.Time, n)
			exts := make([]map[string]string, n)
			for i := range n {
				datas[i] = fmt.Sprintf(`{"order":{"id":"SO-%d","amount":%d,"currency":"EUR"},"customer":{"id":"C-%d","region":"eu-west"}}`, i, i%1000, i%977)
				ids[i] = fmt.Sprintf("ev-%010d", i)
				srcs[i], typs[i], specs[i], cts[i] = sources[i%len(sources)], "order.created", "1.0", "application/json"
				times[i] = time.Date(2025, 5, 1, 10, i/60%60, i%60, 123e6, time.UTC)
				exts[i] = map[string]string{}
			}
			b.ResetTimer()
			srv0, cli0 := serverCPU(), clientCPU()
			start := time.Now()
			inserts := (b.N + n - 1) / n
			for round := range inserts {
				var data any = datas
				if c.mode == "object" {
					objs := make([]*chcol.JSON, n)
					for i := range objs {
						o, err := jsonObject([]byte(datas[i]))
						if err != nil {
							b.Fatal(err)
						}
						objs[i] = o
					}
					data = objs
				}
				set := ch.Settings{"insert_deduplicate": 1, "insert_deduplication_token": fmt.Sprintf("bench-%d-%d", round, start.UnixNano())}
				bt, err := conn.PrepareBatch(ch.Context(ctx, ch.WithSettings(set)), "INSERT INTO events (id, source, type, subject, time, ingest_time, bus, specversion, datacontenttype, dataschema, extensions, data)")
				if err != nil {
					b.Fatal(err)
				}
				for i, col := range []any{ids, srcs, typs, ids, times, times, empty, specs, cts, empty, exts, data} {
					if err := bt.Column(i).Append(col); err != nil {
						b.Fatal(err)
					}
				}
				if err := bt.Send(); err != nil {
					b.Fatal(err)
				}
			}
			el := time.Since(start)
			srv, cli := serverCPU()-srv0, clientCPU()-cli0
			b.StopTimer()
			rows := float64(inserts * n)
			b.ReportMetric(rows/el.Seconds(), "rows/s")
			b.ReportMetric(cli.Seconds()*1e6/rows, "client-µs/row")
			if srv0 >= 0 {
				b.ReportMetric(srv.Seconds()*1e6/rows, "server-µs/row")
			}
		})
	}
}

// jsonObject turns a JSON object's text into typed paths, for the shapes of
// this benchmark only (objects, strings, integers): enough to price the
// object serialization, not a general conversion.
func jsonObject(data []byte) (*chcol.JSON, error) {
	o := chcol.NewJSON()
	var walk func(prefix string, obj []byte) error
	walk = func(prefix string, obj []byte) error {
		return jsonparser.ObjectEach(obj, func(k, v []byte, vt jsonparser.ValueType, _ int) error {
			path := prefix + string(k)
			switch vt {
			case jsonparser.Object:
				return walk(path+".", v)
			case jsonparser.String:
				o.SetValueAtPath(path, chcol.NewDynamicWithType(string(v), "String"))
			case jsonparser.Number:
				n, err := strconv.ParseInt(string(v), 10, 64)
				if err != nil {
					return err
				}
				o.SetValueAtPath(path, chcol.NewDynamicWithType(n, "Int64"))
			default:
				return fmt.Errorf("%s: unsupported in this benchmark", path)
			}
			return nil
		})
	}
	return o, walk("", data)
}
