package natsjs

import (
	"math/rand"
	"strings"
	"testing"
)

func TestStreamName(t *testing.T) {
	for topic, want := range map[string]string{
		"busbar.bus.default":                     "busbar_bus_default",
		"busbar.q.orders.to-erp.http_1":          "busbar_q_orders_to--erp_http-_1",
		"busbar.dlq.default.r.t":                 "busbar_dlq_default_r_t",
		"a_.b":                                   "a-__b",
		"a._b":                                   "a_-_b",
		"topic-5f0c8a52-2b1e-4c55-9d0e-8f2b7e0c": "topic--5f0c8a52--2b1e--4c55--9d0e--8f2b7e0c",
	} {
		got, err := StreamName(topic)
		if err != nil || got != want {
			t.Errorf("StreamName(%q) = %q, %v; want %q", topic, got, err, want)
		}
	}
	for _, bad := range []string{"", ".a", "a.", "a..b", "a b", "a.*", "a.>", "ümlaut", "a/b"} {
		if _, err := StreamName(bad); err == nil {
			t.Errorf("StreamName(%q) accepted", bad)
		}
	}
	if _, err := ConsumerName(""); err == nil {
		t.Error("ConsumerName accepted an empty group")
	}
}

// Different topics never share a stream, long ones included, and every
// name is a valid, bounded JetStream name.
func TestStreamNameInjective(t *testing.T) {
	alphabet := "ab-_."
	seen := map[string]string{}
	rng := rand.New(rand.NewSource(1))
	check := func(topic string) {
		if ValidTopic(topic) != nil {
			return
		}
		name, err := StreamName(topic)
		if err != nil {
			t.Fatal(err)
		}
		if len(name) > maxNameLen || strings.ContainsAny(name, ". *>\t/\\") {
			t.Fatalf("StreamName(%q) = %q: invalid", topic, name)
		}
		if other, dup := seen[name]; dup && other != topic {
			t.Fatalf("%q and %q both map to %q", topic, other, name)
		}
		seen[name] = topic
	}
	for i := 0; i < 200000; i++ {
		n := 1 + rng.Intn(8)
		if i%100 == 0 {
			n = 90 + rng.Intn(120) // around the length cut
		}
		b := make([]byte, n)
		for j := range b {
			b[j] = alphabet[rng.Intn(len(alphabet))]
		}
		check(string(b))
	}
	long := strings.Repeat("x", 300)
	check(long)
	check(long + "y")
	check(strings.Repeat("-", 150))
	check(strings.Repeat("-", 150) + "a")
}
