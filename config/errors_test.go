package config

import (
	"errors"
	"strings"
	"testing"
)

// errCase is one config with the errors it must produce. Each want is
// "line:col path: fragment": the error line must start with
// "<file>:line:col: path: " and contain fragment.
type errCase struct {
	name string
	src  string
	want []string
}

func noEnv(string) (string, bool) { return "", false }

// checkErrors loads each case and checks that every wanted error is there,
// with its file:line:col and field path, and that nothing else is.
func checkErrors(t *testing.T, file string, cases []errCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Helper()
			_, err := parse([]byte(tc.src), file, noEnv)
			if err == nil {
				t.Fatalf("loaded without error; want %q", tc.want)
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, not an ErrorList: %v", err, err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Errorf("got %d errors, want %d:\n%s", len(lines), len(tc.want), err)
			}
			for _, w := range tc.want {
				where, rest, _ := strings.Cut(w, " ")
				path, frag, _ := strings.Cut(rest, ": ")
				prefix := file + ":" + where + ": " + path + ": "
				if path == "" {
					prefix = file + ":" + where + ": "
				}
				found := false
				for _, l := range lines {
					if strings.HasPrefix(l, prefix) && strings.Contains(l[len(prefix):], frag) {
						found = true
					}
				}
				if !found {
					t.Errorf("no error %q %q in:\n%s", prefix, frag, err)
				}
			}
		})
	}
}

func TestSyntaxErrors(t *testing.T) {
	checkErrors(t, "busbar.yaml", []errCase{
		{"tab indent", "rules:\n\t- name: a\n", []string{
			"2 : found character that cannot start any token (YAML indents with spaces"}},
		{"colon in value", "buses:\n  - name: a: b\n", []string{
			"2 : mapping values are not allowed in this context (a value holding \": \" must be quoted)"}},
		{"two documents", "buses: []\n---\nrules: []\n", []string{
			"2 : a config file holds one YAML document"}},
		{"not a mapping", "- a\n- b\n", []string{
			"1:1 : expected the top level of the config (a mapping of field: value), got a list"}},
		{"duplicate key", "transport: embedded://\ntransport: nats://x\n", []string{
			"2:1 transport: \"transport\" is written twice in this mapping (first at line 1); keep one"}},
		{"custom tag", "transport: !secret x\n", []string{
			"1:12 transport: YAML tag !secret is not supported here"}},
	})
}

func TestJSONSyntaxErrors(t *testing.T) {
	checkErrors(t, "busbar.json", []errCase{
		{"trailing comma", "{\n  \"buses\": [\n    {\"name\": \"a\"},\n  ]\n}\n", []string{
			"4:3 : invalid JSON: invalid character ']' looking for beginning of value"}},
		{"yaml in json", "buses: []\n", []string{
			"1:1 : invalid JSON: invalid character 'b'"}},
		{"two values", "{}\n{}\n", []string{
			"2:1 : invalid JSON"}},
	})
	// A valid JSON file gets the same positioned errors as YAML.
	checkErrors(t, "busbar.json", []errCase{
		{"unknown field", "{\n  \"rules\": [\n    {\"name\": \"a\", \"tragets\": []}\n  ]\n}\n", []string{
			"3:19 rules[0].tragets: unknown field \"tragets\" in a rule (did you mean \"targets\"?)",
			"3:5 rules[0].targets: a rule needs at least one target"}},
		{"duplicate key", "{\"transport\": \"embedded://\", \"transport\": \"nats://x\"}", []string{
			"1:30 transport: written twice"}},
	})
}

func TestUnknownFieldErrors(t *testing.T) {
	checkErrors(t, "busbar.yaml", []errCase{
		{"typo at top", "buss: []\n", []string{
			"1:1 buss: unknown field \"buss\" in the top level of the config (did you mean \"buses\"?)"}},
		{"typo in target", `rules:
  - name: r
    targets:
      - id: t
        type: http
        url: https://x.example
        timout: 5s
`, []string{"7:9 rules[0].targets[0].timout: unknown field \"timout\" in a target (did you mean \"timeout\"?)"}},
		{"case", "rules:\n  - Name: r\n    targets: [{id: t, type: http, url: 'https://x'}]\n", []string{
			"2:5 rules[0].Name: unknown field \"Name\" in a rule (did you mean \"name\"?)",
			"2:5 rules[0].name: missing rule name"}},
		{"wrong level", "rules:\n  - name: r\n    timeout: 5s\n    targets: [{id: t, type: http, url: 'https://x'}]\n", []string{
			"3:5 rules[0].timeout: unknown field \"timeout\" in a rule (\"timeout\" is a field of a target; check the indentation)"}},
		{"nothing close", "ingest:\n  frobnicate: 1\n", []string{
			"2:3 ingest.frobnicate: unknown field \"frobnicate\" in ingest; its fields are max_batch_entries, max_request_bytes"}},
	})
}

func TestTypeErrors(t *testing.T) {
	target := func(field string) string {
		return "rules:\n  - name: r\n    targets:\n      - id: t\n        type: http\n        url: https://x.example\n        " + field + "\n"
	}
	checkErrors(t, "busbar.yaml", []errCase{
		{"duration words", target("timeout: 5 seconds"), []string{
			`7:18 rules[0].targets[0].timeout: "5 seconds" is not a duration (use Go syntax like "5s", "1m30s")`}},
		{"duration no unit", target("timeout: 5"), []string{
			`7:18 rules[0].targets[0].timeout: 5 has no unit (write a Go duration like "5s")`}},
		{"int word", target("concurrency: sixteen"), []string{
			`7:22 rules[0].targets[0].concurrency: "sixteen" is not a whole number`}},
		{"int float", target("concurrency: 1.5"), []string{
			`7:22 rules[0].targets[0].concurrency: "1.5" is not a whole number`}},
		{"int quoted", target(`concurrency: "16"`), []string{
			`7:22 rules[0].targets[0].concurrency: "16" is a string; write the number without quotes`}},
		{"int overflow", "ingest:\n  max_request_bytes: 99999999999999999999\n", []string{
			`2:22 ingest.max_request_bytes: "99999999999999999999" is too large for this field`}},
		{"bool yes", "rules:\n  - name: r\n    enabled: yes\n    targets: [{id: t, type: http, url: 'https://x'}]\n", []string{
			`3:14 rules[0].enabled: "yes" is not a boolean (write true or false)`}},
		{"map for list", "rules:\n  r:\n    targets: []\n", []string{
			`2:3 rules: expected a list (one item per line, starting with "- "), got a mapping`}},
		{"string for struct", target("retry: 3"), []string{
			`7:16 rules[0].targets[0].retry: expected retry (a mapping of field: value), got the number 3`}},
		{"list for string", target("method: [a, b]"), []string{
			`7:17 rules[0].targets[0].method: expected a string, got a list`}},
		{"headers list", target("headers: [a]"), []string{
			`7:18 rules[0].targets[0].headers: expected a mapping of name: value, got a list`}},
		{"pattern list", "rules:\n  - name: r\n    pattern: [a]\n    targets: [{id: t, type: http, url: 'https://x'}]\n", []string{
			`3:14 rules[0].pattern: expected an event pattern (a mapping such as {source: ["shop"]}), got a list`}},
		{"pattern bad json string", "rules:\n  - name: r\n    pattern: '{\"source\": [\"a\"'\n    targets: [{id: t, type: http, url: 'https://x'}]\n", []string{
			`3:14 rules[0].pattern: the pattern string is not valid JSON: unexpected end of JSON input`}},
	})
}

func TestMissingFieldErrors(t *testing.T) {
	checkErrors(t, "busbar.yaml", []errCase{
		{"bus name", "buses:\n  - description: x\n", []string{
			`2:5 buses[0].name: missing bus name (add name: using letters, digits, "-" and "_")`}},
		{"rule name and targets", "rules:\n  - bus: default\n", []string{
			`2:5 rules[0].name: missing rule name`,
			`2:5 rules[0].targets: a rule needs at least one target`}},
		{"null name", "rules:\n  - name:\n    targets: [{id: t, type: http, url: 'https://x'}]\n", []string{
			`2:10 rules[0].name: missing rule name`}},
		{"target id type url", "rules:\n  - name: r\n    targets:\n      - method: POST\n", []string{
			`4:9 rules[0].targets[0].id: missing target id (add id: using`,
			`4:9 rules[0].targets[0].type: missing target type (add type: http)`}},
		{"http url", "rules:\n  - name: r\n    targets:\n      - id: t\n        type: http\n", []string{
			`4:9 rules[0].targets[0].url: missing url: an http target needs the endpoint`}},
	})
}

func TestDuplicateErrors(t *testing.T) {
	checkErrors(t, "busbar.yaml", []errCase{
		{"bus", "buses:\n  - name: orders\n  - name: orders\n", []string{
			`3:11 buses[1].name: bus "orders" is declared twice (first at busbar.yaml:2:11 (buses[0].name)); bus names must be unique`}},
		{"rule", `rules:
  - name: r
    targets: [{id: t, type: http, url: 'https://x'}]
  - name: r
    targets: [{id: t, type: http, url: 'https://x'}]
`, []string{
			`4:11 rules[1].name: rule "r" is declared twice (first at busbar.yaml:2:11 (rules[0].name)); rule names must be unique across the file`}},
		{"rule on other bus", `buses: [{name: a}]
rules:
  - name: r
    targets: [{id: t, type: http, url: 'https://x'}]
  - name: r
    bus: a
    targets: [{id: t, type: http, url: 'https://x'}]
`, []string{`5:11 rules[1].name: rule "r" is declared twice (first at busbar.yaml:3:11`}},
		{"target", `rules:
  - name: r
    targets:
      - {id: t, type: http, url: 'https://x'}
      - {id: t, type: http, url: 'https://y'}
`, []string{
			`5:14 rules[0].targets[1].id: target id "t" is used twice in this rule (first at busbar.yaml:4:14 (rules[0].targets[0].id)); ids must be unique within a rule`}},
		{"header case", `rules:
  - name: r
    targets:
      - id: t
        type: http
        url: https://x
        headers: {X-Key: a, x-key: b}
`, []string{`7:29 rules[0].targets[0].headers.x-key: header "x-key" is set twice (also as "X-Key"`}},
	})
}

func TestReferenceErrors(t *testing.T) {
	checkErrors(t, "busbar.yaml", []errCase{
		{"undeclared bus", `buses: [{name: orders}, {name: payments}]
rules:
  - name: r
    bus: order
    targets: [{id: t, type: http, url: 'https://x'}]
`, []string{`4:10 rules[0].bus: bus "order" is not declared (declare it under buses:, or use "default"; did you mean "orders"?)`}},
		{"no buses declared", "rules:\n  - name: r\n    bus: audit\n    targets: [{id: t, type: http, url: 'https://x'}]\n", []string{
			`3:10 rules[0].bus: bus "audit" is not declared (declare it under buses:, or use "default")`}},
	})
	// "default" needs no declaration.
	if _, err := parse([]byte("rules:\n  - name: r\n    bus: default\n    targets: [{id: t, type: http, url: 'https://x'}]\n"), "b.yaml", noEnv); err != nil {
		t.Fatal(err)
	}
}

func TestNameErrors(t *testing.T) {
	long := strings.Repeat("a", 65)
	checkErrors(t, "busbar.yaml", []errCase{
		{"dot", "buses: [{name: orders.eu}]\n", []string{
			`1:16 buses[0].name: "orders.eu" is not a valid bus name: use letters, digits, "-" and "_", at most 64 characters, since it becomes a topic name; try "orders-eu"`}},
		{"space", "rules:\n  - name: big orders\n    targets: [{id: t, type: http, url: 'https://x'}]\n", []string{
			`2:11 rules[0].name: "big orders" is not a valid rule name`}},
		{"too long", "buses: [{name: " + long + "}]\n", []string{
			`1:16 buses[0].name: "` + long + `" is not a valid bus name: use letters, digits, "-" and "_", at most 64 characters, since it becomes a topic name; it has 65 characters`}},
		{"target id", "rules:\n  - name: r\n    targets: [{id: 'crm/eu', type: http, url: 'https://x'}]\n", []string{
			`3:20 rules[0].targets[0].id: "crm/eu" is not a valid target id`}},
		{"unicode", "buses: [{name: zähler}]\n", []string{
			`1:16 buses[0].name: "zähler" is not a valid bus name`}},
	})
}

func TestTargetErrors(t *testing.T) {
	target := func(fields string) string {
		return "rules:\n  - name: r\n    targets:\n      - id: t\n        " + fields + "\n"
	}
	checkErrors(t, "busbar.yaml", []errCase{
		{"type", target("type: htp"), []string{
			`5:15 rules[0].targets[0].type: "htp" is not a target type (use "http", "clickhouse", "dingtalk", "wecom", "feishu", "slack", "kafka" or "pulsar"; did you mean "http"?)`}},
		{"url scheme", target("type: http\n        url: ftp://x.example/a"), []string{
			`6:14 rules[0].targets[0].url: the URL must start with http:// or https://`}},
		{"url no host", target("type: http\n        url: https:///a"), []string{
			`6:14 rules[0].targets[0].url: the URL has no host`}},
		{"url unparsable keeps secret", target("type: http\n        url: \"https://user:s3cret@x.example/%zz\""), []string{
			`6:14 rules[0].targets[0].url: not a valid URL: invalid URL escape "%zz"`}},
		{"method case", target("type: http\n        url: https://x\n        method: post"), []string{
			`7:17 rules[0].targets[0].method: write the method in upper case: "POST"`}},
		{"method", target("type: http\n        url: https://x\n        method: TRACE"), []string{
			`7:17 rules[0].targets[0].method: "TRACE" is not a supported method (use "POST", "PUT", "PATCH", "GET" or "DELETE")`}},
		{"mode", target("type: http\n        url: https://x\n        mode: strucutred"), []string{
			`7:15 rules[0].targets[0].mode: "strucutred" is not a CloudEvents HTTP mode (use "structured" or "binary"; did you mean "structured"?)`}},
		{"header name", target("type: http\n        url: https://x\n        headers: {'X Key': a}"), []string{
			`7:19 rules[0].targets[0].headers.X Key: "X Key" is not a valid HTTP header name`}},
		{"header value", target("type: http\n        url: https://x\n        headers: {X-Key: \"a\\nb\"}"), []string{
			`7:19 rules[0].targets[0].headers.X-Key: the header value contains a line break`}},
		{"transport", "transport: kafak://broker:9092\n", []string{
			`1:12 transport: transport scheme "kafak" is not supported (use embedded://, nats://, kafka:// or pulsar://; did you mean kafka://?)`}},
	})
	// No message quotes a header value or a URL's password.
	_, err := parse([]byte(target("type: http\n        url: \"https://user:s3cret@x.example/%zz\"\n        headers: {X-Key: \"s3cret\\n\"}")), "b.yaml", noEnv)
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error leaks a secret or is missing: %v", err)
	}
}

func TestLimitErrors(t *testing.T) {
	target := func(fields string) string {
		return "rules:\n  - name: r\n    targets:\n      - id: t\n        type: http\n        url: https://x\n        " + fields + "\n"
	}
	checkErrors(t, "busbar.yaml", []errCase{
		{"concurrency zero", target("concurrency: 0"), []string{
			`7:22 rules[0].targets[0].concurrency: 0 is out of range: use 1 to 1024, or leave it out for the default 64`}},
		{"concurrency absurd", target("concurrency: 100000"), []string{
			`7:22 rules[0].targets[0].concurrency: 100000 is out of range: use 1 to 1024`}},
		{"negative timeout", target("timeout: -5s"), []string{
			`7:18 rules[0].targets[0].timeout: -5s is out of range: use 1ms to 15m, or leave it out for the default 5s`}},
		{"zero timeout", target("timeout: 0s"), []string{
			`7:18 rules[0].targets[0].timeout: 0s is out of range`}},
		{"attempts", target("retry: {max_attempts: -1}"), []string{
			`7:31 rules[0].targets[0].retry.max_attempts: -1 is out of range: use 1 to 1000, or leave it out for the default 185 (1 means no retries)`}},
		{"intervals", target("retry: {initial_interval: 1m, max_interval: 10s}"), []string{
			`7:35 rules[0].targets[0].retry.initial_interval: initial_interval 1m is longer than max_interval 10s; raise max_interval or lower initial_interval`}},
		{"interval vs default", target("retry: {initial_interval: 2m}"), []string{
			`7:35 rules[0].targets[0].retry.initial_interval: initial_interval 2m is longer than max_interval 1m (the default)`}},
		{"ingest", "ingest:\n  max_batch_entries: -1\n  max_request_bytes: 10\n", []string{
			`2:22 ingest.max_batch_entries: -1 is out of range: use 1 to 100000, or leave it out for the default 1000`,
			`3:22 ingest.max_request_bytes: 10 is out of range: use 1024 to 1073741824`}},
		{"bus", "buses:\n  - name: a\n    retention: 1s\n    max_bytes: -1\n", []string{
			`3:16 buses[0].retention: 1s is out of range: use 1m to 876000h, or leave it out for the default 168h`,
			`4:16 buses[0].max_bytes: -1 is out of range: use 0 or more`}},
		{"bus rate limit", "buses:\n  - name: a\n    rate_limit_per_second: 0\n  - name: b\n    rate_limit_burst: 10\n", []string{
			`3:28 buses[0].rate_limit_per_second: 0 is out of range: use 1 to 10000000`,
			`5:23 buses[1].rate_limit_burst: rate_limit_burst needs rate_limit_per_second: set the steady rate too, or leave both out for no limit`}},
	})
}

func TestPatternErrors(t *testing.T) {
	checkErrors(t, "busbar.yaml", []errCase{
		{"leaf not a list", `rules:
  - name: r
    pattern:
      source: [shop]
      data:
        amount: 100
    targets: [{id: t, type: http, url: 'https://x'}]
`, []string{`6:9 rules[0].pattern.data.amount: invalid pattern: `}},
		{"empty list", `rules:
  - name: r
    pattern:
      type: []
    targets: [{id: t, type: http, url: 'https://x'}]
`, []string{`4:7 rules[0].pattern.type: invalid pattern: `}},
		{"json string pattern", `rules:
  - name: r
    pattern: '{"type": []}'
    targets: [{id: t, type: http, url: 'https://x'}]
`, []string{`3:14 rules[0].pattern.type: invalid pattern: `}},
		{"infinite number", `rules:
  - name: r
    pattern: {data: {n: [.inf]}}
    targets: [{id: t, type: http, url: 'https://x'}]
`, []string{`3:26 rules[0].pattern.data.n[0]: .inf is not a finite number`}},
		{"too deep", "rules:\n  - name: r\n    pattern: " + strings.Repeat("{a: ", 40) + "[1]" + strings.Repeat("}", 40) + "\n    targets: [{id: t, type: http, url: 'https://x'}]\n", []string{
			`3:146 rules[0].pattern.` + strings.TrimSuffix(strings.Repeat("a.", 33), ".") + `: the pattern nests deeper than 32 levels`}},
	})
}

func TestFilterErrors(t *testing.T) {
	rule := func(filter string) string {
		return "rules:\n  - name: r\n    filter: " + filter + "\n    targets: [{id: t, type: http, url: 'https://x'}]\n"
	}
	checkErrors(t, "busbar.yaml", []errCase{
		// The column inside the expression maps to the file's column.
		{"plain", rule(`source == "shop" &&& true`), []string{`3:32 rules[0].filter: invalid filter: unexpected token`}},
		{"quoted", rule(`"source == 'shop' &&& true"`), []string{`3:33 rules[0].filter: invalid filter: unexpected token`}},
		{"literal block", rule("|\n      source == \"shop\" &&\n        nope(1)"), []string{`5:9 rules[0].filter: invalid filter: unknown name nope`}},
		{"not a bool", rule(`source`), []string{`3:13 rules[0].filter: invalid filter: `}},
		// Folded text cannot be mapped: the scalar's position, and the
		// place inside the expression in the message.
		{"folded", rule(">\n      source == \"shop\" &&\n      nope(1)"), []string{`3:13 rules[0].filter: invalid filter at line 1, column `}},
	})
}

func TestErrorListIsSortedAndComplete(t *testing.T) {
	src := `rules:
  - name: r
    targets:
      - {id: t, type: http, url: 'https://x', concurrency: 0}
buses:
  - name: "a b"
transport: nope
`
	_, err := parse([]byte(src), "b.yaml", noEnv)
	want := strings.Join([]string{
		`b.yaml:4:60: rules[0].targets[0].concurrency: 0 is out of range: use 1 to 1024, or leave it out for the default 64`,
		`b.yaml:6:11: buses[0].name: "a b" is not a valid bus name: use letters, digits, "-" and "_", at most 64 characters, since it becomes a topic name; try "a-b"`,
		`b.yaml:7:12: transport: not a transport URL (use embedded://, or a nats://, kafka:// or pulsar:// URL)`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

func TestTooManyErrors(t *testing.T) {
	var b strings.Builder
	b.WriteString("buses:\n")
	for range 500 {
		b.WriteString("  - name: 'a b'\n")
	}
	_, err := parse([]byte(b.String()), "b.yaml", noEnv)
	var list ErrorList
	if !errors.As(err, &list) || len(list) > maxErrors+1 {
		t.Fatalf("want at most %d errors, got %d", maxErrors+1, len(list))
	}
}

func TestValidateWithoutFile(t *testing.T) {
	c := &Config{Rules: []Rule{{Name: "r", Targets: []Target{{ID: "t", Type: "http", URL: "https://x", Concurrency: -1}}}}}
	err := c.Validate()
	want := "rules[0].targets[0].concurrency: -1 is out of range: use 1 to 1024, or leave it out for the default 64"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	c.Rules[0].Targets[0].Concurrency = 0 // zero is "use the default" in code
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}
