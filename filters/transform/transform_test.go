package transform

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/busbar/busbar/config"
)

const event = `{"specversion":"1.0","id":"e1","source":"shop","type":"order.created","data":{"orderId":"SO-1","amount":12345678901234567890,"phone":"13812345678"}}`

func TestCompileNothingToDo(t *testing.T) {
	for _, s := range []*config.Transform{nil, {}, {Form: "whole"}} {
		tr, err := Compile(s, Options{})
		if tr != nil || err != nil {
			t.Errorf("%+v: got %v, %v; want nil, nil", s, tr, err)
		}
	}
	var tr *Transformer
	body, ct, err := tr.Apply([]byte(event), Meta{})
	if string(body) != event || ct != ContentTypeCloudEvent || err != nil || !tr.Whole() || tr.Form() != "whole" {
		t.Errorf("nil transformer: %s %s %v", body, ct, err)
	}
	masked, err := Compile(&config.Transform{Mask: []config.Mask{{Path: "$.data.phone", Action: "remove"}}}, Options{})
	if err != nil || masked == nil || !masked.Whole() {
		t.Fatalf("masked whole: %v %v", masked, err)
	}
	body, ct, _ = masked.Apply([]byte(event), Meta{})
	if strings.Contains(string(body), "phone") || ct != ContentTypeCloudEvent {
		t.Errorf("masked: %s %s", body, ct)
	}
	if _, err := Compile(&config.Transform{Path: "$.a[?(@.b)]"}, Options{}); err == nil {
		t.Error("a bad spec compiled")
	}
}

func TestApplyErrorsArePermanent(t *testing.T) {
	tr, err := Compile(&config.Transform{Expr: "data.orderId / 2"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = tr.Apply([]byte(event), Meta{})
	if !errors.Is(err, ErrTransform) {
		t.Errorf("got %v", err)
	}
	_, _, err = tr.Apply([]byte(`{"data": [`), Meta{})
	if !errors.Is(err, ErrTransform) {
		t.Errorf("truncated event: %v", err)
	}
	big, _ := Compile(&config.Transform{Template: strings.Repeat("<busbar.event.json>", 50)}, Options{MaxBodyBytes: 1000})
	if _, _, err := big.Apply([]byte(event), Meta{}); !errors.Is(err, ErrTransform) {
		t.Errorf("too large: %v", err)
	}
}

func TestConcurrentApply(t *testing.T) {
	forms := []*config.Transform{
		{Paths: map[string]string{"id": "$.data.orderId"}, Template: `{"id": <id>, "r": <busbar.rule-name>}`},
		{Expr: `{"id": data.orderId, "r": rule}`},
	}
	for _, f := range forms {
		tr, err := Compile(f, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				rule := string(rune('a' + g))
				for i := 0; i < 200; i++ {
					body, _, err := tr.Apply([]byte(event), Meta{Rule: rule})
					if err != nil || !bytes.Contains(body, []byte(`"r":"`+rule+`"`)) {
						t.Errorf("goroutine %d: %s %v", g, body, err)
						return
					}
				}
			}(g)
		}
		wg.Wait()
	}
}

func post(t *testing.T, body string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	TestTransformHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/test-transform", strings.NewReader(body)))
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("answer is not JSON: %q", rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	return rec.Code, out
}

func errCode(out map[string]any) (string, string) {
	e, _ := out["error"].(map[string]any)
	code, _ := e["code"].(string)
	msg, _ := e["message"].(string)
	return code, msg
}

func TestHandler(t *testing.T) {
	status, out := post(t, `{"transform": {"paths": {"id": "$.data.orderId", "amount": "$.data.amount"}, "template": "{\"id\": <id>, \"amount\": <amount>, \"rule\": <busbar.rule-name>}"}, "event": `+event+`, "rule": "r1"}`)
	if status != 200 || out["content_type"] != ContentTypeJSON || out["body"] != `{"id":"SO-1","amount":12345678901234567890,"rule":"r1"}` || out["form"] != "template" {
		t.Errorf("%d %v", status, out)
	}
	if j, _ := out["json"].(map[string]any); j["id"] != "SO-1" {
		t.Errorf("json: %v", out["json"])
	}
	// The transform as YAML text, the event as a string.
	evStr, _ := json.Marshal(event)
	status, out = post(t, `{"transform": "paths:\n  id: $.data.orderId\ntemplate: Order <id>\n", "event": `+string(evStr)+`}`)
	if status != 200 || out["body"] != "Order SO-1" || out["content_type"] != ContentTypeText || out["json"] != nil {
		t.Errorf("%d %v", status, out)
	}
	// Bytes that are not UTF-8 come back in base64.
	status, out = post(t, `{"transform": {"form": "data"}, "event": {"datacontenttype": "image/png", "data_base64": "iVBORw=="}}`)
	if status != 200 || out["body_base64"] != "iVBORw==" || out["body"] != nil {
		t.Errorf("%d %v", status, out)
	}
}

func TestHandlerHostileInput(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		status     int
		code, msg  string
	}{
		{"empty", ``, 400, "MalformedRequest", "the body must be"},
		{"not JSON", `{"transform": {`, 400, "MalformedRequest", "the body must be"},
		{"unknown field", `{"transfrom": {}, "event": {}}`, 400, "MalformedRequest", "unknown field"},
		{"trailing data", `{"transform": {}, "event": {}} {}`, 400, "MalformedRequest", "unexpected data"},
		{"array", `[]`, 400, "MalformedRequest", ""},
		{"no transform", `{"event": {}}`, 400, "InvalidTransform", "JSON object, or a string"},
		{"transform a number", `{"transform": 1, "event": {}}`, 400, "InvalidTransform", ""},
		{"no event", `{"transform": {}}`, 400, "InvalidEvent", ""},
		{"event a list", `{"transform": {}, "event": [1]}`, 400, "InvalidEvent", ""},
		{"event string not JSON", `{"transform": {}, "event": "{nope"}`, 400, "InvalidEvent", "not valid JSON"},
		{"bad template", `{"transform": {"template": "{<x>: 1}", "paths": {"x": "$.id"}}, "event": {}}`, 400, "InvalidTransform", "transform.json:1:"},
		{"bad field", `{"transform": {"tempalte": "x"}, "event": {}}`, 400, "InvalidTransform", `did you mean "template"`},
		{"several problems", `{"transform": {"path": "$.a[", "mask": [{"path": "$"}]}, "event": {}}`, 400, "InvalidTransform", "\n"},
		{"env not expanded", `{"transform": {"constant": "${HOME}"}, "event": {}}`, 400, "InvalidTransform", "environment variable HOME is not set"},
		{"runtime failure", `{"transform": {"expr": "data.x * 2"}, "event": {"data": {"x": "s"}}}`, 400, "TransformFailed", "transform failed"},
		{"deep event", `{"transform": {"form": "data"}, "event": {"data": ` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}}`, 400, "TransformFailed", "nests deeper"},
		{"too large", `{"transform": {}, "event": {"x": "` + strings.Repeat("a", MaxTestTransformBody) + `"}}`, 413, "RequestTooLarge", "1 MiB"},
	} {
		status, out := post(t, tc.body)
		code, msg := errCode(out)
		if status != tc.status || code != tc.code || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: %d %s %q; want %d %s …%s…", tc.name, status, code, msg, tc.status, tc.code, tc.msg)
		}
	}
	rec := httptest.NewRecorder()
	TestTransformHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/test-transform", nil))
	if rec.Code != 405 || rec.Header().Get("Allow") != "POST" {
		t.Errorf("GET: %d", rec.Code)
	}
}

func TestTry(t *testing.T) {
	res, err := Try([]byte("expr: '{\"id\": data.orderId}'"), "t.yaml", nil, []byte(event), Meta{})
	if err != nil || string(res.Body) != `{"id":"SO-1"}` || res.Form != "expr" {
		t.Errorf("%+v %v", res, err)
	}
	_, err = Try([]byte("expr: 'data.'"), "t.yaml", nil, []byte(event), Meta{})
	var cl config.ErrorList
	if !errors.As(err, &cl) || !strings.HasPrefix(err.Error(), "t.yaml:1:") {
		t.Errorf("got %v", err)
	}
	_, err = Try([]byte("{}"), "t.yaml", nil, []byte(`"event"`), Meta{})
	var ee *EventError
	if !errors.As(err, &ee) {
		t.Errorf("got %v", err)
	}
	lookup := func(k string) (string, bool) { return map[string]string{"K": "0123456789abcdef-x"}[k], k == "K" }
	if _, err := Try([]byte("mask: [{path: $.data.phone, action: hash, key: '${K}'}]"), "t.yaml", lookup, []byte(event), Meta{}); err != nil {
		t.Error(err)
	}
}
