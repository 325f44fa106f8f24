package config

import (
	"strings"
	"testing"
)

func TestClickHouseTarget(t *testing.T) {
	const ok = `
rules:
  - name: history
    targets:
      - id: ch
        type: clickhouse
        clickhouse:
          dsn: clickhouse://default:secret@127.0.0.1:9000/default
`
	c, err := Parse([]byte(ok), "busbar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tg := c.Rules[0].Targets[0]
	if tg.Concurrency != DefaultClickHouseConcurrency {
		t.Errorf("concurrency %d, want the clickhouse default %d", tg.Concurrency, DefaultClickHouseConcurrency)
	}
	if tg.ClickHouse.TableName() != "events" || !tg.ClickHouse.CreatesTable() || tg.ClickHouse.DataColumnType() != "json" {
		t.Errorf("defaults: %+v", tg.ClickHouse)
	}
	if dsn := c.Redacted().Rules[0].Targets[0].ClickHouse.DSN; strings.Contains(dsn, "secret") {
		t.Errorf("Redacted shows the DSN's password: %s", dsn)
	}
	if c.Rules[0].Targets[0].ClickHouse.DSN != "clickhouse://default:secret@127.0.0.1:9000/default" {
		t.Error("Redacted changed the config it copied")
	}
}

func TestClickHouseErrors(t *testing.T) {
	target := func(fields string) string {
		return "rules:\n  - name: r\n    targets:\n      - id: t\n        " + fields + "\n"
	}
	checkErrors(t, "busbar.yaml", []errCase{
		{"no dsn", target("type: clickhouse"), []string{
			`4:9 rules[0].targets[0].clickhouse.dsn: missing dsn`}},
		{"bad scheme", target("type: clickhouse\n        clickhouse: {dsn: 'mysql://h:1/x'}"), []string{
			`6:27 rules[0].targets[0].clickhouse.dsn: the DSN must start with clickhouse://`}},
		{"on http", target("type: http\n        url: https://x.example\n        clickhouse: {dsn: 'clickhouse://h'}"), []string{
			`7:21 rules[0].targets[0].clickhouse: clickhouse: applies to targets of type clickhouse only`}},
		{"concurrency", target("type: clickhouse\n        concurrency: 200000\n        clickhouse: {dsn: 'clickhouse://h'}"), []string{
			`6:22 rules[0].targets[0].concurrency: 200000 is out of range: use 1 to 100000`}},
		{"batch", target("type: clickhouse\n        batch: {max_rows: 0, max_wait: 2h}\n        clickhouse: {dsn: 'clickhouse://h'}"), []string{
			`6:27 rules[0].targets[0].batch.max_rows: 0 is out of range: use 1 to 1000000`,
			`6:40 rules[0].targets[0].batch.max_wait: 2h is out of range`}},
		{"data type", target("type: clickhouse\n        clickhouse: {dsn: 'clickhouse://h', data_type: xml}"), []string{
			`6:56 rules[0].targets[0].clickhouse.data_type: "xml" is not a data type (use "json" or "string")`}},
		{"table", target("type: clickhouse\n        clickhouse: {dsn: 'clickhouse://h', table: 'a-b'}"), []string{
			`6:52 rules[0].targets[0].clickhouse.table: "a-b" is not a table name`}},
		{"columns", target("type: clickhouse\n        clickhouse:\n          dsn: clickhouse://h\n          columns:\n            - {name: a, path: 'data.x'}\n            - {name: a, expr: '1 +'}\n            - {name: c}"), []string{
			`7:11 rules[0].targets[0].clickhouse.table: columns map a table of yours`,
			`9:31 rules[0].targets[0].clickhouse.columns[0].path: "data.x" is not a supported JSONPath`,
			`10:22 rules[0].targets[0].clickhouse.columns[1].name: column "a" is mapped twice`,
			`10:31 rules[0].targets[0].clickhouse.columns[1].expr: invalid expression`,
			`11:15 rules[0].targets[0].clickhouse.columns[2]: say where the value comes from`}},
	})
}
