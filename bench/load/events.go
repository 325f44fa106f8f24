package main

import (
	"fmt"
	"strconv"
	"time"
)

// The generated events are retail orders from an ERP, about 1 KB each in
// structured-mode CloudEvents JSON: what a midplatform bus carries. Every
// one matches the benchmark rule (source prefix "erp." and one of
// orderTypes), so every accepted event must be delivered exactly once
// (at-least-once: duplicates are counted, not expected).

var orderTypes = []string{"order.created", "order.updated", "order.paid", "order.shipped", "order.cancelled"}

var sources = []string{"erp.sap.plant-0042", "erp.sap.plant-0107", "erp.kingdee.shanghai", "erp.yonyou.beijing"}

// rulePattern is the event pattern of the benchmark rule, as YAML flow.
const rulePattern = `
      source: [{ prefix: "erp." }]
      type: ["order.created", "order.updated", "order.paid", "order.shipped", "order.cancelled"]`

// tails are precomputed bodies of data after sentAt and orderId, so
// building an event costs a few appends, not a JSON encoding.
var tails = func() []string {
	tiers := []string{"gold", "silver", "bronze", "platinum"}
	pay := []string{"paid", "pending", "paid", "refunded"}
	methods := []string{"alipay", "wechatpay", "unionpay", "invoice"}
	cities := []string{"Shanghai", "Beijing", "Shenzhen", "Hangzhou", "Chengdu", "Wuhan", "Nanjing", "Xi'an"}
	out := make([]string, 32)
	for v := range out {
		nLines := 3 + v%2
		lines := ""
		total := 0
		for l := range nLines {
			qty := 1 + (v*7+l*3)%12
			price := 1999 + (v*131+l*977)%50000
			total += qty * price
			if l > 0 {
				lines += ","
			}
			lines += fmt.Sprintf(`{"line":%d,"sku":"SKU-%05d","name":"Item %d-%d stainless steel fitting","qty":%d,"unitPrice":{"amount":%d,"currency":"CNY"},"warehouse":"WH-%02d"}`,
				l+1, 10000+v*37+l, v, l, qty, price, 1+(v+l)%9)
		}
		out[v] = fmt.Sprintf(`"customer":{"id":"C-%06d","name":"Customer %d Trading Co., Ltd.","email":"buyer%d@example.com","tier":"%s"},`+
			`"channel":"b2b-portal","salesOrg":"SO%02d","currency":"CNY","lines":[%s],`+
			`"shipping":{"method":"standard","address":{"city":"%s","district":"District %d","street":"%d Industrial Road","postcode":"%06d"}},`+
			`"payment":{"method":"%s","status":"%s","amount":%d},"tags":["priority-%d","contract"]}`,
			100000+v*7919%900000, v, v, tiers[v%len(tiers)], v%20, lines,
			cities[v%len(cities)], 1+v%12, 10+v*3, 200000+v*101, methods[v%len(methods)], pay[v%len(pay)], total, v%3)
	}
	return out
}()

// appendEvent appends one structured-mode event. prefix ("ld-" or "wu-")
// and seq make its id; sentAt (unix nanos) is the time the generator
// considers it sent, which the receiver subtracts from its arrival time.
func appendEvent(b []byte, prefix string, seq uint64, sentAt time.Time) []byte {
	v := int(seq % uint64(len(tails)))
	b = append(b, `{"specversion":"1.0","id":"`...)
	b = append(b, prefix...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `","source":"`...)
	b = append(b, sources[seq%uint64(len(sources))]...)
	b = append(b, `","type":"`...)
	b = append(b, orderTypes[seq%uint64(len(orderTypes))]...)
	b = append(b, `","subject":"SO-`...)
	b = strconv.AppendUint(b, 4500000000+seq, 10)
	b = append(b, `","time":"`...)
	b = sentAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","datacontenttype":"application/json","data":{"sentAt":`...)
	b = strconv.AppendInt(b, sentAt.UnixNano(), 10)
	b = append(b, `,"orderId":"SO-`...)
	b = strconv.AppendUint(b, 4500000000+seq, 10)
	b = append(b, `",`...)
	b = append(b, tails[v]...)
	b = append(b, '}')
	return b
}

// appendBody appends a request body of n events starting at seq: one
// structured event when batch is false, else a JSON array (batch mode).
func appendBody(b []byte, batch bool, prefix string, seq uint64, n int, sentAt time.Time) []byte {
	if !batch {
		return appendEvent(b, prefix, seq, sentAt)
	}
	b = append(b, '[')
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendEvent(b, prefix, seq+uint64(i), sentAt)
	}
	return append(b, ']')
}
