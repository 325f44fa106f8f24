// Package pclient turns what busbar knows about reaching a Pulsar cluster
// (service URL, token or OAuth 2.0 authentication, TLS, timeouts) into
// apache/pulsar-client-go client options, so the transport, the Pulsar
// source and the Pulsar sink connect the same way. It also holds the small
// helpers they share: the slog adapter for the client's logs, the
// classification of errors retrying cannot fix, and the names of busbar's
// message properties. It knows nothing about buses, rules or targets.
package pclient

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	pc "github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
)

// Schemes of Pulsar service URLs.
const (
	SchemePlain = "pulsar"
	SchemeTLS   = "pulsar+ssl"
)

// Conn is how to reach one Pulsar cluster.
type Conn struct {
	// URL is the service URL: pulsar://host:6650[,host2:6650] or
	// pulsar+ssl://host:6651 (TLS).
	URL string

	// Token authenticates with a JWT (Pulsar's token authentication, what
	// TDMQ for Pulsar hands out). TokenFile reads it from a file at every
	// connection instead (so a rotated token is picked up).
	Token     string
	TokenFile string
	// OAuth2 authenticates with the OAuth 2.0 client credentials flow.
	OAuth2 *OAuth2

	TLS TLS

	// ListenerName picks one of the brokers' advertised listeners.
	ListenerName string
	// ConnectTimeout bounds establishing one TCP (and TLS) connection
	// (default 10s); OperationTimeout bounds one request to the broker:
	// lookups, creating producers and consumers (default 30s).
	ConnectTimeout   time.Duration
	OperationTimeout time.Duration
}

// OAuth2 is Pulsar's OAuth 2.0 client credentials flow: the client asks the
// issuer for a token with the client id and secret (or with a key file
// holding them) and sends it to the brokers.
type OAuth2 struct {
	IssuerURL    string
	Audience     string
	Scope        string
	ClientID     string
	ClientSecret string
	// PrivateKey is a key file (JSON with client_id and client_secret, as
	// StreamNative and Pulsar tooling write it), instead of ClientID and
	// ClientSecret.
	PrivateKey string
}

// TLS secures connections of a pulsar+ssl:// URL.
type TLS struct {
	CAFile             string // PEM CAs trusted for the brokers (default: the system's)
	CertFile, KeyFile  string // client certificate, for mutual TLS
	InsecureSkipVerify bool
	// VerifyHostname checks the broker's certificate names its host.
	VerifyHostname bool
}

// Default timeouts.
const (
	DefaultConnectTimeout   = 10 * time.Second
	DefaultOperationTimeout = 30 * time.Second
)

// Check reports what is wrong with c, without touching the network.
func (c Conn) Check() error {
	u, err := url.Parse(c.URL)
	if err != nil {
		return fmt.Errorf("pulsar URL: not a URL (write pulsar://host:6650 or pulsar+ssl://host:6651)")
	}
	if u.Scheme != SchemePlain && u.Scheme != SchemeTLS {
		return fmt.Errorf("pulsar URL: scheme %q is not pulsar or pulsar+ssl", u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("pulsar URL: no host (write %s://host:6650)", u.Scheme)
	}
	if c.TLS != (TLS{}) && u.Scheme != SchemeTLS {
		return fmt.Errorf("pulsar: TLS settings need a pulsar+ssl:// URL")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("pulsar TLS: give both a client certificate and its key, or neither")
	}
	n := 0
	for _, set := range []bool{c.Token != "", c.TokenFile != "", c.OAuth2 != nil} {
		if set {
			n++
		}
	}
	if n > 1 {
		return errors.New("pulsar: use one of token, token_file and oauth2")
	}
	if o := c.OAuth2; o != nil {
		if o.IssuerURL == "" {
			return errors.New("pulsar oauth2: issuer_url is required")
		}
		if o.PrivateKey == "" && (o.ClientID == "" || o.ClientSecret == "") {
			return errors.New("pulsar oauth2: give client_id and client_secret, or private_key")
		}
		if o.PrivateKey != "" && o.ClientSecret != "" {
			return errors.New("pulsar oauth2: give client_secret or private_key, not both")
		}
	}
	return nil
}

// Reachable dials the brokers of the URL over TCP (up to ConnectTimeout
// each) and returns nil as soon as one accepts, else why none did: a clear
// "connection refused" or "i/o timeout" before the client's own retries
// blur it into a timeout.
func (c Conn) Reachable(ctx context.Context) error {
	u, err := url.Parse(c.URL)
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range strings.Split(u.Host, ",") {
		d := net.Dialer{Timeout: orDefault(c.ConnectTimeout, DefaultConnectTimeout)}
		conn, err := d.DialContext(ctx, "tcp", h)
		if err == nil {
			conn.Close()
			return nil
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("cannot connect to %s: %w", u.Host, errors.Join(errs...))
}

// ClientOptions returns the client options of c; log receives the client's
// own log lines (its info chatter at debug).
func (c Conn) ClientOptions(log *slog.Logger) (pc.ClientOptions, error) {
	if err := c.Check(); err != nil {
		return pc.ClientOptions{}, err
	}
	connect := orDefault(c.ConnectTimeout, DefaultConnectTimeout)
	o := pc.ClientOptions{
		URL:               c.URL,
		ConnectionTimeout: connect,
		// The client waits for a broker's handshake answer as long as its
		// keep-alive interval: without this a listener that accepts and
		// never answers holds every attempt for 30s, whatever the timeouts.
		KeepAliveInterval: connect,
		OperationTimeout:  orDefault(c.OperationTimeout, DefaultOperationTimeout),
		ListenerName:      c.ListenerName,
		Description:       "busbar",
	}
	if log != nil {
		o.Logger = Logger(log)
	}
	if strings.HasPrefix(c.URL, SchemeTLS+"://") {
		o.TLSTrustCertsFilePath = c.TLS.CAFile
		o.TLSCertificateFile = c.TLS.CertFile
		o.TLSKeyFilePath = c.TLS.KeyFile
		o.TLSAllowInsecureConnection = c.TLS.InsecureSkipVerify
		o.TLSValidateHostname = c.TLS.VerifyHostname
		o.TLSMinVersion = tls.VersionTLS12
		for _, f := range []string{c.TLS.CAFile, c.TLS.CertFile, c.TLS.KeyFile} {
			if f == "" {
				continue
			}
			if _, err := os.Stat(f); err != nil {
				return o, fmt.Errorf("pulsar TLS: %w", err)
			}
		}
	}
	switch {
	case c.Token != "":
		o.Authentication = pc.NewAuthenticationToken(c.Token)
	case c.TokenFile != "":
		if _, err := os.Stat(c.TokenFile); err != nil {
			return o, fmt.Errorf("pulsar token_file: %w", err)
		}
		o.Authentication = pc.NewAuthenticationTokenFromFile(c.TokenFile)
	case c.OAuth2 != nil:
		a, err := c.OAuth2.authentication()
		if err != nil {
			return o, err
		}
		o.Authentication = a
	}
	return o, nil
}

// authentication builds the client credentials flow. Client id and secret
// travel to the library as an inline key file ("data://{json}"), never
// through a file on disk.
func (o *OAuth2) authentication() (pc.Authentication, error) {
	key := o.PrivateKey
	if key == "" {
		b, err := json.Marshal(map[string]string{
			"type": "client_credentials", "client_id": o.ClientID, "client_secret": o.ClientSecret, "issuer_url": o.IssuerURL,
		})
		if err != nil {
			return nil, err
		}
		key = "data://" + string(b)
	} else if _, err := os.Stat(strings.TrimPrefix(key, "file://")); err != nil && !strings.HasPrefix(key, "data:") {
		return nil, fmt.Errorf("pulsar oauth2 private_key: %w", err)
	}
	params := map[string]string{
		"type":       "client_credentials",
		"issuerUrl":  o.IssuerURL,
		"audience":   o.Audience,
		"privateKey": key,
		"clientId":   o.ClientID,
		"scope":      o.Scope,
	}
	a, err := pc.NewAuthentication("oauth2", mustJSON(params))
	if err != nil {
		return nil, fmt.Errorf("pulsar oauth2: %w", err)
	}
	return a, nil
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Dialer creates a client; pc.NewClient in production, an in-memory one in
// contract tests.
type Dialer func(pc.ClientOptions) (pc.Client, error)

// Dial is the production Dialer.
func Dial(o pc.ClientOptions) (pc.Client, error) { return pc.NewClient(o) }

// Logger adapts slog to the client's logger. The client logs every
// connection, producer and consumer at info; those go to debug.
func Logger(l *slog.Logger) plog.Logger {
	return plog.NewLoggerWithSlog(slog.New(demote{l.Handler()}).With("component", "pulsar-client"))
}

// demote lowers info records to debug.
type demote struct{ h slog.Handler }

func (d demote) Enabled(ctx context.Context, l slog.Level) bool {
	if l == slog.LevelInfo {
		l = slog.LevelDebug
	}
	return d.h.Enabled(ctx, l)
}

func (d demote) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelInfo {
		r.Level = slog.LevelDebug
	}
	return d.h.Handle(ctx, r)
}

func (d demote) WithAttrs(as []slog.Attr) slog.Handler { return demote{d.h.WithAttrs(as)} }
func (d demote) WithGroup(n string) slog.Handler       { return demote{d.h.WithGroup(n)} }

// Permanent reports whether a send error cannot be fixed by retrying: the
// message is too large, the topic name is invalid, or the client is not
// authorised for the topic.
func Permanent(err error) bool {
	if errors.Is(err, pc.ErrMessageTooLarge) {
		return true
	}
	var pe *pc.Error
	if errors.As(err, &pe) {
		switch pe.Result() {
		case pc.MessageTooBig, pc.InvalidTopicName, pc.AuthorizationError, pc.InvalidMessage, pc.InvalidURL:
			return true
		}
	}
	return false
}

// Compressions maps busbar's names to the client's.
var Compressions = map[string]pc.CompressionType{
	"none": pc.NoCompression, "lz4": pc.LZ4, "zlib": pc.ZLib, "zstd": pc.ZSTD, "snappy": pc.SNAPPY,
}
