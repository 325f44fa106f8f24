package pulsar

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// admin speaks the few calls of Pulsar's admin REST API (v2) busbar needs:
// create a topic, set its retention. Creating and configuring topics is not
// part of Pulsar's binary protocol, so without an admin URL busbar leaves
// both to the broker (auto topic creation) and the namespace's policies.
type admin struct {
	base   string // http(s)://host:8080
	hc     *http.Client
	token  func() (string, error)
	log    *slog.Logger
	warned sync.Once
}

func newAdmin(c config, log *slog.Logger) (*admin, error) {
	if c.admin == "" {
		return nil, nil
	}
	if c.conn.OAuth2 != nil {
		return nil, fmt.Errorf("admin= with oauth2 authentication is not supported: create the topics and set their retention with Pulsar's tools, and leave admin out")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if strings.HasPrefix(c.admin, "https://") {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.conn.TLS.InsecureSkipVerify} //nolint:gosec // opt-in by the user
		if f := c.conn.TLS.CAFile; f != "" {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("pulsar admin TLS CA: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("pulsar admin TLS CA file %s holds no PEM certificate", f)
			}
			tc.RootCAs = pool
		}
		if c.conn.TLS.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(c.conn.TLS.CertFile, c.conn.TLS.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("pulsar admin TLS client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		tr.TLSClientConfig = tc
	}
	timeout := c.conn.OperationTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	a := &admin{base: c.admin, hc: &http.Client{Transport: tr, Timeout: timeout}, log: log}
	switch {
	case c.conn.Token != "":
		tok := c.conn.Token
		a.token = func() (string, error) { return tok, nil }
	case c.conn.TokenFile != "":
		f := c.conn.TokenFile
		a.token = func() (string, error) {
			b, err := os.ReadFile(f)
			return strings.TrimSpace(string(b)), err
		}
	}
	return a, nil
}

// topicPath is the REST path of a persistent topic.
func topicPath(tenant, namespace, local string) string {
	return "/admin/v2/persistent/" + url.PathEscape(tenant) + "/" + url.PathEscape(namespace) + "/" + url.PathEscape(local)
}

func (a *admin) do(ctx context.Context, method, path string, body any) (int, string, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, "", err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return 0, "", err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != nil {
		tok, err := a.token()
		if err != nil {
			return 0, "", fmt.Errorf("pulsar admin token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("pulsar admin %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(msg)), nil
}

// createTopic creates a topic (partitioned when partitions > 0) unless it
// exists, and reports whether it created it.
func (a *admin) createTopic(ctx context.Context, path string, partitions int) (bool, error) {
	method, p, body := http.MethodPut, path, any(nil)
	if partitions > 0 {
		p, body = path+"/partitions", partitions
	}
	code, msg, err := a.do(ctx, method, p, body)
	switch {
	case err != nil:
		return false, err
	case code == http.StatusConflict:
		return false, nil
	case code/100 != 2:
		return false, fmt.Errorf("pulsar admin: creating topic %s: %d %s", path, code, msg)
	}
	return true, nil
}

// setRetention sets a topic's retention: minutes and megabytes, -1 for no
// limit. Topic-level policies must be enabled on the brokers
// (topicLevelPoliciesEnabled, the default since Pulsar 3.0); when they are
// not, busbar warns once and leaves retention to the namespace's policy.
func (a *admin) setRetention(ctx context.Context, path string, minutes, mb int64) error {
	body := map[string]int64{"retentionTimeInMinutes": minutes, "retentionSizeInMB": mb}
	code, msg, err := a.do(ctx, http.MethodPost, path+"/retention", body)
	switch {
	case err != nil:
		return err
	case code/100 == 2:
		return nil
	case code == http.StatusMethodNotAllowed || strings.Contains(strings.ToLower(msg), "topic level policies"):
		a.warned.Do(func() {
			a.log.Warn("pulsar: topic-level policies are disabled on the brokers; retention comes from the namespace's policy (set it with pulsar-admin namespaces set-retention)", "status", code, "answer", msg)
		})
		return nil
	}
	return fmt.Errorf("pulsar admin: setting retention of %s: %d %s", path, code, msg)
}

// retentionOf converts TopicOptions to Pulsar's units: minutes (rounded
// up) and megabytes per partition (rounded up), -1 for no limit.
func retentionOf(maxAge time.Duration, maxBytes int64, partitions int) (minutes, mb int64) {
	minutes, mb = -1, -1
	if maxAge > 0 {
		minutes = int64((maxAge + time.Minute - 1) / time.Minute)
	}
	if maxBytes > 0 {
		per := maxBytes / int64(max(partitions, 1))
		mb = max((per+(1<<20)-1)>>20, 1)
	}
	return minutes, mb
}
