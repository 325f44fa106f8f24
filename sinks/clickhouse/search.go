package clickhouse

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Search is a structured query of the events table: `busbar events`.
type Search struct {
	// Bus, Source, Type and Subject keep events whose attribute is one of
	// the values given (all when empty).
	Bus, Source, Type, Subject []string
	// Since and Until bound the event time (zero: unbounded).
	Since, Until time.Time
	// Where is an extra SQL condition, like "data.order.amount > 100".
	Where string
	// Limit caps the events listed, or the groups counted (default 50).
	Limit int
	// CountBy counts events per value of these columns (source, type, bus,
	// subject, or a data path like data.region) instead of listing them.
	CountBy []string
	// Interval, with CountBy, counts per time bucket of this length: a
	// time series.
	Interval time.Duration
}

var groupRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// SQL is the query of s against table. Values are quoted into the text, so
// it can travel to /v1/query as it is.
func (s Search) SQL(table string) (string, error) {
	var conds []string
	in := func(col string, vals []string) {
		if len(vals) == 0 {
			return
		}
		q := make([]string, len(vals))
		for i, v := range vals {
			q[i] = quoteString(v)
		}
		if len(q) == 1 {
			conds = append(conds, col+" = "+q[0])
		} else {
			conds = append(conds, col+" IN ("+strings.Join(q, ", ")+")")
		}
	}
	in("bus", s.Bus)
	in("source", s.Source)
	in("type", s.Type)
	in("subject", s.Subject)
	if !s.Since.IsZero() {
		conds = append(conds, "time >= "+timeLiteral(s.Since))
	}
	if !s.Until.IsZero() {
		conds = append(conds, "time < "+timeLiteral(s.Until))
	}
	if w := strings.TrimSpace(s.Where); w != "" {
		conds = append(conds, "("+w+")")
	}
	where := ""
	if len(conds) > 0 {
		where = "\nWHERE " + strings.Join(conds, "\n  AND ")
	}
	limit := s.Limit
	if limit <= 0 {
		limit = 50
	}
	if len(s.CountBy) == 0 {
		if s.Interval > 0 {
			return "", fmt.Errorf("--interval needs --count-by (what to count per bucket, e.g. source)")
		}
		return fmt.Sprintf("SELECT time, source, type, subject, id, toString(data) AS data\nFROM %s%s\nORDER BY time DESC\nLIMIT %d", table, where, limit), nil
	}
	// Data paths are Dynamic, which GROUP BY refuses: group by their text.
	groups := make([]string, 0, len(s.CountBy)) // select list
	names := make([]string, 0, len(s.CountBy))  // GROUP BY / ORDER BY keys
	for _, g := range s.CountBy {
		g = strings.TrimSpace(g)
		if !groupRE.MatchString(g) {
			return "", fmt.Errorf("cannot count by %q: give column names (source, type, bus, subject) or data paths (data.region)", g)
		}
		if strings.HasPrefix(g, "data.") {
			e := "toString(" + g + ")"
			groups = append(groups, e+" AS "+quoteIdent(g))
			names = append(names, e)
		} else {
			groups = append(groups, g)
			names = append(names, g)
		}
	}
	if s.Interval > 0 {
		secs := max(int64(s.Interval/time.Second), 1)
		return fmt.Sprintf("SELECT toStartOfInterval(time, INTERVAL %d SECOND) AS bucket, %s, count() AS events\nFROM %s%s\nGROUP BY bucket, %s\nORDER BY bucket, %s",
			secs, strings.Join(groups, ", "), table, where, strings.Join(names, ", "), strings.Join(names, ", ")), nil
	}
	return fmt.Sprintf("SELECT %s, count() AS events\nFROM %s%s\nGROUP BY %s\nORDER BY events DESC\nLIMIT %d",
		strings.Join(groups, ", "), table, where, strings.Join(names, ", "), limit), nil
}

// quoteString is a ClickHouse string literal.
func quoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func timeLiteral(t time.Time) string {
	return "toDateTime64(" + quoteString(t.UTC().Format("2006-01-02 15:04:05.000")) + ", 3, 'UTC')"
}

// WriteChart draws a time series result (bucket, group columns..., events)
// as one sparkline per series, for a terminal.
func WriteChart(w io.Writer, res *Result) error {
	n := len(res.Columns)
	if n < 2 || res.Columns[0].Name != "bucket" || res.Columns[n-1].Name != "events" {
		return nil
	}
	var buckets []string
	seen := map[string]bool{}
	type series struct {
		name   string
		counts map[string]float64
		total  float64
	}
	byName := map[string]*series{}
	var order []string
	for _, r := range res.Rows {
		b := text(r[0])
		if !seen[b] {
			seen[b] = true
			buckets = append(buckets, b)
		}
		parts := make([]string, 0, n-2)
		for i := 1; i < n-1; i++ {
			parts = append(parts, res.Columns[i].Name+"="+text(r[i]))
		}
		name := strings.Join(parts, " ")
		s := byName[name]
		if s == nil {
			s = &series{name: name, counts: map[string]float64{}}
			byName[name] = s
			order = append(order, name)
		}
		var c float64
		fmt.Sscan(text(r[n-1]), &c)
		s.counts[b] += c
		s.total += c
	}
	if len(buckets) == 0 {
		return nil
	}
	slices.Sort(buckets)
	width := 0
	for _, name := range order {
		width = max(width, len(name))
	}
	const bars = "▁▂▃▄▅▆▇█"
	levels := []rune(bars)
	fmt.Fprintf(w, "\n%s … %s, %d buckets\n", buckets[0], buckets[len(buckets)-1], len(buckets))
	for _, name := range order {
		s := byName[name]
		peak := 0.0
		for _, c := range s.counts {
			peak = max(peak, c)
		}
		var line strings.Builder
		for _, b := range buckets {
			c := s.counts[b]
			switch {
			case c == 0:
				line.WriteRune(' ')
			case peak == 0:
				line.WriteRune(levels[0])
			default:
				line.WriteRune(levels[min(int(c/peak*float64(len(levels)-1)+0.5), len(levels)-1)])
			}
		}
		fmt.Fprintf(w, "%-*s  %s  total %g, peak %g\n", width, name, line.String(), s.total, peak)
	}
	return nil
}
