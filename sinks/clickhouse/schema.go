package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// DedupWindow is how many recent insert tokens a created table remembers
// (non_replicated_deduplication_window): a retried batch whose first try
// did land is recognised while fewer than this many inserts came after it.
const DedupWindow = 10_000

// EventsDDL is the CREATE TABLE statement of the default events table.
// dataType is "JSON" or "String"; ttl of 0 keeps rows forever.
func EventsDDL(table, dataType string, ttl time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, `CREATE TABLE IF NOT EXISTS %s
(
    id              String,
    source          LowCardinality(String),
    type            LowCardinality(String),
    subject         String,
    time            DateTime64(3, 'UTC'),
    ingest_time     DateTime64(3, 'UTC'),
    bus             LowCardinality(String),
    specversion     LowCardinality(String),
    datacontenttype LowCardinality(String),
    dataschema      String,
    extensions      Map(String, String),
    data            %s
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ingest_time)
ORDER BY (source, type, time, id)
`, table, dataType)
	if ttl > 0 {
		fmt.Fprintf(&b, "TTL toDateTime(ingest_time) + INTERVAL %d SECOND\n", int64(ttl/time.Second))
	}
	fmt.Fprintf(&b, "SETTINGS non_replicated_deduplication_window = %d", DedupWindow)
	return b.String()
}

// eventColumns are the columns the sink writes to an events table, in
// insert order, with the types it accepts for each.
var eventColumns = []struct {
	name string
	ok   func(t string) bool
	want string
}{
	{"id", isString, "String"},
	{"source", isString, "LowCardinality(String)"},
	{"type", isString, "LowCardinality(String)"},
	{"subject", isString, "String"},
	{"time", isDateTime64, "DateTime64(3, 'UTC')"},
	{"ingest_time", isDateTime64, "DateTime64(3, 'UTC')"},
	{"bus", isString, "LowCardinality(String)"},
	{"specversion", isString, "LowCardinality(String)"},
	{"datacontenttype", isString, "LowCardinality(String)"},
	{"dataschema", isString, "String"},
	{"extensions", func(t string) bool { return t == "Map(String, String)" }, "Map(String, String)"},
	{"data", func(t string) bool { return isString(t) || isJSON(t) }, "JSON or String"},
}

func isString(t string) bool {
	return t == "String" || t == "LowCardinality(String)"
}
func isDateTime64(t string) bool { return strings.HasPrefix(t, "DateTime64(") }
func isJSON(t string) bool       { return t == "JSON" || strings.HasPrefix(t, "JSON(") }

// column is a table column as system.columns describes it.
type column struct {
	name, typ   string
	defaultKind string // DEFAULT, MATERIALIZED, ALIAS, EPHEMERAL or ""
}

// splitTable returns database and table of "db.t" or "t" (database from
// the DSN then).
func splitTable(table, dsnDB string) (db, name string) {
	if d, t, ok := strings.Cut(table, "."); ok {
		return d, t
	}
	if dsnDB == "" {
		dsnDB = "default"
	}
	return dsnDB, table
}

// describe lists the columns of db.table; none when it does not exist.
func describe(ctx context.Context, conn driver.Conn, db, table string) ([]column, error) {
	rows, err := conn.Query(ctx, "SELECT name, type, default_kind FROM system.columns WHERE database = ? AND table = ? ORDER BY position", db, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.name, &c.typ, &c.defaultKind); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

// checkEventsTable compares an existing table with the events schema and
// says every column that does not fit.
func checkEventsTable(fq string, cols []column) (dataJSON bool, err error) {
	have := map[string]column{}
	for _, c := range cols {
		have[c.name] = c
	}
	var problems []string
	for _, want := range eventColumns {
		c, ok := have[want.name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("column %s is missing (want %s)", want.name, want.want))
		case c.defaultKind == "MATERIALIZED" || c.defaultKind == "ALIAS":
			problems = append(problems, fmt.Sprintf("column %s is %s and cannot be written", want.name, c.defaultKind))
		case !want.ok(c.typ):
			problems = append(problems, fmt.Sprintf("column %s is %s, want %s", want.name, c.typ, want.want))
		}
	}
	if len(problems) > 0 {
		return false, fmt.Errorf("table %s does not match the events schema: %s (see docs/clickhouse.md for the DDL, or point table: at a new name to have it created)", fq, strings.Join(problems, "; "))
	}
	return isJSON(have["data"].typ), nil
}

// explain turns a connection or server error at start into what to do.
func explain(err error, o *ch.Options) error {
	addr := strings.Join(o.Addr, ",")
	var ex *ch.Exception
	if errors.As(err, &ex) {
		switch ex.Code {
		case 516, 192, 194: // AUTHENTICATION_FAILED, UNKNOWN_USER, REQUIRED_PASSWORD
			return fmt.Errorf("ClickHouse at %s: authentication failed for user %q: check the user and password in the DSN (code %d: %s)", addr, userOf(o), ex.Code, ex.Message)
		case 81: // UNKNOWN_DATABASE
			return fmt.Errorf("ClickHouse at %s: database %q does not exist: create it (CREATE DATABASE %s) or fix the DSN's path", addr, o.Auth.Database, o.Auth.Database)
		}
		return fmt.Errorf("ClickHouse at %s: %s (code %d)", addr, ex.Message, ex.Code)
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &oe) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("ClickHouse at %s is unreachable: %v (is the server running, and is this its %s port?)", addr, err, protoName(o))
	}
	return fmt.Errorf("ClickHouse at %s: %w", addr, err)
}

func userOf(o *ch.Options) string {
	if o.Auth.Username == "" {
		return "default"
	}
	return o.Auth.Username
}

func protoName(o *ch.Options) string {
	if o.Protocol == ch.HTTP {
		return "HTTP"
	}
	return "native-protocol (9000 by default)"
}

// quoteIdent quotes a column name for SQL.
func quoteIdent(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}
