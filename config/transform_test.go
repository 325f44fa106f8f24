package config

import (
	"errors"
	"strings"
	"testing"
)

func TestTransformErrors(t *testing.T) {
	head := "rules:\n  - name: r\n    targets:\n      - id: t\n        type: http\n        url: https://x.example/\n        transform:\n"
	checkErrors(t, "busbar.yaml", []errCase{
		{"bad path", head + "          path: $.data[?(@.x)]\n", []string{
			"8:17 rules[0].targets[0].transform.path: filters ([?(...)]) of JSONPath are not supported",
		}},
		{"path syntax", head + "          path: $.a b\n", []string{
			"8:20 rules[0].targets[0].transform.path: invalid JSONPath: parse error",
		}},
		{"template", head + "          paths: {id: $.id}\n          template: '{\"a\": <nope>}'\n", []string{
			"9:28 rules[0].targets[0].transform.template: the template uses <nope>, which paths does not define",
		}},
		{"template block", head + "          paths:\n            id: $.id\n          template: |\n            {\"id\": <id>,\n             <id>: 1}\n", []string{
			"12:14 rules[0].targets[0].transform.template: a placeholder cannot be an object key",
		}},
		{"variable path", head + "          paths:\n            id: id\n          template: <id>\n", []string{
			"9:17 rules[0].targets[0].transform.paths.id: a path starts with $",
		}},
		{"expr", head + "          expr: '{\"a\": data.x +}'\n", []string{
			"8:32 rules[0].targets[0].transform.expr: unexpected token",
		}},
		{"two forms", head + "          path: $.data\n          expr: data\n", []string{
			"8:17 rules[0].targets[0].transform.path: path belongs to the part form, but expr is set too",
		}},
		{"form", head + "          form: dat\n", []string{
			"8:17 rules[0].targets[0].transform.form: \"dat\" is not a transform form",
		}},
		{"unknown field", head + "          tempalte: x\n", []string{
			"8:11 rules[0].targets[0].transform.tempalte: unknown field \"tempalte\" in transform (did you mean \"template\"?)",
		}},
		{"mask", head + "          mask:\n            - path: $.data.phone\n              action: blur\n            - {path: $.data.x, action: hash, key: literal-key-of-32-bytes-long-xx}\n", []string{
			"10:23 rules[0].targets[0].transform.mask[0].action: \"blur\" is not a mask action",
			"11:51 rules[0].targets[0].transform.mask[1].key: write the hash key as an environment variable reference",
		}},
	})
}

func TestTransformLoads(t *testing.T) {
	src := `rules:
  - name: r
    targets:
      - id: t
        type: http
        url: https://x.example/
        transform:
          paths: {id: $.data.orderId}
          template: '{"id": <id>}'
          mask:
            - {path: $.data.phone, action: hash, key: "${PII_KEY}"}
            - {path: $.data.name, action: redact, replacement: ""}
`
	env := map[string]string{"PII_KEY": "0123456789abcdef-secret"}
	c, err := parse([]byte(src), "busbar.yaml", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	tr := c.Rules[0].Targets[0].Transform
	if tr.FormOf() != "template" || tr.Mask[0].Key != env["PII_KEY"] || *tr.Mask[1].Replacement != "" {
		t.Fatalf("loaded %+v", tr)
	}
	r := c.Redacted()
	if got := r.Rules[0].Targets[0].Transform.Mask[0].Key; got != "${PII_KEY}" {
		t.Errorf("redacted key %q", got)
	}
	// Redacted works on a copy: the loaded key is still the secret.
	if tr.Mask[0].Key != env["PII_KEY"] {
		t.Errorf("Redacted changed the config: key %q", tr.Mask[0].Key)
	}
	// A literal key in a config built in code is hidden.
	c.Rules[0].Targets[0].Transform.Mask[0].Key = "literal-0123456789"
	c.templates = nil
	if got := c.Redacted().Rules[0].Targets[0].Transform.Mask[0].Key; got != RedactedValue {
		t.Errorf("literal key printed as %q", got)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	var nilT *Transform
	if nilT.FormOf() != "whole" || nilT.clone() != nil {
		t.Error("nil transform")
	}
}

func TestParseTransform(t *testing.T) {
	tr, err := ParseTransform([]byte("template: 'Order <id>'\npaths:\n  id: $.data.orderId\nmask:\n  - {path: $.data.x, action: hash, key: inline-key-0123456789}\n"), "t.yaml", nil)
	if err != nil || tr.Template != "Order <id>" || tr.Paths["id"] != "$.data.orderId" {
		t.Fatalf("%+v %v", tr, err)
	}
	for src, want := range map[string]string{
		"":                          "t.yaml: the file holds no transform",
		"null":                      "t.yaml: the file holds no transform",
		"expr: 'data.x +'":          "t.yaml:1:15: expr: unexpected token",
		"path: ${SECRET}":           "t.yaml:1:7: path: environment variable SECRET is not set",
		"- a":                       "t.yaml:1:1: expected transform",
		"form: data\nform: part\n":  "t.yaml:2:1: form: \"form\" is written twice",
		"{\"form\": \"part\"}":      "t.yaml:1:1: path: the part form needs path",
		"mask: [{path: $.x}]":       "t.yaml:1:8: mask[0].action: missing action",
		"template: x\nfrom: data\n": "t.yaml:2:1: from: unknown field \"from\" in transform (did you mean \"form\"?)",
	} {
		_, err := ParseTransform([]byte(src), "t.yaml", nil)
		var l ErrorList
		if !errors.As(err, &l) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", src, err, want)
		}
	}
	if _, err := ParseTransform([]byte(`{"form": "data"}`), "transform.json", nil); err != nil {
		t.Error(err)
	}
	if _, err := ParseTransform([]byte(`{"form": }`), "transform.json", nil); err == nil || !strings.Contains(err.Error(), "transform.json:1:10: invalid JSON") {
		t.Errorf("bad JSON: %v", err)
	}
}
