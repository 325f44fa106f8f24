package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr"
)

// TypeClickHouse is the target type of the ClickHouse sink.
const TypeClickHouse = "clickhouse"

// Defaults of batching sinks and of clickhouse targets.
const (
	DefaultBatchMaxRows     = 50_000
	DefaultBatchMaxBytes    = 16 << 20
	DefaultBatchMaxWait     = time.Second
	DefaultBatchMaxInFlight = 4
	DefaultClickHouseTable  = "events"
	// DefaultClickHouseConcurrency is a clickhouse target's concurrency:
	// batches fill only from events in delivery.
	DefaultClickHouseConcurrency = 10_000
	ClickHouseDataJSON           = "json"
	ClickHouseDataString         = "string"
)

var (
	clickHouseDataTypes = []string{ClickHouseDataJSON, ClickHouseDataString}
	clickHouseSchemes   = []string{"clickhouse", "tcp", "http", "https"}
	// tableRE is a ClickHouse table or column name that needs no quoting,
	// optionally qualified by a database.
	tableRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)
	// jsonPathRE is the JSONPath subset column mappings take: $, .name,
	// ['name'] and [n].
	jsonPathRE = regexp.MustCompile(`^\$((\.[A-Za-z_][A-Za-z0-9_-]*)|(\['([^'\\]|\\.)*'\])|(\[[0-9]+\]))*$`)
)

// TableName is the table to write: table, or "events".
func (c *ClickHouse) TableName() string {
	if c.Table == "" {
		return DefaultClickHouseTable
	}
	return c.Table
}

// CreatesTable reports whether a missing events table is created.
func (c *ClickHouse) CreatesTable() bool { return c.CreateTable == nil || *c.CreateTable }

// DataColumnType is "json" or "string".
func (c *ClickHouse) DataColumnType() string {
	if c.DataType == "" {
		return ClickHouseDataJSON
	}
	return c.DataType
}

// batch checks the limits of a batch; http names an http target's batch,
// whose defaults differ.
func (v *validator) batch(path string, b *Batch, http bool) {
	rows, bytes, wait, inFlight := int64(DefaultBatchMaxRows), int64(DefaultBatchMaxBytes), DefaultBatchMaxWait, int64(DefaultBatchMaxInFlight)
	if http {
		rows, bytes, wait, inFlight = DefaultHTTPBatchMaxRows, DefaultHTTPBatchMaxBytes, DefaultHTTPBatchMaxWait, DefaultHTTPBatchMaxInFlight
	}
	v.intField(path+".max_rows", "Batch.max_rows", int64(b.MaxRows), rows)
	v.intField(path+".max_bytes", "Batch.max_bytes", b.MaxBytes, bytes)
	v.durationField(path+".max_wait", "Batch.max_wait", b.MaxWait, wait)
	v.intField(path+".max_in_flight", "Batch.max_in_flight", int64(b.MaxInFlight), inFlight)
}

// clickhouse checks the clickhouse block of target t at path.
func (v *validator) clickhouse(path string, t *Target) {
	c := &t.ClickHouse
	p := path + ".clickhouse"
	if t.Type != TypeClickHouse {
		if v.written(p) {
			v.add(p, "clickhouse: applies to targets of type clickhouse only (this one is %q); remove it or set type: clickhouse", t.Type)
		}
		return
	}
	if c.DSN == "" {
		v.add(p+".dsn", "missing dsn: a clickhouse target needs the server (add clickhouse: {dsn: clickhouse://default:${CLICKHOUSE_PASSWORD}@127.0.0.1:9000/default})")
	} else if !v.isBad(p + ".dsn") {
		u, err := url.Parse(c.DSN)
		switch {
		case err != nil:
			v.add(p+".dsn", "not a valid DSN (write it like clickhouse://user:password@host:9000/database)")
		case !slices.Contains(clickHouseSchemes, u.Scheme):
			v.add(p+".dsn", "the DSN must start with clickhouse:// (native protocol) or http:// or https:// (HTTP)")
		case u.Host == "":
			v.add(p+".dsn", "the DSN has no host (write it like clickhouse://user:password@host:9000/database)")
		}
	}
	if c.Table != "" && !tableRE.MatchString(c.Table) {
		v.add(p+".table", "%s is not a table name ClickHouse takes unquoted: use letters, digits and _, optionally database.table", v.show(p+".table", c.Table))
	}
	if c.DataType != "" && !slices.Contains(clickHouseDataTypes, c.DataType) {
		v.add(p+".data_type", "%s is not a data type (use %s)", v.show(p+".data_type", c.DataType), orList(clickHouseDataTypes))
	}
	if lim := durationLimits["ClickHouse.ttl"]; c.TTL != 0 && !v.isBad(p+".ttl") && (c.TTL.D() < lim[0] || c.TTL.D() > lim[1]) {
		v.add(p+".ttl", "%s is out of range: use %s to %s, or leave it out to keep rows forever", c.TTL, Duration(lim[0]), Duration(lim[1]))
	}
	if len(c.Columns) == 0 {
		return
	}
	if c.Table == "" {
		v.add(p+".table", "columns map a table of yours: name it (table: my_table); the default events table has its own columns")
	}
	if c.CreateTable != nil && *c.CreateTable {
		v.add(p+".create_table", "busbar creates only the default events table; create the table of your columns yourself, and leave create_table out")
	}
	seen := map[string]string{}
	for i, col := range c.Columns {
		cp := fmt.Sprintf("%s.columns[%d]", p, i)
		switch {
		case col.Name == "":
			v.add(cp+".name", "missing column name (add name: the column of the table)")
		case strings.ContainsAny(col.Name, "`\x00"):
			v.add(cp+".name", "a column name cannot contain ` or NUL")
		default:
			if first, dup := seen[col.Name]; dup {
				v.add(cp+".name", "column %q is mapped twice (first %s)", col.Name, v.where(first))
			}
			seen[col.Name] = cp + ".name"
		}
		switch {
		case col.Path == "" && col.Expr == "":
			v.add(cp, "say where the value comes from: path: $.data.field or expr: an expression")
		case col.Path != "" && col.Expr != "":
			v.add(cp+".expr", "give path or expr, not both")
		case col.Path != "" && !jsonPathRE.MatchString(col.Path):
			v.add(cp+".path", "%s is not a supported JSONPath: start with $ and use .name, ['name'] and [index], like $.data.order.id", v.show(cp+".path", col.Path))
		case col.Expr != "":
			if _, err := expr.Compile(col.Expr, expr.AllowUndefinedVariables()); err != nil {
				v.add(cp+".expr", "invalid expression: %s", firstLine(err.Error()))
			}
		}
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// MaxBatchingConcurrency caps the concurrency of batching targets
// (clickhouse, http with batch), whose batches fill only from events in
// delivery.
const MaxBatchingConcurrency = 100_000

func (v *validator) batchingConcurrency(path string, n, def int, why string) {
	if n == 0 && !v.written(path) {
		return
	}
	if n < 1 || n > MaxBatchingConcurrency {
		v.add(path, "%d is out of range: use 1 to %d, or leave it out for the default %d (%s)", n, MaxBatchingConcurrency, def, why)
	}
}
