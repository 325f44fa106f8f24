package http

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/busbar/busbar/sinks"
)

// The expected signatures below follow each vendor's documented algorithm,
// written out again here rather than calling the code under test.

// dingTalkExpected: string_to_sign = timestamp + "\n" + secret, HmacSHA256
// keyed with the secret, Base64, then URL-encoded into the query.
func dingTalkExpected(ts, secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	io.WriteString(m, ts+"\n"+secret)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// feishuExpected: timestamp + "\n" + secret is the HMAC-SHA256 key, the
// message is empty; Base64.
func feishuExpected(ts, secret string) string {
	m := hmac.New(sha256.New, []byte(ts+"\n"+secret))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// TestSignatureVectors pins the signatures to fixed inputs (values from the
// documented algorithms, computed independently with Python's hmac module:
// hmac.new(key, msg, sha256) then base64).
func TestSignatureVectors(t *testing.T) {
	if got, want := DingTalkSign(1700000000000, "SECexample"), dingTalkExpected("1700000000000", "SECexample"); got != want {
		t.Errorf("DingTalk sign %s, want %s", got, want)
	}
	if got, want := FeishuSign(1700000000, "example"), feishuExpected("1700000000", "example"); got != want {
		t.Errorf("Feishu sign %s, want %s", got, want)
	}
	// Fixed vectors, so that a change to both the code and the helper above
	// cannot go unnoticed.
	if got := DingTalkSign(1700000000000, "SECexample"); got != "uroalHrWHORz59talE1o26b8HuX2kOp8WlAN91F9Pj0=" {
		t.Errorf("DingTalk vector: %s", got)
	}
	if got := FeishuSign(1700000000, "example"); got != "IDYtqgwsyU5irwQ/8nvd4ncBjc/KPCpVGkxbLfWDsyg=" {
		t.Errorf("Feishu vector: %s", got)
	}
}

type chatServer struct {
	query  url.Values
	raw    string
	path   string
	body   map[string]any
	answer string
	status int
}

func (c *chatServer) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) {
	b, _ := io.ReadAll(r.Body)
	c.query, c.raw, c.path = r.URL.Query(), r.URL.RawQuery, r.URL.Path
	c.body = nil
	json.Unmarshal(b, &c.body)
	if c.status != 0 {
		w.WriteHeader(c.status)
	}
	io.WriteString(w, c.answer)
}

func chatSink(t *testing.T, yaml string) sinks.Sink {
	t.Helper()
	t.Setenv("ROBOT_SECRET", "SECtest-secret")
	return destSink(t, yaml)
}

const chatEvent = `{"specversion":"1.0","id":"e-1","source":"shop","type":"order.failed","data":{"orderId":"o-7","reason":"card \"declined\"","amount":12.5}}`

func TestDingTalk(t *testing.T) {
	cs := &chatServer{answer: `{"errcode":0,"errmsg":"ok"}`}
	srv := httptest.NewServer(cs)
	defer srv.Close()
	s := chatSink(t, fmt.Sprintf(`
rules:
  - name: r
    targets:
      - id: ding
        type: dingtalk
        url: "%s/robot/send?access_token=tok123"
        secret: "${ROBOT_SECRET}"
        text: "Order <$.data.orderId> failed: <$.data.reason> (<$.data.amount>)<$.data.none>"
`, srv.URL))
	before := time.Now().UnixMilli()
	if err := deliver(s, chatEvent); err != nil {
		t.Fatal(err)
	}
	after := time.Now().UnixMilli()
	want := map[string]any{"msgtype": "text", "text": map[string]any{"content": `Order o-7 failed: card "declined" (12.5)`}}
	if fmt.Sprint(cs.body) != fmt.Sprint(want) {
		t.Errorf("body %v, want %v", cs.body, want)
	}
	if cs.path != "/robot/send" || cs.query.Get("access_token") != "tok123" {
		t.Errorf("webhook %s %v", cs.path, cs.query)
	}
	ts := cs.query.Get("timestamp")
	n, _ := strconv.ParseInt(ts, 10, 64)
	if n < before || n > after {
		t.Errorf("timestamp %s is not the current time in milliseconds", ts)
	}
	sign := dingTalkExpected(ts, "SECtest-secret")
	if cs.query.Get("sign") != sign {
		t.Errorf("sign %s, want %s", cs.query.Get("sign"), sign)
	}
	if !strings.Contains(cs.raw, "sign="+url.QueryEscape(sign)) {
		t.Errorf("sign is not URL-encoded in the query: %s", cs.raw)
	}

	// Errors come as 200 with a code: too fast is retried, a bad signature
	// dead-letters.
	cs.answer = `{"errcode":130101,"errmsg":"send too fast, exceed 20 times per minute"}`
	if err := deliver(s, chatEvent); err == nil || sinks.IsPermanent(err) || !strings.Contains(err.Error(), "130101") {
		t.Errorf("too fast: %v", err)
	}
	cs.answer = `{"errcode":310000,"errmsg":"sign not match"}`
	err := deliver(s, chatEvent)
	if err == nil || !sinks.IsPermanent(err) || !strings.Contains(err.Error(), "sign not match") {
		t.Errorf("bad signature: %v", err)
	}
	if strings.Contains(err.Error(), "tok123") || strings.Contains(err.Error(), "robot/send") {
		t.Errorf("the error shows the webhook's token: %v", err)
	}
}

func TestFeishu(t *testing.T) {
	cs := &chatServer{answer: `{"code":0,"msg":"success","data":{}}`}
	srv := httptest.NewServer(cs)
	defer srv.Close()
	s := chatSink(t, fmt.Sprintf(`
rules:
  - name: r
    targets:
      - {id: lark, type: feishu, url: "%s/open-apis/bot/v2/hook/abc", secret: "${ROBOT_SECRET}", text: "Order <$.data.orderId> failed"}
`, srv.URL))
	before := time.Now().Unix()
	if err := deliver(s, chatEvent); err != nil {
		t.Fatal(err)
	}
	ts, _ := cs.body["timestamp"].(string)
	n, _ := strconv.ParseInt(ts, 10, 64)
	if n < before || n > time.Now().Unix() {
		t.Errorf("timestamp %q is not the current time in seconds", ts)
	}
	if cs.body["sign"] != feishuExpected(ts, "SECtest-secret") {
		t.Errorf("sign %v, want %s", cs.body["sign"], feishuExpected(ts, "SECtest-secret"))
	}
	if cs.body["msg_type"] != "text" || fmt.Sprint(cs.body["content"]) != "map[text:Order o-7 failed]" {
		t.Errorf("body %v", cs.body)
	}
	cs.answer = `{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}`
	if err := deliver(s, chatEvent); err == nil || !sinks.IsPermanent(err) || !strings.Contains(err.Error(), "19021") {
		t.Errorf("bad signature: %v", err)
	}
	cs.answer = `{"code":11232,"msg":"frequency limited"}`
	if err := deliver(s, chatEvent); err == nil || sinks.IsPermanent(err) {
		t.Errorf("frequency limited should be retried: %v", err)
	}
	cs.answer = `{"Extra":null,"StatusCode":0,"StatusMessage":"success"}` // the older answer
	if err := deliver(s, chatEvent); err != nil {
		t.Errorf("older success answer: %v", err)
	}

	// Without a secret, nothing is signed.
	s = chatSink(t, fmt.Sprintf(`
rules: [{name: r, targets: [{id: lark, type: feishu, url: "%s/hook/abc", text: "hi"}]}]
`, srv.URL))
	if err := deliver(s, chatEvent); err != nil {
		t.Fatal(err)
	}
	if _, signed := cs.body["sign"]; signed || fmt.Sprint(cs.body) != "map[content:map[text:hi] msg_type:text]" {
		t.Errorf("unsigned body %v", cs.body)
	}
}

func TestWeComAndSlack(t *testing.T) {
	cs := &chatServer{answer: `{"errcode":0,"errmsg":"ok"}`}
	srv := httptest.NewServer(cs)
	defer srv.Close()
	s := chatSink(t, fmt.Sprintf(`
rules: [{name: r, targets: [{id: wx, type: wecom, url: "%s/cgi-bin/webhook/send?key=k1", text: "<$.data.orderId>: <$.data.reason>"}]}]
`, srv.URL))
	if err := deliver(s, chatEvent); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(cs.body) != `map[msgtype:text text:map[content:o-7: card "declined"]]` || cs.query.Get("key") != "k1" {
		t.Errorf("wecom body %v query %v", cs.body, cs.query)
	}
	cs.answer = `{"errcode":45009,"errmsg":"api freq out of limit"}`
	if err := deliver(s, chatEvent); err == nil || sinks.IsPermanent(err) {
		t.Errorf("wecom rate limit should be retried: %v", err)
	}
	cs.answer = `{"errcode":93000,"errmsg":"invalid webhook url"}`
	if err := deliver(s, chatEvent); err == nil || !sinks.IsPermanent(err) {
		t.Errorf("wecom bad key should dead-letter: %v", err)
	}

	cs.answer = "ok"
	s = chatSink(t, fmt.Sprintf(`
rules: [{name: r, targets: [{id: sl, type: slack, url: "%s/services/T0/B0/x", text: "Order <$.data.orderId> failed"}]}]
`, srv.URL))
	if err := deliver(s, chatEvent); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(cs.body) != "map[text:Order o-7 failed]" {
		t.Errorf("slack body %v", cs.body)
	}
	cs.status, cs.answer = 404, "channel_not_found"
	if err := deliver(s, chatEvent); err == nil || !sinks.IsPermanent(err) || !strings.Contains(err.Error(), "channel_not_found") {
		t.Errorf("slack 404: %v", err)
	}
}

// TestChatMessageFromTransform: without text, the transformed body is the
// message: text as the text, a JSON object as the whole vendor message.
func TestChatMessageFromTransform(t *testing.T) {
	cs := &chatServer{answer: `{"errcode":0}`}
	srv := httptest.NewServer(cs)
	defer srv.Close()
	s := chatSink(t, fmt.Sprintf(`
rules:
  - name: r
    targets:
      - id: ding
        type: dingtalk
        url: "%s/robot/send"
        transform: {paths: {id: $.data.orderId}, template: "order <id> failed"}
`, srv.URL))
	err := s.Deliver(t.Context(), sinks.Delivery{EventID: "e", Event: []byte(chatEvent), Body: []byte("order o-7 failed"), ContentType: "text/plain; charset=utf-8"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(cs.body) != "map[msgtype:text text:map[content:order o-7 failed]]" {
		t.Errorf("text body %v", cs.body)
	}
	md := `{"msgtype":"markdown","markdown":{"title":"o-7","text":"**o-7** failed"}}`
	err = s.Deliver(t.Context(), sinks.Delivery{EventID: "e", Event: []byte(chatEvent), Body: []byte(md), ContentType: "application/json"})
	if err != nil {
		t.Fatal(err)
	}
	if cs.body["msgtype"] != "markdown" {
		t.Errorf("markdown body %v", cs.body)
	}
}
