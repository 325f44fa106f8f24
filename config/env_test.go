package config

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestExpandEnv(t *testing.T) {
	env := map[string]string{"HOST": "crm.example.com", "EMPTY": "", "TOKEN": "s3cret"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, tc := range []struct{ in, out, err string }{
		{in: "plain", out: "plain"},
		{in: "https://${HOST}/hook", out: "https://crm.example.com/hook"},
		{in: "${HOST}${HOST}", out: "crm.example.comcrm.example.com"},
		{in: "${UNSET:-5s}", out: "5s"},
		{in: "${EMPTY:-fallback}", out: "fallback"},
		{in: "${EMPTY}", out: ""},
		{in: "${UNSET:-}", out: ""},
		{in: "$HOST and $", out: "$HOST and $"},
		{in: "$${HOST}", out: "${HOST}"},
		{in: "a$${b", out: "a${b"},
		{in: "${UNSET}", err: "environment variable UNSET is not set (set it, or give a default: ${UNSET:-value})"},
		{in: "${HOST", err: `"${HOST" has no closing "}"`},
		{in: "${1X}", err: "${1X} is not a valid environment variable reference"},
		{in: "${}", err: "${} is not a valid"},
	} {
		out, _, err := expandEnv(tc.in, lookup)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("%q: error leaks a value", tc.in)
			}
		case err != nil || out != tc.out:
			t.Errorf("%q: got %q, %v; want %q", tc.in, out, err, tc.out)
		}
	}
}

const envConfig = `transport: ${TRANSPORT:-embedded://}
rules:
  - name: r
    targets:
      - id: t
        type: http
        url: https://${CRM_HOST}/hook
        timeout: ${CRM_TIMEOUT:-3s}
        concurrency: ${CRM_CONCURRENCY:-4}
        headers:
          Authorization: Bearer ${CRM_TOKEN}
          X-Static: literal-secret
`

func TestEnvInConfig(t *testing.T) {
	t.Setenv("CRM_HOST", "crm.example.com")
	t.Setenv("CRM_TOKEN", "s3cret-token")
	c, err := Parse([]byte(envConfig), "busbar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tg := c.Rules[0].Targets[0]
	if tg.URL != "https://crm.example.com/hook" || tg.Headers["Authorization"] != "Bearer s3cret-token" ||
		tg.Timeout.String() != "3s" || tg.Concurrency != 4 || c.Transport != "embedded://" {
		t.Errorf("expanded: %+v", tg)
	}

	// Redacted shows the references, hides literal header values, and
	// leaves the original alone.
	r := c.Redacted()
	rt := r.Rules[0].Targets[0]
	if rt.Headers["Authorization"] != "Bearer ${CRM_TOKEN}" || rt.Headers["X-Static"] != RedactedValue || rt.URL != "https://${CRM_HOST}/hook" {
		t.Errorf("redacted: %+v", rt)
	}
	if c.Rules[0].Targets[0].Headers["Authorization"] != "Bearer s3cret-token" {
		t.Error("Redacted changed the original")
	}
	b, _ := json.Marshal(r)
	if strings.Contains(string(b), "s3cret") || strings.Contains(string(b), "literal-secret") {
		t.Errorf("redacted JSON leaks: %s", b)
	}
}

func TestEnvErrors(t *testing.T) {
	t.Setenv("CRM_HOST", "crm.example.com")
	t.Setenv("CRM_TIMEOUT", "5 seconds")
	t.Setenv("CRM_CONCURRENCY", "lots-of-s3cret")
	_, err := Parse([]byte(envConfig), "busbar.yaml")
	want := strings.Join([]string{
		`busbar.yaml:8:18: rules[0].targets[0].timeout: the value of "${CRM_TIMEOUT:-3s}" is not a duration (use Go syntax like "5s", "1m30s")`,
		`busbar.yaml:9:22: rules[0].targets[0].concurrency: the value of "${CRM_CONCURRENCY:-4}" is not a whole number (write digits only, e.g. 16)`,
		`busbar.yaml:11:26: rules[0].targets[0].headers.Authorization: environment variable CRM_TOKEN is not set (set it, or give a default: ${CRM_TOKEN:-value})`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

func TestRedactedPasswords(t *testing.T) {
	c := &Config{
		Transport: "nats://user:pw@nats:4222",
		Rules: []Rule{{Name: "r", Targets: []Target{{ID: "t", Type: "http", URL: "https://u:pw@x.example/a",
			Headers: map[string]string{"Authorization": "Basic abc"}}}}},
	}
	r := c.Redacted()
	if r.Transport != "nats://user:xxxxx@nats:4222" || r.Rules[0].Targets[0].URL != "https://u:xxxxx@x.example/a" ||
		r.Rules[0].Targets[0].Headers["Authorization"] != RedactedValue {
		t.Errorf("%+v", r)
	}
}
