package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/busbar/busbar/sinks/clickhouse"
)

func newEventsCmd() *cobra.Command {
	f := &chFlags{}
	var (
		s             clickhouse.Search
		since, until  string
		countBy       string
		showSQL, noCh bool
	)
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Search the event history in ClickHouse without writing SQL",
		Long: `events lists the newest events of the ClickHouse events table that match the
filters, or counts them per value of some columns (--count-by), per time
bucket too with --interval: a time series, drawn as a small chart under the
table.

--since and --until take a duration back from now (1h, 30m, 7d) or an RFC 3339
time. --where adds an SQL condition over the table's columns, where data paths
read as data.a.b. Repeat --bus, --source, --type and --subject, or give
comma-separated values, to accept any of them.

It finds ClickHouse like busbar query does (--clickhouse, $BUSBAR_CLICKHOUSE,
--config, --server); --sql prints the query instead of running it.`,
		Example: `  busbar events --source erp.sap --type order.created --since 1h --limit 20
  busbar events --bus retail --since 24h --where 'data.order.amount > 100'
  busbar events --since 1h --count-by source,type --interval 1m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			now := time.Now()
			var err error
			if s.Since, err = parseWhen(since, now); err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			if s.Until, err = parseWhen(until, now); err != nil {
				return fmt.Errorf("--until: %w", err)
			}
			if countBy != "" {
				s.CountBy = strings.Split(countBy, ",")
			}
			s.Bus, s.Source, s.Type, s.Subject = splitAll(s.Bus), splitAll(s.Source), splitAll(s.Type), splitAll(s.Subject)
			table := f.table
			if showSQL {
				if table == "" {
					table = "events"
				}
				q, err := s.SQL(table)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), q)
				return nil
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout+30*time.Second)
			defer cancel()
			r, err := f.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			q, err := s.SQL(r.Table())
			if err != nil {
				return err
			}
			res, err := r.Query(ctx, q)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if err := clickhouse.WriteResult(out, res, f.format); err != nil {
				return err
			}
			if (f.format == "" || f.format == "table") && s.Interval > 0 && !noCh {
				return clickhouse.WriteChart(out, res)
			}
			return nil
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.StringSliceVar(&s.Bus, "bus", nil, "only events of this bus")
	fl.StringSliceVar(&s.Source, "source", nil, "only events of this source")
	fl.StringSliceVar(&s.Type, "type", nil, "only events of this type")
	fl.StringSliceVar(&s.Subject, "subject", nil, "only events of this subject")
	fl.StringVar(&since, "since", "", "only events from this time on: a duration back from now (1h, 7d) or an RFC 3339 time")
	fl.StringVar(&until, "until", "", "only events before this time (same forms as --since)")
	fl.StringVar(&s.Where, "where", "", "an extra SQL condition, like 'data.order.amount > 100'")
	fl.IntVar(&s.Limit, "limit", 50, "how many events (or groups) at most")
	fl.StringVar(&countBy, "count-by", "", "count events per value of these comma-separated columns (source,type) instead of listing them")
	fl.DurationVar(&s.Interval, "interval", 0, "with --count-by: count per time bucket of this length (1m, 1h)")
	fl.BoolVar(&showSQL, "sql", false, "print the SQL instead of running it")
	fl.BoolVar(&noCh, "no-chart", false, "with --interval: no chart under the table")
	return cmd
}

// parseWhen reads "1h", "7d", "90s" back from now, or an RFC 3339 time.
func parseWhen(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		var n float64
		if _, err := fmt.Sscanf(d, "%g", &n); err == nil && n >= 0 {
			return now.Add(-time.Duration(n * 24 * float64(time.Hour))), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither a duration (1h, 30m, 7d) nor an RFC 3339 time", s)
	}
	return now.Add(-d), nil
}

func splitAll(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}
