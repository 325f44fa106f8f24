package filters

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestExplain(t *testing.T) {
	ev := []byte(`{"specversion":"1.0","id":"1","source":"erp","type":"order.created","data":{"amount":50,"items":[{"sku":"A","qty":1},{"sku":"B","qty":2}]}}`)
	cases := []struct {
		name, pattern string
		match         bool
		failed        string
		reason        string
	}{
		{"match", `{"source":["erp"],"data":{"amount":[{"numeric":[">",10]}]}}`, true, "", ""},
		{"first failing field in pattern order", `{"source":["crm"],"data":{"amount":[{"numeric":[">",100]}]}}`, false, "source", `the event has "erp"; the pattern wants ["crm"]`},
		{"second field", `{"source":["erp"],"data":{"amount":[{"numeric":[">",100]}]}}`, false, "data.amount", `the event has 50; the pattern wants [{"numeric":[">",100]}]`},
		{"absent field", `{"subject":["x"]}`, false, "subject", "the event has no value here"},
		{"array elements", `{"data":{"items":{"sku":["A"],"qty":[2]}}}`, false, "", "not within the same array element"},
		{"or: best branch", `{"$or":[{"type":["x"],"source":["y"]},{"source":["erp"],"data":{"amount":[1]}}]}`, false, "data.amount", "the event has 50"},
		{"aws alias", `{"detail-type":["order.created"],"detail":{"amount":[50]}}`, true, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := Explain([]byte(c.pattern), ev)
			if err != nil {
				t.Fatal(err)
			}
			if res.Match != c.match || res.FailedField != c.failed || !strings.Contains(res.Reason, c.reason) {
				t.Errorf("got match=%v failed=%q reason=%q; want %v %q %q", res.Match, res.FailedField, res.Reason, c.match, c.failed, c.reason)
			}
		})
	}
}

func TestExplainAWSEvent(t *testing.T) {
	aws := []byte(`{"version":"0","id":"x","detail-type":"Object Created","source":"aws.s3","account":"1","time":"2024-01-01T00:00:00Z","region":"us-east-1","resources":["arn:aws:s3:::b"],"detail":{"bucket":{"name":"b"}}}`)
	res, err := Explain([]byte(`{"source":["aws.s3"],"detail-type":["Object Created"],"detail":{"bucket":{"name":["b"]}},"resources":["arn:aws:s3:::b"]}`), aws)
	if err != nil || !res.Match {
		t.Fatalf("AWS-shaped event: %+v %v", res, err)
	}
}

func TestExplainRuleFilter(t *testing.T) {
	ev := []byte(filterEvent)
	res, err := ExplainRule(Rule{Pattern: []byte(`{"source":["erp"]}`), Filter: `data.amount > 1000`}, ev)
	if err != nil {
		t.Fatal(err)
	}
	if res.Match || res.Filter == nil || *res.Filter || !strings.Contains(res.Reason, "filter") {
		t.Errorf("got %+v", res)
	}
}

func post(t *testing.T, h http.Handler, method, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, "/v1/test-pattern", strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("response is not JSON: %q", rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	return rec.Code, out
}

func TestTestPatternHandler(t *testing.T) {
	h := TestPatternHandler()
	ev := `{"specversion":"1.0","id":"1","source":"erp","type":"t","data":{"n":5}}`

	code, out := post(t, h, "POST", `{"pattern":{"source":["erp"]},"event":`+ev+`}`)
	if code != 200 || out["Result"] != true {
		t.Errorf("match: %d %v", code, out)
	}
	code, out = post(t, h, "POST", `{"pattern":{"data":{"n":[{"numeric":[">",9]}]}},"event":`+ev+`}`)
	expl, _ := out["explanation"].(map[string]any)
	if code != 200 || out["Result"] != false || expl["failedField"] != "data.n" {
		t.Errorf("no match: %d %v", code, out)
	}
	// EventBridge's TestEventPattern shape: JSON in strings.
	pat, _ := json.Marshal(`{"source":["erp"]}`)
	evs, _ := json.Marshal(ev)
	code, out = post(t, h, "POST", `{"EventPattern":`+string(pat)+`,"event":`+string(evs)+`}`)
	if code != 200 || out["Result"] != true {
		t.Errorf("string form: %d %v", code, out)
	}
	code, out = post(t, h, "POST", `{"pattern":{"source":["erp"]},"event":`+ev+`,"filter":"data.n > 3"}`)
	if code != 200 || out["Result"] != true {
		t.Errorf("filter: %d %v", code, out)
	}

	bad := []struct {
		name, method, body, code string
		status                   int
	}{
		{"huge body", "POST", `{"pattern":{"source":["` + strings.Repeat("x", 2<<20) + `"]},"event":{}}`, "RequestTooLarge", 400},
		{"malformed JSON", "POST", `{"pattern":`, "MalformedRequest", 400},
		{"not an object", "POST", `[1,2]`, "MalformedRequest", 400},
		{"unknown field", "POST", `{"patern":{}}`, "MalformedRequest", 400},
		{"trailing data", "POST", `{"event":` + ev + `} {}`, "MalformedRequest", 400},
		{"pattern wrong type", "POST", `{"pattern":5,"event":` + ev + `}`, "InvalidEventPattern", 400},
		{"pattern string not JSON", "POST", `{"pattern":"{nope","event":` + ev + `}`, "InvalidEventPattern", 400},
		{"invalid pattern", "POST", `{"pattern":{"source":"erp"},"event":` + ev + `}`, "InvalidEventPattern", 400},
		{"event wrong type", "POST", `{"pattern":{},"event":[1]}`, "InvalidEvent", 400},
		{"event missing", "POST", `{"pattern":{}}`, "InvalidEvent", 400},
		{"event string not JSON", "POST", `{"pattern":{},"event":"{x"}`, "InvalidEvent", 400},
		{"filter wrong type", "POST", `{"pattern":{},"event":` + ev + `,"filter":5}`, "MalformedRequest", 400},
		{"filter invalid", "POST", `{"pattern":{},"event":` + ev + `,"filter":"source =="}`, "InvalidFilter", 400},
		{"GET", "GET", ``, "MethodNotAllowed", 405},
	}
	for _, c := range bad {
		code, out := post(t, h, c.method, c.body)
		e, _ := out["error"].(map[string]any)
		if code != c.status || e["code"] != c.code || e["message"] == "" {
			t.Errorf("%s: %d %v, want %d %s", c.name, code, out, c.status, c.code)
		}
	}
	// The error for an invalid pattern points into it.
	_, out = post(t, h, "POST", `{"pattern":{"data":{"a":[{"numeric":[">","x"]}]}},"event":`+ev+`}`)
	if msg := out["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "data.a[0].numeric") {
		t.Errorf("message %q does not point into the pattern", msg)
	}
}
