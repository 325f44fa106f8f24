package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/filters"
	"github.com/busbar/busbar/filters/transform"
	"github.com/busbar/busbar/sinks/clickhouse"
)

// mountAPI adds the tooling endpoints that need no running bus.
func mountAPI(mux *http.ServeMux) {
	mux.Handle("/v1/test-pattern", filters.TestPatternHandler())
	mux.Handle("/v1/test-transform", transform.TestTransformHandler())
}

// mountQuery serves /v1/query over the first clickhouse target writing the
// events table. It returns a close func for the querier. Without such a
// target, or when ClickHouse cannot be reached at start, /v1/query answers
// 503 saying why, and busbar runs on.
func mountQuery(ctx context.Context, mux *http.ServeMux, cfg *config.Config, log *slog.Logger) func() {
	unavailable := func(why string) {
		mux.HandleFunc("/v1/query", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "{\"error\":{\"code\":\"Unavailable\",\"message\":%q}}\n", why)
		})
	}
	t, ok := eventsTableTarget(cfg)
	if !ok {
		unavailable("no clickhouse target writes the events table in this config; see docs/clickhouse.md")
		return func() {}
	}
	q, err := clickhouse.NewQuerier(ctx, t.ClickHouse.DSN, t.ClickHouse.TableName(), clickhouse.QueryLimits{})
	if err != nil {
		log.Warn("event history queries unavailable", "error", err)
		unavailable("ClickHouse could not be reached when busbar started: " + err.Error())
		return func() {}
	}
	mux.Handle("/v1/query", clickhouse.QueryHandler(q))
	return func() { q.Close() }
}

// eventsTableTarget is the first clickhouse target without a column
// mapping, i.e. one writing busbar's events table: a rule's, else a pipe's.
func eventsTableTarget(cfg *config.Config) (config.Target, bool) {
	writesEvents := func(t config.Target) bool {
		return t.Type == config.TypeClickHouse && len(t.ClickHouse.Columns) == 0
	}
	for _, r := range cfg.Rules {
		for _, t := range r.Targets {
			if writesEvents(t) {
				return t, true
			}
		}
	}
	for _, p := range cfg.Pipes {
		if writesEvents(p.Target) {
			return p.Target, true
		}
	}
	return config.Target{}, false
}
