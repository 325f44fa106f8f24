package benchtransform

import (
	"encoding/json"
	"runtime"
	"testing"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/filters/transform"
)

// Run with, for example:
//
//	go test ./bench/transform -run '^$' -bench . -benchtime 2s -cpu 1 -count 5
//
// ns/op is the wall time of one Apply on one event (one goroutine);
// cpu-ns/op is the CPU time of the benchmark's thread per event, the
// figure to read on a shared, loaded machine. allocs/op and B/op are per
// event. The garbage collector runs on other threads and is not in
// cpu-ns/op.

// event is a structured-mode CloudEvent of about 1 KB: an order with a
// customer, three lines and a shipping address.
var event = []byte(`{"specversion":"1.0","id":"01JQ8Z6N7X4Y2W3V5T9R8S7Q6P","source":"erp/plant-7","type":"com.example.order.created","subject":"SO-2026-004711","time":"2026-03-01T10:00:00.123Z","datacontenttype":"application/json","busbaringesttime":"2026-03-01T10:00:00.125781Z","data":{"orderId":"SO-2026-004711","status":"paid","amount":1299.50,"currency":"CNY","channel":"web","customer":{"id":"C-000042","name":"Li Lei","tier":"gold","phone":"13812345678","email":"li.lei@example.com"},"items":[{"sku":"SKU-01234","name":"Industrial widget, stainless, 40 mm","qty":2,"price":499.75},{"sku":"SKU-04321","name":"Mounting bracket, galvanised","qty":4,"price":50.00},{"sku":"SKU-00777","name":"Hex bolt M8x40, box of 100","qty":1,"price":100.00}],"shipping":{"method":"express","address":{"line1":"88 Century Avenue","city":"Shanghai","region":"Pudong","postcode":"200120","country":"CN"}},"payment":{"method":"alipay","transactionId":"2026030122001412345678901234","paidAt":"2026-03-01T09:59:58Z"},"tags":["b2b","priority","invoice-needed"]}}`)

var meta = transform.Meta{Rule: "orders-to-finance", Bus: "orders"}

func bench(b *testing.B, tr *config.Transform) {
	t, err := transform.Compile(tr, transform.Options{})
	if err != nil {
		b.Fatal(err)
	}
	body, _, err := t.Apply(event, meta)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("event %d bytes -> body %d bytes: %.120s", len(event), len(body), body)
	b.SetBytes(int64(len(event)))
	b.ReportAllocs()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0, cpuOK := threadCPU()
	n := 0
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := t.Apply(event, meta); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.StopTimer()
	if cpu1, ok := threadCPU(); ok && cpuOK && n > 0 {
		b.ReportMetric(float64(cpu1-cpu0)/float64(n), "cpu-ns/op")
	}
}

func TestEventSize(t *testing.T) {
	if !json.Valid(event) || len(event) < 900 || len(event) > 1200 {
		t.Fatalf("event is %d bytes", len(event))
	}
}

// Template: finance's {orderId, amount}.
func BenchmarkTemplateFinance(b *testing.B) {
	bench(b, &config.Transform{
		Paths:    map[string]string{"orderId": "$.data.orderId", "amount": "$.data.amount"},
		Template: `{"orderId": <orderId>, "amount": <amount>}`,
	})
}

// Template: a DingTalk markdown message from six variables, two of them in
// the shipping address near the end of the event.
func BenchmarkTemplateChat(b *testing.B) {
	bench(b, &config.Transform{
		Paths: map[string]string{
			"orderId": "$.data.orderId", "customer": "$.data.customer.name", "amount": "$.data.amount",
			"currency": "$.data.currency", "city": "$.data.shipping.address.city", "method": "$.data.shipping.method",
		},
		Template: `{"msgtype": "markdown", "markdown": {"title": "New order <orderId>", "text": "### New order <orderId>\n- Customer: <customer>\n- Amount: <amount> <currency>\n- Ship to: <city> (<method>)\n- Rule: <busbar.rule-name>"}}`,
	})
}

// Template: a text message with a wildcard (every SKU).
func BenchmarkTemplateText(b *testing.B) {
	bench(b, &config.Transform{
		Paths:    map[string]string{"orderId": "$.data.orderId", "skus": "$.data.items[*].sku"},
		Template: `Order <orderId>: <skus>`,
	})
}

// Expr: a map literal reading a few members of data (only those are
// decoded).
func BenchmarkExprMap(b *testing.B) {
	bench(b, &config.Transform{
		Expr: `{"orderId": data.orderId, "amount": data.amount, "customer": data.customer.id, "city": data.shipping.address.city, "source": source}`,
	})
}

// Expr: a string built from the event.
func BenchmarkExprString(b *testing.B) {
	bench(b, &config.Transform{
		Expr: `"Order " + data.orderId + " paid by " + data.customer.name`,
	})
}

// Expr: reads all of data (map over the items), the worst case.
func BenchmarkExprWholeData(b *testing.B) {
	bench(b, &config.Transform{
		Expr: `{"orderId": data.orderId, "total": sum(map(data.items, .qty * .price)), "skus": map(data.items, .sku), "n": len(data.tags)}`,
	})
}

// Part: one JSONPath.
func BenchmarkPart(b *testing.B) {
	bench(b, &config.Transform{Path: "$.data.customer"})
}

// Data: the payload alone.
func BenchmarkData(b *testing.B) {
	bench(b, &config.Transform{Form: "data"})
}

// Mask: the whole event with PII masked (partial phone, HMAC email, redact
// name).
func BenchmarkMaskWhole(b *testing.B) {
	bench(b, &config.Transform{Mask: []config.Mask{
		{Path: "$.data.customer.phone", Action: "partial", KeepFirst: 3, KeepLast: 4},
		{Path: "$.data.customer.email", Action: "hash", Key: "bench-key-0123456789abcdef"},
		{Path: "$.data.customer.name", Action: "redact"},
	}})
}

// Mask plus template: analytics' view.
func BenchmarkMaskTemplate(b *testing.B) {
	bench(b, &config.Transform{
		Paths:    map[string]string{"orderId": "$.data.orderId", "phone": "$.data.customer.phone"},
		Template: `{"orderId": <orderId>, "phone": <phone>}`,
		Mask:     []config.Mask{{Path: "$.data.customer.phone", Action: "partial", KeepFirst: 3, KeepLast: 4}},
	})
}

// Baseline: encoding/json.Valid on the same event, to compare machines
// (and loads) by.
func BenchmarkBaselineJSONValid(b *testing.B) {
	b.SetBytes(int64(len(event)))
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0, cpuOK := threadCPU()
	n := 0
	for b.Loop() {
		if !json.Valid(event) {
			b.Fatal("invalid")
		}
		n++
	}
	if cpu1, ok := threadCPU(); ok && cpuOK && n > 0 {
		b.ReportMetric(float64(cpu1-cpu0)/float64(n), "cpu-ns/op")
	}
}
