// Package chtest gives tests a real ClickHouse server: the one named by
// CLICKHOUSE_ADDR, or the local one deployments/dev/clickhouse.sh started
// (make test starts it through deployments/dev/test-deps.sh), each test in
// a database of its own. It also starts private servers for tests that
// stop and restart ClickHouse.
//
// When no server is reachable, a test fails under make test and in CI
// (CI or BUSBAR_REQUIRE_CLICKHOUSE set, or the dev server's address file
// present) and is skipped otherwise, so `go test ./...` still works on a
// machine without ClickHouse.
package chtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// repoRoot is the directory holding go.mod, found from the working dir.
func repoRoot() string {
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			return ""
		}
		dir = up
	}
}

// addrFile is where deployments/dev/clickhouse.sh records the address of
// the server it started.
func addrFile() string {
	if d := os.Getenv("CLICKHOUSE_DIR"); d != "" {
		return filepath.Join(d, "addr")
	}
	return filepath.Join(repoRoot(), ".data", "clickhouse", "addr")
}

// Addr returns host:port of the native protocol of the shared test server.
func Addr(t testing.TB) string {
	t.Helper()
	required := os.Getenv("CI") != "" || os.Getenv("BUSBAR_REQUIRE_CLICKHOUSE") != ""
	addr := os.Getenv("CLICKHOUSE_ADDR")
	from := "CLICKHOUSE_ADDR"
	if addr == "" {
		b, err := os.ReadFile(addrFile())
		if err == nil {
			required = true
			addr, from = strings.TrimSpace(string(b)), addrFile()
		}
	}
	if addr == "" {
		msg := "no ClickHouse for this test: run deployments/dev/clickhouse.sh start (make test does), or set CLICKHOUSE_ADDR=host:port"
		if required {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		msg := fmt.Sprintf("ClickHouse at %s (from %s) is not reachable: %v; start it with deployments/dev/clickhouse.sh start", addr, from, err)
		if required {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	c.Close()
	return addr
}

// HTTPAddr returns host:port of the HTTP interface of the shared test
// server: $CLICKHOUSE_HTTP_ADDR or the dev server's. (The dev server, chdb,
// exits when a native-protocol login fails: test bad credentials over HTTP.)
func HTTPAddr(t testing.TB) string {
	t.Helper()
	Addr(t)
	if a := os.Getenv("CLICKHOUSE_HTTP_ADDR"); a != "" {
		return a
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(addrFile()), "http_addr"))
	if err != nil {
		t.Skip("no HTTP address of the test ClickHouse: set CLICKHOUSE_HTTP_ADDR")
	}
	return strings.TrimSpace(string(b))
}

// Database creates a database of its own for the test on the shared
// server, drops it when the test ends, and returns its DSN and name.
func Database(t testing.TB) (dsn, db string) {
	t.Helper()
	return DatabaseAt(t, Addr(t))
}

// DatabaseAt is Database on the server at addr.
func DatabaseAt(t testing.TB, addr string) (dsn, db string) {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	db = "busbar_test_" + hex.EncodeToString(b[:])
	conn := Conn(t, "clickhouse://"+addr+"/default")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := ch.Open(&ch.Options{Addr: []string{addr}}); err == nil {
			_ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+db+" SYNC")
			c.Close()
		}
	})
	return "clickhouse://" + addr + "/" + db, db
}

// Conn opens a connection for checks, closed when the test ends.
func Conn(t testing.TB, dsn string) driver.Conn {
	t.Helper()
	o, err := ch.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := ch.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Count runs a query returning one number.
func Count(t testing.TB, conn driver.Conn, query string, args ...any) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var n uint64
	if err := conn.QueryRow(ctx, query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// Server is a private ClickHouse server run by deployments/dev/clickhouse.sh,
// for tests that stop and restart it.
type Server struct {
	t        testing.TB
	dir      string
	tcp, htp int
}

// StartServer starts a private server on free ports with its data in a
// temporary dir, and stops it when the test ends. It needs the script's
// cached library (make test fetches it), else fails or skips like Addr.
func StartServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, dir: t.TempDir(), tcp: freePort(t), htp: freePort(t)}
	if err := s.run("start"); err != nil {
		msg := fmt.Sprintf("cannot start a private ClickHouse: %v", err)
		if os.Getenv("CI") != "" || os.Getenv("BUSBAR_REQUIRE_CLICKHOUSE") != "" {
			t.Fatal(msg)
		}
		if _, statErr := os.Stat(addrFile()); statErr == nil {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { _ = s.run("stop") })
	return s
}

// Addr is the server's native-protocol host:port.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.tcp) }

// Start starts the server again after Stop, with the same data.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.run("start"); err != nil {
		s.t.Fatal(err)
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after 10s).
func (s *Server) Stop() {
	s.t.Helper()
	if err := s.run("stop"); err != nil {
		s.t.Fatal(err)
	}
}

func (s *Server) run(cmd string) error {
	script := filepath.Join(repoRoot(), "deployments", "dev", "clickhouse.sh")
	c := exec.Command(script, cmd)
	c.Env = append(os.Environ(),
		"CLICKHOUSE_DIR="+s.dir,
		fmt.Sprintf("CLICKHOUSE_TCP_PORT=%d", s.tcp),
		fmt.Sprintf("CLICKHOUSE_HTTP_PORT=%d", s.htp),
		"CLICKHOUSE_LIFETIME=3600",
	)
	out, err := c.CombinedOutput()
	if err != nil {
		return fmt.Errorf("clickhouse.sh %s: %v\n%s", cmd, err, out)
	}
	return nil
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
