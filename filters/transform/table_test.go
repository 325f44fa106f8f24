package transform

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/busbar/busbar/config"
)

// tableCase is one case of filters/testdata/transforms/*.yaml: a transform
// written as in a config, an event, and what the target must receive (or
// the error).
type tableCase struct {
	Name        string            `yaml:"name"`
	Transform   yaml.Node         `yaml:"transform"`
	Event       string            `yaml:"event"`      // a file under events/
	EventJSON   string            `yaml:"event_json"` // or the event itself
	Rule        string            `yaml:"rule"`
	Bus         string            `yaml:"bus"`
	Env         map[string]string `yaml:"env"`
	Body        *string           `yaml:"body"`
	ContentType string            `yaml:"content_type"`
	Error       string            `yaml:"error"`
}

const tableDir = "../testdata/transforms"

func TestTable(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(tableDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no table files in %s: %v", tableDir, err)
	}
	n := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cases []tableCase
		if err := yaml.Unmarshal(src, &cases); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, tc := range cases {
			n++
			t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml")+"/"+tc.Name, func(t *testing.T) { runCase(t, tc) })
		}
	}
	t.Logf("%d cases", n)
}

func runCase(t *testing.T, tc tableCase) {
	ev := []byte(tc.EventJSON)
	if tc.Event != "" {
		var err error
		if ev, err = os.ReadFile(filepath.Join(tableDir, "events", tc.Event)); err != nil {
			t.Fatal(err)
		}
	}
	spec := []byte("{}")
	if tc.Transform.Kind != 0 {
		var err error
		if spec, err = yaml.Marshal(&tc.Transform); err != nil {
			t.Fatal(err)
		}
	}
	lookup := func(k string) (string, bool) { v, ok := tc.Env[k]; return v, ok }
	meta := Meta{Rule: "orders-to-finance", Bus: "orders"}
	if tc.Rule != "" {
		meta.Rule = tc.Rule
	}
	if tc.Bus != "" {
		meta.Bus = tc.Bus
	}
	res, err := Try(spec, "transform.yaml", lookup, ev, meta)
	if tc.Error != "" {
		if err == nil || !strings.Contains(err.Error(), tc.Error) {
			t.Fatalf("got %v, want an error containing %q", err, tc.Error)
		}
		var cl config.ErrorList
		var ee *EventError
		if !errors.As(err, &cl) && !errors.As(err, &ee) && !errors.Is(err, ErrTransform) {
			t.Errorf("error %T is not a config error, an event error or ErrTransform", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("%v\ntransform:\n%s", err, spec)
	}
	if tc.Body == nil {
		t.Fatalf("the case has neither body nor error; got body:\n%s", res.Body)
	}
	if string(res.Body) != *tc.Body {
		t.Errorf("body:\n got %s\nwant %s", res.Body, *tc.Body)
	}
	if res.ContentType != tc.ContentType {
		t.Errorf("content type %q, want %q", res.ContentType, tc.ContentType)
	}
	if strings.Contains(res.ContentType, "json") && !json.Valid(res.Body) {
		t.Errorf("%s body is not valid JSON: %s", res.ContentType, res.Body)
	}
	// The same transform through the config loader, as a target's.
	var cfg bytes.Buffer
	cfg.WriteString("rules:\n  - name: r\n    targets:\n      - id: t\n        type: http\n        url: https://x.example/\n        transform:\n")
	for _, l := range strings.Split(strings.TrimRight(string(spec), "\n"), "\n") {
		cfg.WriteString("          " + l + "\n")
	}
	for k, v := range tc.Env {
		t.Setenv(k, v)
	}
	if strings.Contains(string(spec), "key:") && !strings.Contains(string(spec), "${") {
		return // literal keys are for trying out only
	}
	c, err := config.Parse(cfg.Bytes(), "busbar.yaml")
	if err != nil {
		t.Fatalf("as a config: %v\n%s", err, cfg.Bytes())
	}
	tr, err := Compile(c.Rules[0].Targets[0].Transform, Options{})
	if err != nil {
		t.Fatal(err)
	}
	body, ct, err := tr.Apply(ev, meta)
	if err != nil || string(body) != string(res.Body) || ct != res.ContentType {
		t.Errorf("through the config: %s %q %v", body, ct, err)
	}
}
