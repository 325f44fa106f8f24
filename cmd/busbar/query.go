package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/sinks/clickhouse"
)

// chFlags say where the event history is: a ClickHouse DSN, a config's
// clickhouse target, or a running busbar's /v1/query.
type chFlags struct {
	dsn, config, target, table, server string
	format                             string
	maxRows                            int
	timeout                            time.Duration
}

func (f *chFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.dsn, "clickhouse", "", "ClickHouse DSN, like clickhouse://user:pass@host:9000/db (default $BUSBAR_CLICKHOUSE, else the config's clickhouse target)")
	fl.StringVar(&f.config, "config", "", "busbar config whose clickhouse target to query (default busbar.yaml when it exists)")
	fl.StringVar(&f.target, "target", "", "which clickhouse target of the config: RULE/TARGET_ID (default: the first one writing the events table)")
	fl.StringVar(&f.table, "table", "", "events table (default: the target's table, else events)")
	fl.StringVar(&f.server, "server", "", "ask a running busbar instead (its /v1/query), like http://127.0.0.1:8080")
	fl.StringVarP(&f.format, "format", "o", "table", "output: table, json, csv or ndjson")
	fl.IntVar(&f.maxRows, "max-rows", clickhouse.DefaultMaxResultRows, "fail when the result has more rows (max_result_rows)")
	fl.DurationVar(&f.timeout, "timeout", clickhouse.DefaultMaxExecutionTime, "stop a query running longer (max_execution_time)")
}

// runner runs one read-only query.
type runner interface {
	Query(ctx context.Context, sql string) (*clickhouse.Result, error)
	Table() string
	Close() error
}

// open finds the history: --server, --clickhouse, $BUSBAR_CLICKHOUSE, or
// a clickhouse target of --config.
func (f *chFlags) open(ctx context.Context) (runner, error) {
	if f.server != "" {
		table := f.table
		if table == "" {
			table = "events"
		}
		return &remote{base: strings.TrimRight(f.server, "/"), table: table}, nil
	}
	dsn, table := f.dsn, f.table
	if dsn == "" {
		dsn = os.Getenv("BUSBAR_CLICKHOUSE")
	}
	if dsn == "" {
		d, t, err := f.fromConfig()
		if err != nil {
			return nil, err
		}
		dsn = d
		if table == "" {
			table = t
		}
	}
	return clickhouse.NewQuerier(ctx, dsn, table, clickhouse.QueryLimits{MaxExecutionTime: f.timeout, MaxResultRows: f.maxRows})
}

// fromConfig picks the clickhouse target of the config.
func (f *chFlags) fromConfig() (dsn, table string, err error) {
	path := f.config
	if path == "" {
		if _, err := os.Stat("busbar.yaml"); err != nil {
			return "", "", errors.New("where is ClickHouse? pass --clickhouse DSN, set BUSBAR_CLICKHOUSE, pass --config with a clickhouse target, or --server http://busbar:8080")
		}
		path = "busbar.yaml"
	}
	cfg, err := config.Load(path)
	if err != nil {
		return "", "", err
	}
	var names []string
	for _, r := range cfg.Rules {
		for _, t := range r.Targets {
			if t.Type != config.TypeClickHouse {
				continue
			}
			name := r.Name + "/" + t.ID
			names = append(names, name)
			if f.target == name || (f.target == "" && len(t.ClickHouse.Columns) == 0) {
				return t.ClickHouse.DSN, t.ClickHouse.TableName(), nil
			}
		}
	}
	if f.target != "" {
		return "", "", fmt.Errorf("%s has no clickhouse target %q (it has: %s)", path, f.target, strings.Join(names, ", "))
	}
	return "", "", fmt.Errorf("%s has no clickhouse target writing the events table: pass --clickhouse DSN", path)
}

// remote runs queries through a running busbar's /v1/query.
type remote struct {
	base, table string
}

func (r *remote) Table() string { return r.table }
func (r *remote) Close() error  { return nil }

func (r *remote) Query(ctx context.Context, sql string) (*clickhouse.Result, error) {
	body, _ := json.Marshal(map[string]string{"sql": sql, "format": "json"})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base+"/v1/query", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("busbar at %s: %v", r.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error.Message != "" {
			return nil, &clickhouse.QueryError{Kind: e.Error.Code, Msg: e.Error.Message}
		}
		return nil, fmt.Errorf("busbar at %s answered %s", r.base, resp.Status)
	}
	var res clickhouse.Result
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&res); err != nil {
		return nil, fmt.Errorf("busbar at %s: unreadable answer: %v", r.base, err)
	}
	return &res, nil
}

func newQueryCmd() *cobra.Command {
	f := &chFlags{}
	var file string
	cmd := &cobra.Command{
		Use:   "query [SQL]",
		Short: "Run read-only SQL against the event history in ClickHouse",
		Long: `query runs one SQL statement against ClickHouse, read-only (readonly=1: no
INSERT, DROP, ALTER or SETTINGS changes), with a time limit (--timeout) and a
row limit (--max-rows), and prints the result as a table, JSON, CSV or NDJSON.

The SQL comes from the argument, --file, or stdin. ClickHouse is found through
--clickhouse DSN, then $BUSBAR_CLICKHOUSE, then the clickhouse target of
--config (default busbar.yaml); --server asks a running busbar's /v1/query.
The default events table is described in docs/clickhouse.md.`,
		Example: `  busbar query --clickhouse clickhouse://127.0.0.1:9000/default "SELECT source, count() FROM events GROUP BY source"
  busbar query --config busbar.yaml -o csv "SELECT id, data.order.amount FROM events WHERE type = 'order.created' LIMIT 10"
  echo "SELECT count() FROM events" | busbar query --server http://127.0.0.1:8080`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sql, err := readSQL(cmd.InOrStdin(), args, file)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout+30*time.Second)
			defer cancel()
			r, err := f.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			res, err := r.Query(ctx, sql)
			if err != nil {
				return err
			}
			return clickhouse.WriteResult(cmd.OutOrStdout(), res, f.format)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVarP(&file, "file", "f", "", "read the SQL from this file")
	return cmd
}

func readSQL(stdin io.Reader, args []string, file string) (string, error) {
	switch {
	case len(args) == 1 && args[0] != "-":
		return args[0], nil
	case file != "":
		b, err := os.ReadFile(file)
		return string(b), err
	}
	b, err := io.ReadAll(io.LimitReader(stdin, 1<<20))
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(string(b)) == "" {
		return "", errors.New("no SQL: give it as an argument, with --file, or on stdin")
	}
	return string(b), nil
}
