package cebinding

import (
	"regexp"
	"testing"

	"github.com/busbar/busbar/sinks"
)

// TestTopicErrors: each broker's topic errors read exactly as they did when
// each sink had its own copy of the template.
func TestTopicErrors(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z.]+$`)
	for _, broker := range []string{"kafka", "pulsar"} {
		if _, err := ParseTopic(broker, "", valid); err == nil || err.Error() != broker+" topic is missing" {
			t.Errorf("%s: empty topic: %v", broker, err)
		}
		tt, err := ParseTopic(broker, "t.{$.a}", valid)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := tt.Render([]byte(`{"a":"x"}`)); got != "t.x" || err != nil {
			t.Errorf("%s: render %q, %v", broker, got, err)
		}
		if _, err := tt.Render([]byte(`{}`)); err == nil || err.Error() != broker+" topic: the event has no value at placeholder 1" {
			t.Errorf("%s: missing value: %v", broker, err)
		}
		if _, err := tt.Render([]byte(`{"a":"X"}`)); err == nil || err.Error() != broker+` topic "t.X" from the event is not a valid topic name` {
			t.Errorf("%s: invalid name: %v", broker, err)
		}
	}
}

// TestBinaryOrder: attributes come in the event's order, strings unquoted.
func TestBinaryOrder(t *testing.T) {
	var keys, vals []string
	body, ct, err := Binary(sinks.Delivery{Event: []byte(`{"specversion":"1.0","id":"a\"b","n":3,"data":{"x":1}}`)}, func(k, v string) {
		keys, vals = append(keys, k), append(vals, v)
	})
	if err != nil || string(body) != `{"x":1}` || ct != "application/json" {
		t.Fatalf("body %s ct %q err %v", body, ct, err)
	}
	if len(keys) != 3 || keys[0] != "ce_specversion" || keys[1] != "ce_id" || vals[1] != `a"b` || keys[2] != "ce_n" || vals[2] != "3" {
		t.Errorf("attributes %q %q", keys, vals)
	}
}
