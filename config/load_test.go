package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestFullConfigRoundTrips(t *testing.T) {
	c, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The pattern mapping became compact JSON with the numbers as written.
	wantPattern := `{"source":["shop","erp"],"detail-type":["order.created"],"data":{"region":[{"prefix":"eu-"}],"customer":[{"exists":true}],"vip":[true],"note":[null,"n/a"],"code":[7,1.5e3,-2]}}`
	if got := string(c.Rules[0].Pattern); got != wantPattern {
		t.Errorf("pattern\n got %s\nwant %s", got, wantPattern)
	}
	if got := string(c.Rules[1].Pattern); got != `{"source":["shop"]}` {
		t.Errorf("pattern from a JSON string: got %s", got)
	}
	// The merge key brought the shared policy; explicit fields stay.
	crm := c.Rules[0].Targets[0]
	if crm.Timeout.D() != 10*time.Second || crm.Retry.MaxAttempts != 5 || crm.Retry.MaxInterval.D() != time.Minute || crm.Concurrency != 1 {
		t.Errorf("merged target: %+v", crm)
	}
	if c.Rules[1].IsEnabled() || !c.Rules[0].IsEnabled() {
		t.Error("enabled flags lost")
	}

	// model -> JSON -> model gives the same model.
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Parse(js, "roundtrip.json")
	if err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	if !reflect.DeepEqual(c, c2) {
		a, _ := json.MarshalIndent(c, "", "  ")
		b, _ := json.MarshalIndent(c2, "", "  ")
		t.Errorf("round trip changed the model:\n%s\n---\n%s", a, b)
	}
	// Plain encoding/json reads the model back too (Duration is text).
	var c3 Config
	if err := json.Unmarshal(js, &c3); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, &c3) {
		t.Error("encoding/json round trip differs")
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte("rules:\n  - name: r\n    targets: [{id: t, type: http, url: 'https://x'}]\n"), "b.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Transport: "embedded://",
		Ingest:    Ingest{MaxBatchEntries: 1000, MaxRequestBytes: 4 << 20},
		Buses:     []Bus{{Name: "default", Retention: Duration(168 * time.Hour)}},
		Rules: []Rule{{Name: "r", Bus: "default", Targets: []Target{{
			ID: "t", Type: "http", URL: "https://x", Method: "POST", Timeout: Duration(5 * time.Second),
			Mode: "structured", Concurrency: DefaultConcurrency,
			Retry: Retry{MaxAttempts: 185, MaxEventAge: Duration(24 * time.Hour), InitialInterval: Duration(100 * time.Millisecond), MaxInterval: Duration(time.Minute)},
		}}}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	c.ApplyDefaults() // idempotent
	if !reflect.DeepEqual(c, want) {
		t.Error("ApplyDefaults is not idempotent")
	}
	// A bus's burst defaults to its rate.
	c, err = Parse([]byte("buses:\n  - name: orders\n    rate_limit_per_second: 500\n"), "b.yaml")
	if err != nil || c.Buses[0].RateLimitPerSecond != 500 || c.Buses[0].RateLimitBurst != 500 {
		t.Errorf("rate limit defaults: %v %+v", err, c.Buses)
	}
	// An empty file is a valid, empty config.
	for _, src := range []string{"", "# nothing\n", "---\n", "{}"} {
		c, err := Parse([]byte(src), "empty.yaml")
		if err != nil || len(c.Buses) != 1 || c.Buses[0].Name != "default" {
			t.Errorf("%q: %v %+v", src, err, c)
		}
	}
}

func TestJSONConfig(t *testing.T) {
	src := "{\n\t\"$schema\": \"./busbar.schema.json\",\n\t\"rules\": [{\"name\": \"r\", \"pattern\": {\"source\": [\"a\"]},\n\t\t\"targets\": [{\"id\": \"t\", \"type\": \"http\", \"url\": \"https://x\", \"timeout\": \"2s\"}]}]\n}\n"
	for _, name := range []string{"busbar.json", "busbar.conf"} { // by extension, and detected
		c, err := Parse([]byte(src), name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if string(c.Rules[0].Pattern) != `{"source":["a"]}` || c.Rules[0].Targets[0].Timeout.D() != 2*time.Second {
			t.Errorf("%s: %+v", name, c.Rules[0])
		}
	}
}

func TestJSONEscapesYAMLLacks(t *testing.T) {
	src := `{"buses": [{"name": "a", "description": "smile \ud83d\ude00, lone \ud800, \\ud83d \/ \u00e9"}]}`
	c, err := Parse([]byte(src), "x.json")
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		Buses []struct{ Description string }
	}
	if err := json.Unmarshal([]byte(src), &want); err != nil {
		t.Fatal(err)
	}
	if c.Buses[0].Description != want.Buses[0].Description {
		t.Errorf("got %q, encoding/json reads %q", c.Buses[0].Description, want.Buses[0].Description)
	}
}

func TestLoadFile(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
	_, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(p, []byte("buses: [{name: 'a b'}]\n"), 0o600)
	_, err = Load(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+":1:16: buses[0].name: ") {
		t.Errorf("error does not name the file: %v", err)
	}
}

func TestDurationText(t *testing.T) {
	for d, want := range map[time.Duration]string{
		168 * time.Hour: "168h", 90 * time.Second: "1m30s", 100 * time.Millisecond: "100ms",
		time.Hour + time.Second: "1h0m1s", 0: "0s", 2 * time.Minute: "2m",
	} {
		if got := Duration(d).String(); got != want {
			t.Errorf("%v: got %s want %s", d, got, want)
		}
		var back Duration
		if err := back.UnmarshalText([]byte(want)); err != nil || back.D() != d {
			t.Errorf("%s: %v %v", want, back, err)
		}
	}
	var d Duration
	if err := json.Unmarshal([]byte(`"5 seconds"`), &d); err == nil || !strings.Contains(err.Error(), `use Go syntax like "5s"`) {
		t.Errorf("bad duration: %v", err)
	}
}
