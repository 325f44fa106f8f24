package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const destConfig = `connections:
  - name: crm-oauth
    type: oauth2_client_credentials
    oauth2:
      token_url: https://auth.example.com/token
      client_id: busbar
      client_secret: ${CLIENT_SECRET}
      scopes: [orders.write]
      body: {audience: crm}
    headers: {X-Tenant: acme}
  - name: fd
    type: basic
    basic: {username: "${FD_KEY}", password: X}
  - name: bk
    type: api_key
    api_key: {name: Authorization, value: literal-key}
destinations:
  - name: orders
    url: https://api.example.com/orders/{$.data.orderId}
    method: PUT
    connection: crm-oauth
    rate_limit_per_second: 50
  - {name: tickets, url: https://acme.freshdesk.com/api/v2/tickets, connection: fd}
rules:
  - name: r
    targets:
      - {id: crm, type: http, destination: orders, headers: {X-Order: "{$.data.orderId}"}, query: {src: "{$.source}"}}
      - {id: ding, type: dingtalk, url: "https://oapi.dingtalk.com/robot/send?access_token=tok-in-file", secret: "${DING_SECRET}", text: "Order <$.data.orderId> failed"}
      - {id: plain, type: http, url: https://crm.example.com/hook}
`

func TestDestinationsLoadLinkAndDefault(t *testing.T) {
	t.Setenv("CLIENT_SECRET", "cs-s3cret")
	t.Setenv("FD_KEY", "fd-s3cret")
	t.Setenv("DING_SECRET", "ding-s3cret")
	c, err := Parse([]byte(destConfig), "busbar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	crm := c.Rules[0].Targets[0]
	d := crm.ResolvedDestination()
	if d == nil || d.Name != "orders" || d.ResolvedConnection() == nil || d.ResolvedConnection().Name != "crm-oauth" {
		t.Fatalf("not linked: %+v", d)
	}
	if crm.Method != "" || crm.Timeout != 0 {
		t.Errorf("a destination target got a method or timeout of its own: %q %v", crm.Method, crm.Timeout)
	}
	if d.Timeout.D() != DefaultTimeout || c.Destinations[1].Method != "POST" {
		t.Errorf("destination defaults: %+v", c.Destinations)
	}
	if o := c.Connections[0].OAuth2; o.Method != "POST" || o.AuthStyle != "auto" || c.Connections[2].APIKey.In != "header" {
		t.Errorf("connection defaults: %+v %+v", o, c.Connections[2].APIKey)
	}

	// A clone is linked to its own copies.
	cl := c.Clone()
	cl.Connections[0].OAuth2.ClientSecret = "changed"
	if c.Connections[0].OAuth2.ClientSecret != "cs-s3cret" {
		t.Error("Clone shares the connection with the original")
	}
	if cl.Rules[0].Targets[0].ResolvedDestination() != &cl.Destinations[0] || cl.Destinations[0].ResolvedConnection() != &cl.Connections[0] {
		t.Error("Clone's targets point into the original")
	}

	r := c.Redacted()
	b, _ := json.Marshal(r)
	for _, leak := range []string{"s3cret", "literal-key", "tok-in-file", "acme\""} {
		if strings.Contains(string(b), leak) {
			t.Errorf("Redacted shows %q: %s", leak, b)
		}
	}
	if r.Connections[0].OAuth2.ClientSecret != "${CLIENT_SECRET}" || r.Connections[1].Basic.Username != "${FD_KEY}" ||
		r.Connections[1].Basic.Password != RedactedValue || r.Connections[2].APIKey.Value != RedactedValue ||
		r.Rules[0].Targets[1].Secret != "${DING_SECRET}" || r.Rules[0].Targets[1].URL != "https://oapi.dingtalk.com/"+RedactedValue ||
		r.Connections[0].OAuth2.Body["audience"] != RedactedValue {
		t.Errorf("redacted: %s", b)
	}
	if c.Connections[2].APIKey.Value != "literal-key" {
		t.Error("Redacted changed the original")
	}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "secret")
	os.WriteFile(f, []byte("from-file\n"), 0o600)
	if s, err := ReadSecret("file:" + f); err != nil || s != "from-file" {
		t.Errorf("ReadSecret = %q, %v", s, err)
	}
	if s, _ := ReadSecret("plain"); s != "plain" {
		t.Errorf("a plain value: %q", s)
	}
	src := `connections:
  - {name: a, type: basic, basic: {username: u, password: "file:` + f + `"}}
  - {name: b, type: api_key, api_key: {name: k, value: "file:` + filepath.Join(dir, "missing") + `"}}
`
	_, err := Parse([]byte(src), "busbar.yaml")
	if err == nil || !strings.Contains(err.Error(), "busbar.yaml:3:") || !strings.Contains(err.Error(), "connections[1].api_key.value: secret file") || strings.Contains(err.Error(), "connections[0]") {
		t.Errorf("missing secret file: %v", err)
	}
	c, err := Parse([]byte(src[:strings.Index(src, "  - {name: b")]), "busbar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Redacted().Connections[0].Basic.Password; p != "file:"+f {
		t.Errorf("a file reference is shown as itself, got %q", p)
	}
}

func TestConnectionErrors(t *testing.T) {
	checkErrors(t, "busbar.yaml", []errCase{
		{"connection type", "connections: [{name: c, type: oauth, basic: {username: u, password: p}}]\n", []string{
			`1:31 connections[0].type: "oauth" is not a connection type (use "basic", "api_key" or "oauth2_client_credentials")`}},
		{"block of another type", "connections: [{name: c, type: basic, api_key: {name: k, value: v}}]\n", []string{
			`1:15 connections[0].basic: a connection of type basic needs its basic: block`,
			`1:47 connections[0].api_key: api_key: applies to connections of type api_key only (this one is "basic")`}},
		{"oauth2 fields", `connections:
  - name: c
    type: oauth2_client_credentials
    oauth2: {token_url: ftp://x, client_secret: s, method: PUT, auth_style: basic, scopes: ["a b"]}
`, []string{
			`4:25 connections[0].oauth2.token_url: the URL must start with http:// or https://`,
			`4:13 connections[0].oauth2.client_id: missing client_id`,
			`4:60 connections[0].oauth2.method: "PUT" is not a method of token requests (use "POST" or "GET")`,
			`4:77 connections[0].oauth2.auth_style: "basic" is not an auth style`,
			`4:93 connections[0].oauth2.scopes[0]: a scope is one word`}},
		{"missing secret", "connections: [{name: c, type: api_key, api_key: {name: 'bad header', value: ''}}]\n", []string{
			`1:56 connections[0].api_key.name: "bad header" is not a valid HTTP header name`,
			`1:77 connections[0].api_key.value: missing value (write it as an environment variable reference`}},
		{"duplicate", "connections:\n  - {name: c, type: basic, basic: {username: u, password: p}}\n  - {name: c, type: basic, basic: {username: u, password: p}}\n", []string{
			`3:12 connections[1].name: connection "c" is declared twice (first at busbar.yaml:2:12 (connections[0].name))`}},
	})
}

func TestDestinationErrors(t *testing.T) {
	checkErrors(t, "busbar.yaml", []errCase{
		{"dangling connection", `connections: [{name: crm-auth, type: basic, basic: {username: u, password: p}}]
destinations:
  - {name: d, url: "https://x/{$.data.id}", connection: crm-aut}
`, []string{`3:57 destinations[0].connection: connection "crm-aut" is not declared (declare it under connections:; did you mean "crm-auth"?)`}},
		{"url and fields", `destinations:
  - {name: d, url: "https://{$.data.host}/x", method: get, rate_limit_per_second: 0, timeout: 1h}
  - {name: e, url: "https://x/{$.data[}"}
`, []string{
			`2:20 destinations[0].url: a placeholder cannot be in the URL's scheme or host`,
			`2:55 destinations[0].method: write the method in upper case: "GET"`,
			`2:83 destinations[0].rate_limit_per_second: 0 is out of range: use 1 to 100000`,
			`2:95 destinations[0].timeout: 1h is out of range: use 1ms to 15m`,
			`3:20 destinations[1].url: placeholder {$.data[}: invalid JSONPath`}},
		{"dangling destination", `destinations: [{name: orders-api, url: https://x}]
rules:
  - name: r
    targets: [{id: t, type: http, destination: order-api, method: PUT}]
`, []string{
			`4:48 rules[0].targets[0].destination: destination "order-api" is not declared (declare it under destinations:; did you mean "orders-api"?)`,
			`4:67 rules[0].targets[0].method: a target with a destination takes its method from the destination "order-api"; set it there`}},
		{"url and destination", `destinations: [{name: d, url: https://x}]
rules: [{name: r, targets: [{id: t, type: http, url: https://y, destination: d}]}]
`, []string{`2:54 rules[0].targets[0].url: give url or destination, not both`}},
		{"http target without either", "rules: [{name: r, targets: [{id: t, type: http}]}]\n", []string{
			`1:29 rules[0].targets[0].url: missing url`}},
	})
}

func TestChatTargetErrors(t *testing.T) {
	checkErrors(t, "busbar.yaml", []errCase{
		{"no text", "rules: [{name: r, targets: [{id: t, type: dingtalk, url: https://x}]}]\n", []string{
			`1:29 rules[0].targets[0].text: a dingtalk target needs text`}},
		{"secret on wecom", "rules: [{name: r, targets: [{id: t, type: wecom, url: https://x, text: hi, secret: s}]}]\n", []string{
			`1:84 rules[0].targets[0].secret: secret: signs dingtalk and feishu robot messages only (this target is "wecom")`}},
		{"bad placeholder", "rules: [{name: r, targets: [{id: t, type: slack, url: https://x, text: 'a <$.data[> b'}]}]\n", []string{
			`1:72 rules[0].targets[0].text: placeholder <$.data[>: invalid JSONPath`}},
		{"text on http", "rules: [{name: r, targets: [{id: t, type: http, url: https://x, text: hi, method: GET}]}]\n", []string{
			`1:71 rules[0].targets[0].text: text: applies to chat robot targets only`}},
		{"text and a template", `rules:
  - name: r
    targets:
      - {id: t, type: feishu, url: https://x, text: hi, transform: {form: data}}
`, []string{`4:53 rules[0].targets[0].text: give text or a transform that makes the text, not both`}},
	})
}

func TestSplitPlaceholders(t *testing.T) {
	lits, paths, err := SplitPlaceholders("https://x/{$.a}/{$['b}']}?q={$.c}", '{', '}')
	if err != nil || strings.Join(lits, "|") != "https://x/|/|?q=|" || strings.Join(paths, "|") != "$.a|$['b}']|$.c" {
		t.Errorf("%q %q %v", lits, paths, err)
	}
	if _, _, err := SplitPlaceholders("a {$.x", '{', '}'); err == nil {
		t.Error("an unclosed placeholder was accepted")
	}
	if lits, paths, _ := SplitPlaceholders("{no} <b>", '<', '>'); len(paths) != 0 || lits[0] != "{no} <b>" {
		t.Errorf("text without placeholders: %q %q", lits, paths)
	}
}

// TestTargetsDocExamplesLoad loads every complete YAML example of
// docs/targets.md (blocks that start at the top level and have no "...").
func TestTargetsDocExamplesLoad(t *testing.T) {
	doc, err := os.ReadFile("../docs/targets.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"CRM_TOKEN", "HELPDESK_API_KEY", "CI_TOKEN", "MAPS_KEY", "CRM_CLIENT_SECRET", "DINGTALK_TOKEN",
		"DINGTALK_SECRET", "WECOM_KEY", "FEISHU_HOOK", "FEISHU_SECRET", "SLACK_HOOK", "CI_API_TOKEN"} {
		t.Setenv(v, "x-"+strings.ToLower(v))
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(doc, -1)
	n := 0
	for _, b := range blocks {
		src := b[1]
		if len(src) == 0 || src[0] == ' ' || strings.Contains(string(src), "...") {
			continue
		}
		n++
		if _, err := Parse(src, "targets.md.yaml"); err != nil {
			t.Errorf("example does not load:\n%s\n%v", src, err)
		}
	}
	if n < 5 {
		t.Errorf("found only %d complete examples", n)
	}
}
