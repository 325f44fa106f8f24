// Package kclient turns the connection settings busbar knows about a Kafka
// cluster (brokers, client id, SASL, TLS) into franz-go client options and
// a Sarama config, so the transport, the Kafka source and the Kafka sink
// connect the same way. It knows nothing about topics or groups.
package kclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// SASL mechanisms.
const (
	MechPlain       = "PLAIN"
	MechScramSHA256 = "SCRAM-SHA-256"
	MechScramSHA512 = "SCRAM-SHA-512"
)

// Mechanisms are the SASL mechanisms busbar speaks.
var Mechanisms = []string{MechPlain, MechScramSHA256, MechScramSHA512}

// Conn is how to reach one Kafka cluster.
type Conn struct {
	Brokers  []string
	ClientID string // default "busbar"

	// SASL: Mechanism "" means no SASL.
	Mechanism string
	User      string
	Password  string

	// TLS is on when TLS is true or any file is given.
	TLS                bool
	CAFile             string
	CertFile, KeyFile  string
	ServerName         string
	InsecureSkipVerify bool
}

// NormalizeMechanism maps "plain", "scram-sha-512", ... to the canonical
// names, or returns "" for an unknown one.
func NormalizeMechanism(s string) string {
	up := strings.ToUpper(strings.ReplaceAll(s, "_", "-"))
	for _, m := range Mechanisms {
		if up == m {
			return m
		}
	}
	return ""
}

// TLSConfig returns the TLS config of c, or nil when TLS is off.
func (c Conn) TLSConfig() (*tls.Config, error) {
	if !c.TLS && c.CAFile == "" && c.CertFile == "" && c.KeyFile == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // opt-in by the user
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka TLS CA file %s holds no PEM certificate", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, errors.New("kafka TLS: give both a client certificate and its key, or neither")
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka TLS client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func (c Conn) check() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka: no brokers given")
	}
	if c.Mechanism != "" && NormalizeMechanism(c.Mechanism) == "" {
		return fmt.Errorf("kafka: SASL mechanism %q is not supported (use %s)", c.Mechanism, strings.Join(Mechanisms, ", "))
	}
	return nil
}

// Opts returns the franz-go options that connect to the cluster.
func (c Conn) Opts(log *slog.Logger) ([]kgo.Opt, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	id := c.ClientID
	if id == "" {
		id = "busbar"
	}
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...), kgo.ClientID(id)}
	if log != nil {
		opts = append(opts, kgo.WithLogger(Logger(log)))
	}
	tc, err := c.TLSConfig()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	switch NormalizeMechanism(c.Mechanism) {
	case MechPlain:
		opts = append(opts, kgo.SASL(plain.Auth{User: c.User, Pass: c.Password}.AsMechanism()))
	case MechScramSHA256:
		opts = append(opts, kgo.SASL(scram.Auth{User: c.User, Pass: c.Password}.AsSha256Mechanism()))
	case MechScramSHA512:
		opts = append(opts, kgo.SASL(scram.Auth{User: c.User, Pass: c.Password}.AsSha512Mechanism()))
	}
	return opts, nil
}

// Sarama applies the connection settings to a Sarama config.
func (c Conn) Sarama(cfg *sarama.Config) error {
	if err := c.check(); err != nil {
		return err
	}
	cfg.ClientID = c.ClientID
	if cfg.ClientID == "" {
		cfg.ClientID = "busbar"
	}
	tc, err := c.TLSConfig()
	if err != nil {
		return err
	}
	if tc != nil {
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = tc
	}
	switch NormalizeMechanism(c.Mechanism) {
	case "":
		return nil
	case MechPlain:
		cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	default:
		// Sarama needs a SCRAM client implementation from elsewhere; the
		// franz-go path has one built in.
		return fmt.Errorf("kafka+sarama: SASL %s is not supported on the Sarama path; use kafka:// (franz-go), which supports PLAIN and SCRAM", c.Mechanism)
	}
	cfg.Net.SASL.Enable = true
	cfg.Net.SASL.Handshake = true
	cfg.Net.SASL.User = c.User
	cfg.Net.SASL.Password = c.Password
	return nil
}

// logger adapts slog to franz-go's Logger; franz-go's info chatter (joins,
// assignments) goes to debug.
type logger struct{ l *slog.Logger }

// Logger returns a franz-go logger writing to l.
func Logger(l *slog.Logger) kgo.Logger { return logger{l} }

func (l logger) Level() kgo.LogLevel {
	switch {
	case l.l.Enabled(context.Background(), slog.LevelDebug):
		return kgo.LogLevelInfo
	case l.l.Enabled(context.Background(), slog.LevelWarn):
		return kgo.LogLevelWarn
	}
	return kgo.LogLevelError
}

func (l logger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		lv = slog.LevelError
	case kgo.LogLevelWarn:
		lv = slog.LevelWarn
	}
	l.l.Log(context.Background(), lv, "kafka: "+msg, keyvals...)
}
