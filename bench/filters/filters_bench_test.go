package benchfilters

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/busbar/busbar/filters"
)

// Run with, for example:
//
//	go test ./bench/filters -run '^$' -bench . -benchtime 2s -cpu 1
//
// events/s is per core (one goroutine); allocs/op is allocations per event.

const (
	nTypes   = 1000 // distinct event types on the bus
	nSources = 50
	nEvents  = 512 // distinct events cycled through
)

var tiers = []string{"gold", "silver", "bronze", "platinum"}
var countries = []string{"DE", "FR", "US", "CN", "JP", "BR", "IN", "GB"}
var currencies = []string{"EUR", "usd", "Cny", "JPY"}
var payMethods = []string{"card", "paypal", "wire", "alipay"}

func typeName(i int) string   { return fmt.Sprintf("com.example.order.event%d", i) }
func sourceName(i int) string { return fmt.Sprintf("erp/plant-%d", i) }

// makeEvent returns a structured-mode CloudEvent of about 1 KB whose type
// is one of types.
func makeEvent(r *rand.Rand, types int) []byte {
	items := make([]map[string]any, 3)
	for i := range items {
		items[i] = map[string]any{
			"sku":   fmt.Sprintf("SKU-%05d", r.IntN(5000)),
			"name":  "Industrial widget, stainless, 40 mm",
			"qty":   1 + r.IntN(20),
			"price": float64(r.IntN(100000)) / 100,
		}
	}
	ev := map[string]any{
		"specversion":      "1.0",
		"id":               fmt.Sprintf("01HX%020d", r.Uint64()),
		"source":           sourceName(r.IntN(nSources)),
		"type":             typeName(r.IntN(types)),
		"subject":          fmt.Sprintf("orders/%d", r.IntN(1e6)),
		"time":             "2024-05-01T10:00:00.123Z",
		"busbaringesttime": "2024-05-01T10:00:00.125Z",
		"datacontenttype":  "application/json",
		"traceparent":      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"data": map[string]any{
			"orderId": fmt.Sprintf("ORD-%08d", r.IntN(1e8)),
			"customer": map[string]any{
				"id":    fmt.Sprintf("C%06d", r.IntN(1e6)),
				"tier":  tiers[r.IntN(len(tiers))],
				"email": fmt.Sprintf("buyer%d@Example.COM", r.IntN(1000)),
				"name":  "Erika Mustermann",
			},
			"amount":   float64(r.IntN(1000000)) / 100,
			"currency": currencies[r.IntN(len(currencies))],
			"items":    items,
			"shipping": map[string]any{
				"country": countries[r.IntN(len(countries))],
				"city":    "Stuttgart",
				"zip":     fmt.Sprintf("%05d", r.IntN(99999)),
				"street":  "Hauptstrasse 1",
			},
			"payment": map[string]any{
				"method": payMethods[r.IntN(len(payMethods))],
				"ip":     fmt.Sprintf("10.%d.%d.%d", r.IntN(256), r.IntN(256), r.IntN(256)),
			},
			"tags":  []string{"b2b", "priority", "export"}[:1+r.IntN(3)],
			"notes": "Deliver between 8 and 17 h; call ahead. Fragile goods, keep upright.",
		},
	}
	b, _ := json.Marshal(ev)
	return b
}

// mixedRule returns a rule mixing operators the way a bus's rules do: most
// select an event type (one of types) and add one or two conditions on data;
// a few select on source only. No wildcards.
func mixedRule(r *rand.Rand, i, types int) filters.Rule {
	t := typeName(r.IntN(types))
	var p string
	switch i % 12 {
	case 0:
		p = fmt.Sprintf(`{"type":[%q],"data":{"customer":{"tier":[%q]}}}`, t, tiers[r.IntN(4)])
	case 1:
		p = fmt.Sprintf(`{"detail-type":[%q],"detail":{"currency":[{"equals-ignore-case":%q}]}}`, t, currencies[r.IntN(4)])
	case 2:
		p = fmt.Sprintf(`{"type":[%q],"data":{"customer":{"id":[{"prefix":"C%d"}]}}}`, t, r.IntN(10))
	case 3:
		p = fmt.Sprintf(`{"type":[%q],"data":{"customer":{"email":[{"suffix":{"equals-ignore-case":"@example.com"}}]}}}`, t)
	case 4:
		lo := r.IntN(5000)
		p = fmt.Sprintf(`{"type":[%q],"data":{"amount":[{"numeric":[">=",%d,"<",%d]}]}}`, t, lo, lo+r.IntN(5000)+1)
	case 5:
		p = fmt.Sprintf(`{"type":[%q],"data":{"payment":{"ip":[{"cidr":"10.%d.0.0/16"}]}}}`, t, r.IntN(256))
	case 6:
		p = fmt.Sprintf(`{"type":[%q],"data":{"shipping":{"country":[{"anything-but":[%q,%q]}]}}}`, t, countries[r.IntN(8)], countries[r.IntN(8)])
	case 7:
		p = fmt.Sprintf(`{"type":[%q],"data":{"items":{"sku":[{"prefix":"SKU-0%d"}],"qty":[{"numeric":[">",%d]}]}}}`, t, r.IntN(5), r.IntN(20))
	case 8:
		p = fmt.Sprintf(`{"type":[%q],"data":{"tags":["priority"],"discount":[{"exists":false}]}}`, t)
	case 9:
		p = fmt.Sprintf(`{"$or":[{"type":[%q]},{"subject":[{"prefix":"orders/%d"}],"source":[%q]}],"data":{"payment":{"method":[%q]}}}`, t, r.IntN(1000), sourceName(r.IntN(nSources)), payMethods[r.IntN(4)])
	case 10:
		p = fmt.Sprintf(`{"source":[%q],"type":[{"prefix":"com.example.order.event%d"}],"data":{"amount":[{"numeric":[">",%d]}]}}`, sourceName(r.IntN(nSources)), r.IntN(1000), r.IntN(10000))
	case 11:
		p = fmt.Sprintf(`{"type":[%q],"data":{"orderId":[{"regex":"^ORD-%d"}],"customer":{"tier":[{"anything-but":"bronze"}]}}}`, t, r.IntN(10))
	}
	return filters.Rule{Name: fmt.Sprintf("rule-%d", i), Pattern: json.RawMessage(p)}
}

// wildcardRule has no selective field: every rule's wildcard is tried on
// every event, the inherent cost of overlapping wildcards.
func wildcardRule(r *rand.Rand, i, _ int) filters.Rule {
	p := fmt.Sprintf(`{"data":{"customer":{"email":[{"wildcard":"buyer%d*@*.COM"}]}}}`, r.IntN(1000))
	return filters.Rule{Name: fmt.Sprintf("wild-%d", i), Pattern: json.RawMessage(p)}
}

func events(types int) [][]byte {
	r := rand.New(rand.NewPCG(7, 7))
	evs := make([][]byte, nEvents)
	for i := range evs {
		evs[i] = makeEvent(r, types)
	}
	return evs
}

func rules(n, types int, mk func(*rand.Rand, int, int) filters.Rule) []filters.Rule {
	r := rand.New(rand.NewPCG(uint64(n), 3))
	out := make([]filters.Rule, n)
	for i := range out {
		out[i] = mk(r, i, types)
	}
	return out
}

func runMatch(b *testing.B, rs []filters.Rule, evs [][]byte) {
	m, err := filters.NewMatcher(rs)
	if err != nil {
		b.Fatal(err)
	}
	size := 0
	for _, e := range evs {
		size += len(e)
	}
	dst := make([]string, 0, 64)
	matched := 0
	b.SetBytes(int64(size / len(evs)))
	b.ReportAllocs()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0, cpuOK := threadCPU()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out, err := m.Match(evs[i%len(evs)], dst[:0])
		if err != nil {
			b.Fatal(err)
		}
		matched += len(out)
	}
	b.StopTimer()
	reportRates(b, cpu0, cpuOK)
	b.ReportMetric(float64(matched)/float64(b.N), "matches/event")
}

// reportRates reports events/s from wall time and, where the OS tells the
// thread's CPU time, cpu-ns/event and cpu-events/s: the per-core rate that
// stays meaningful when other processes share the cores.
func reportRates(b *testing.B, cpu0 time.Duration, cpuOK bool) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if cpu1, ok := threadCPU(); ok && cpuOK && cpu1 > cpu0 {
		ns := float64(cpu1-cpu0) / float64(b.N)
		b.ReportMetric(ns, "cpu-ns/event")
		b.ReportMetric(1e9/ns, "cpu-events/s")
	}
}

// BenchmarkMatchMixed: a bus with 1,000 event types and 10, 1,000 or
// 10,000 mixed rules. With more rules, more of them share the event's type,
// so each event partly matches more rules (about 0, 1 and 10) and matches
// more (see matches/event): that work is the size of the answer.
func BenchmarkMatchMixed(b *testing.B) {
	evs := events(nTypes)
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) { runMatch(b, rules(n, nTypes, mixedRule), evs) })
	}
}

// BenchmarkMatchScaled: the same rule mix with as many event types as
// rules/10, so every event partly matches about ten rules whatever the
// number of rules: what remains is the effect of the number of rules itself.
func BenchmarkMatchScaled(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		types := max(1, n/10)
		evs := events(types)
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) { runMatch(b, rules(n, types, mixedRule), evs) })
	}
}

func BenchmarkMatchWildcard(b *testing.B) {
	evs := events(nTypes)
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) { runMatch(b, rules(n, nTypes, wildcardRule), evs) })
	}
}

// BenchmarkFilter measures what an expr filter adds per event that reaches
// it: every event matches the pattern {"source":[{"prefix":"erp/"}]}; the
// filter (when present) reads data, so the envelope and data are decoded.
func BenchmarkFilter(b *testing.B) {
	evs := events(nTypes)
	pattern := json.RawMessage(`{"source":[{"prefix":"erp/"}]}`)
	cases := []struct{ name, filter string }{
		{"none", ""},
		{"envelope", `type endsWith "7" && subject startsWith "orders/"`},
		{"data", `data.amount > 5000 && data.customer.tier in ["gold", "platinum"]`},
		{"jsonpath+time", `jsonpath(data, "$.items[0].qty") > 3 && time > date("2024-01-01T00:00:00Z")`},
	}
	for _, c := range cases {
		b.Run("filter="+c.name, func(b *testing.B) {
			runMatch(b, []filters.Rule{{Name: "r", Pattern: pattern, Filter: c.filter}}, evs)
		})
	}
}

// BenchmarkBaselineUnmarshal is the cost of merely decoding the same events
// with encoding/json into map[string]any, for comparison.
func BenchmarkBaselineUnmarshal(b *testing.B) {
	evs := events(nTypes)
	b.ReportAllocs()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0, cpuOK := threadCPU()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var m map[string]any
		if err := json.Unmarshal(evs[i%len(evs)], &m); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportRates(b, cpu0, cpuOK)
}
