package pulsar

import (
	"net/url"
	"strings"
	"testing"
	"time"

	pc "github.com/apache/pulsar-client-go/pulsar"
)

func TestParseURL(t *testing.T) {
	u, _ := url.Parse("pulsar+ssl://p1,p2:6652?tenant=t1&namespace=ns&subscription=shared&batching=false&compression=zstd&ack_interval=0s&max_deliveries=5&publish_timeout=5s&tls_ca=/dev/null")
	c, err := parseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	if c.conn.URL != "pulsar+ssl://p1:6651,p2:6652" || c.tenant != "t1" || c.namespace != "ns" || c.subType != pc.Shared ||
		c.batching || c.compression != "zstd" || c.ackInterval != 0 || c.maxDeliveries != 5 || c.publishTimeout != 5*time.Second {
		t.Errorf("config %+v", c)
	}
	for raw, want := range map[string]string{
		"pulsar://":                         "needs a broker address",
		"pulsar://h?nope=1":                 `unknown URL option "nope"`,
		"pulsar://h?subscription=exclusive": "use key_shared",
		"pulsar://h?tls_ca=ca.pem":          "pulsar+ssl://",
		"pulsar://h?token=a&token_file=b":   "one of token",
		"pulsar://h?oauth2_client_id=x":     "issuer_url is required",
		"pulsar://h?partitions=3":           "needs admin=",
		"pulsar://h?admin=ftp://x":          "admin REST address",
		"pulsar://user:pw@h":                "takes no user info",
		"pulsar://h/path":                   "takes no path",
		"pulsar://h?compression=brotli":     "use none, lz4",
		"pulsar://h?oauth2_issuer_url=https://i&oauth2_client_id=a&oauth2_client_secret=b&admin=http://h:8080": "",
	} {
		u, _ := url.Parse(raw)
		_, err := parseURL(u)
		if err == nil {
			_, err = newAdmin(mustParse(t, u), nil)
		}
		switch {
		case want == "" && err != nil && !strings.Contains(err.Error(), "oauth2 authentication is not supported"):
			t.Errorf("%s: %v", raw, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: error %v, want one saying %q", raw, err, want)
		}
	}
}

func mustParse(t *testing.T, u *url.URL) config {
	c, err := parseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRedactURLHidesSecrets(t *testing.T) {
	u, _ := url.Parse("pulsar://h?token=s3cret&oauth2_client_secret=hush&tenant=t")
	got := redactURL(u)
	if strings.Contains(got, "s3cret") || strings.Contains(got, "hush") || !strings.Contains(got, "tenant=t") {
		t.Errorf("redacted %s", got)
	}
	_, err := parseURL(mustURL("pulsar://h?token=s3cret&batching=maybe"))
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %v", err)
	}
}

func mustURL(s string) *url.URL {
	u, _ := url.Parse(s)
	return u
}
