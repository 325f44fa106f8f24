package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/busbar/busbar/api"
	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/routers"
)

// dlqClient talks to the dead-letter endpoints of a running busbar.
type dlqClient struct {
	base       string
	bus        string
	rule       string
	target     string
	pipe       string
	source     string
	unroutable bool
	http       *http.Client
}

func newDLQCmd() *cobra.Command {
	c := &dlqClient{http: &http.Client{Timeout: 5 * time.Minute}}
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, show and redrive the dead-letter queues of a running busbar",
		Long: `busbar keeps four kinds of dead-letter queue on its transport:

  target  events a target could not deliver: a permanent failure (a 4xx
          answer), retries exhausted, or the event older than the target's
          max_event_age. Each record keeps the event, the rule, the target,
          the last error and status, the attempts and when they happened.
          Select one with --target, adding --rule and --bus when the id
          alone is ambiguous. Only these can be redriven.
  bus     events a bus's router could not read (not JSON; reason
          "unroutable"). Select with --bus B --unroutable (--unroutable
          alone means the default bus).
  pipe    records a pipe could not filter, transform or deliver, with the
          Kafka record they came from. Select with --pipe P.
  source  Kafka or Pulsar records a source could not turn into events,
          byte for byte, with the broker record. Select with --source S.

'busbar dlq list' shows every queue with its count; with a selector it
lists that queue's records, and 'busbar dlq show SEQ' prints one. These
commands talk to a running busbar (--url).`,
		Example: `  busbar dlq list
  busbar dlq list --target finance
  busbar dlq list --pipe clicks --limit 20 --from 340
  busbar dlq show --source erp-orders 7
  busbar dlq list --bus retail --unroutable
  busbar dlq redrive --target finance --since 2h`,
	}
	cmd.PersistentFlags().StringVar(&c.base, "url", "http://127.0.0.1:8080", "base URL of busbar's API")
	cmd.PersistentFlags().StringVar(&c.bus, "bus", "", "bus of the target; with --unroutable, the bus")
	cmd.PersistentFlags().StringVar(&c.rule, "rule", "", "rule of the target")
	cmd.PersistentFlags().StringVar(&c.target, "target", "", "target id: select its dead-letter queue")
	cmd.PersistentFlags().StringVar(&c.pipe, "pipe", "", "pipe name: select its dead-letter queue")
	cmd.PersistentFlags().StringVar(&c.source, "source", "", "source name (kafka or pulsar): select its dead-letter queue")
	cmd.PersistentFlags().BoolVar(&c.unroutable, "unroutable", false, "select the queue of events --bus (default: the default bus) could not route")
	cmd.AddCommand(c.listCmd(), c.showCmd(), c.redriveCmd())
	return cmd
}

func (c *dlqClient) call(method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, strings.TrimRight(c.base, "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("is busbar running at %s? %w", c.base, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string }
		}
		if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("%s: %s", e.Error.Code, e.Error.Message)
		}
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, out)
}

func (c *dlqClient) summary() (api.Summary, error) {
	var out api.Summary
	err := c.call("GET", "/v1/dlq", nil, &out)
	return out, err
}

// selected returns the queue the flags name; ok is false when they name
// none.
func (c *dlqClient) selected() (q routers.DLQ, ok bool, err error) {
	usage := func(msg string) error {
		return &exitError{code: 2, err: fmt.Errorf("%s; name one queue: --target T [--rule R] [--bus B], --bus B --unroutable, --pipe P or --source S", msg)}
	}
	var picked []string
	for _, f := range []struct {
		name string
		set  bool
	}{{"--target", c.target != ""}, {"--unroutable", c.unroutable}, {"--pipe", c.pipe != ""}, {"--source", c.source != ""}} {
		if f.set {
			picked = append(picked, f.name)
		}
	}
	switch {
	case len(picked) > 1:
		return q, false, usage(strings.Join(picked, " and ") + " select different queues")
	case len(picked) == 0 && c.rule != "":
		return q, false, usage("--rule needs --target")
	case len(picked) == 0:
		return q, false, nil
	case c.rule != "" && c.target == "":
		return q, false, usage("--rule only goes with --target")
	case c.bus != "" && (c.pipe != "" || c.source != ""):
		return q, false, usage("--bus does not go with " + picked[0])
	}
	switch {
	case c.pipe != "":
		return routers.PipeDLQ(c.pipe), true, nil
	case c.source != "":
		return routers.SourceDLQ(c.source), true, nil
	case c.unroutable:
		bus := c.bus
		if bus == "" {
			bus = config.DefaultBus
		}
		return routers.BusDLQ(bus), true, nil
	}
	ref, err := c.resolve()
	return ref.DLQ(), err == nil, err
}

// mustSelect is selected for commands that need a queue.
func (c *dlqClient) mustSelect() (routers.DLQ, error) {
	q, ok, err := c.selected()
	if err == nil && !ok {
		err = &exitError{code: 2, err: fmt.Errorf("name a queue: --target T [--rule R] [--bus B], --bus B --unroutable, --pipe P or --source S ('busbar dlq list' shows them all)")}
	}
	return q, err
}

// resolve finds the one queue --bus/--rule/--target name.
func (c *dlqClient) resolve() (routers.QueueRef, error) {
	if c.target == "" {
		return routers.QueueRef{}, &exitError{code: 2, err: fmt.Errorf("--target is required")}
	}
	sum, err := c.summary()
	if err != nil {
		return routers.QueueRef{}, err
	}
	var found []routers.QueueRef
	for _, q := range sum.Queues {
		if q.Target == c.target && (c.rule == "" || q.Rule == c.rule) && (c.bus == "" || q.Bus == c.bus) {
			found = append(found, q.QueueRef)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return routers.QueueRef{}, fmt.Errorf("no target %q%s; 'busbar dlq list' shows them all", c.target, c.scope())
	}
	var names []string
	for _, q := range found {
		names = append(names, fmt.Sprintf("--bus %s --rule %s", q.Bus, q.Rule))
	}
	return routers.QueueRef{}, fmt.Errorf("target %q is in %d rules; add one of: %s", c.target, len(found), strings.Join(names, "; "))
}

func (c *dlqClient) scope() string {
	s := ""
	if c.rule != "" {
		s += " in rule " + c.rule
	}
	if c.bus != "" {
		s += " on bus " + c.bus
	}
	return s
}

// readWith is the flags that select q, as short as the summary allows.
func readWith(q routers.DLQ, targets []api.QueueSummary) string {
	switch q.Kind {
	case routers.KindBus:
		return "--bus " + q.Bus + " --unroutable"
	case routers.KindPipe:
		return "--pipe " + q.Pipe
	case routers.KindSource:
		return "--source " + q.Source
	}
	sameID, sameRule := 0, 0
	for _, t := range targets {
		if t.Target == q.Target {
			sameID++
			if t.Rule == q.Rule {
				sameRule++
			}
		}
	}
	switch {
	case sameID == 1:
		return "--target " + q.Target
	case sameRule == 1:
		return "--rule " + q.Rule + " --target " + q.Target
	}
	return "--bus " + q.Bus + " --rule " + q.Rule + " --target " + q.Target
}

func (c *dlqClient) listCmd() *cobra.Command {
	var limit int
	var from uint64
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Without a selector: every dead-letter queue with its count; with one: its records",
		Long: `Without --target, --pipe, --source or --unroutable, list prints every
dead-letter queue — targets', buses', pipes' and sources' — with its kind,
its count and the flags that select it. With one of them it prints that
queue's records, oldest first: --limit at a time, from sequence --from.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			q, ok, err := c.selected()
			if err != nil {
				return err
			}
			if !ok {
				sum, err := c.summary()
				if err != nil {
					return err
				}
				all := make([]api.DLQSummary, 0, len(sum.Queues)+len(sum.OtherQueues))
				for _, t := range sum.Queues {
					all = append(all, api.DLQSummary{DLQ: t.QueueRef.DLQ(), DeadLetters: t.DeadLetters})
				}
				all = append(all, sum.OtherQueues...)
				if asJSON {
					return json.NewEncoder(out).Encode(all)
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "KIND\tQUEUE\tDEAD LETTERS\tREAD WITH")
				for _, s := range all {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", s.Kind, s.Name(), s.DeadLetters, readWith(s.DLQ, sum.Queues))
				}
				return tw.Flush()
			}
			var page struct {
				Records []routers.DeadLetter
				Next    uint64
			}
			if err := c.call("GET", fmt.Sprintf("%s?limit=%d&from=%d", api.DLQPath(q), limit, from), nil, &page); err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(out).Encode(page.Records)
			}
			dash := func(s string) string {
				if s == "" {
					return "-"
				}
				return s
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			if q.Kind == routers.KindTarget {
				fmt.Fprintln(tw, "SEQ\tEVENT ID\tREASON\tSTATUS\tATTEMPTS\tLAST ATTEMPT\tERROR")
			} else {
				fmt.Fprintln(tw, "SEQ\tEVENT ID\tREASON\tSTATUS\tATTEMPTS\tFAILED AT\tORIGIN\tERROR")
			}
			for _, r := range page.Records {
				status := "-"
				if r.Status != 0 {
					status = fmt.Sprint(r.Status)
				}
				if q.Kind == routers.KindTarget {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", r.Seq, r.EventID, r.Reason, status, r.Attempts, r.LastAttempt, truncateLine(r.Error, 80))
				} else {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.Seq, dash(r.EventID), dash(r.Reason), status, r.Attempts, dash(r.FailedAt), dash(r.Origin), truncateLine(r.Error, 80))
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if page.Next != 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "(%d shown; the next ones with --from %d, or raise --limit)\n", len(page.Records), page.Next)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 50, "records to show (1–1000)")
	cmd.Flags().Uint64Var(&from, "from", 0, "first sequence number to show (list prints where the next page starts)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (c *dlqClient) showCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show SEQ",
		Short: "Print one dead letter with its event and metadata, as JSON",
		Long: `show prints the record at sequence SEQ (from 'busbar dlq list') of the
queue the selector names, as JSON: the event or record value ("event", or
"event_base64" when it is not text), the reason, error, status, attempts
and when, where a pipe's or source's record came from ("origin"), and
every other metadata entry it carries ("metadata", e.g. kafka-header-*).`,
		Example: `  busbar dlq show --target finance 42
  busbar dlq show --pipe clicks 340
  busbar dlq show --source erp-orders 7
  busbar dlq show --bus retail --unroutable 3`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := c.mustSelect()
			if err != nil {
				return err
			}
			var rec json.RawMessage
			if err := c.call("GET", api.DLQPath(q)+"/"+url.PathEscape(args[0]), nil, &rec); err != nil {
				return err
			}
			var pretty bytes.Buffer
			json.Indent(&pretty, rec, "", "  ")
			fmt.Fprintln(cmd.OutOrStdout(), pretty.String())
			return nil
		},
	}
}

func (c *dlqClient) redriveCmd() *cobra.Command {
	var since, until string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "redrive",
		Short: "Put a target's dead letters back on its queue for delivery",
		Long: `redrive puts the target's dead letters — all, or those dead-lettered within
--since/--until — back on its queue, oldest first, showing progress. Each
record leaves the dead-letter queue once it is back on the queue, so running
redrive twice never delivers a record twice (a crash between the two steps
can: delivery is at-least-once). A redriven event's max_event_age starts over.

Only targets' dead letters can be redriven. A bus's, pipe's or source's
queue has nowhere to put its records back: busbar answers why, and what to
do instead (read them with show, fix the cause, publish or produce them
again).`,
		Example: `  busbar dlq redrive --target finance --dry-run
  busbar dlq redrive --target finance --since 2h
  busbar dlq redrive --target finance --since 2026-11-22T08:00:00Z --until 2026-11-22T09:00:00Z`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := c.mustSelect()
			if err != nil {
				return err
			}
			if d.Kind != routers.KindTarget {
				// busbar says why not, and what to do instead
				var res routers.RedriveResult
				if err := c.call("POST", api.DLQPath(d)+"/redrive", api.RedriveRequest{DryRun: true}, &res); err != nil {
					return err
				}
				return fmt.Errorf("the dead letters of %s cannot be redriven; only targets' can", d)
			}
			q := routers.QueueRef{Bus: d.Bus, Rule: d.Rule, Target: d.Target}
			req := api.RedriveRequest{DryRun: dryRun}
			now := time.Now()
			if req.Since, err = timeFlag("--since", since, now); err != nil {
				return err
			}
			if req.Until, err = timeFlag("--until", until, now); err != nil {
				return err
			}
			if req.Until == "" {
				// Events that fail again while we redrive must not come round again.
				req.Until = now.UTC().Format(time.RFC3339Nano)
			}
			if dryRun {
				var res routers.RedriveResult
				if err := c.call("POST", api.DLQPath(d)+"/redrive", req, &res); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "dry run: %d of %d dead letters would be redriven to %s/%s/%s\n", res.Matched, res.Remaining, q.Bus, q.Rule, q.Target)
				return nil
			}
			req.Limit = 200
			total := 0
			for {
				var res routers.RedriveResult
				if err := c.call("POST", api.DLQPath(d)+"/redrive", req, &res); err != nil {
					return fmt.Errorf("%w (redriven before the error: %d)", err, total)
				}
				total += res.Redriven
				fmt.Fprintf(cmd.ErrOrStderr(), "\rredriven %d, %d left in the dead-letter queue", total, res.Remaining)
				if res.Matched < req.Limit {
					break
				}
			}
			fmt.Fprintln(cmd.ErrOrStderr())
			fmt.Fprintf(cmd.OutOrStdout(), "redrove %d dead letters to %s/%s/%s\n", total, q.Bus, q.Rule, q.Target)
			return nil
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "only records dead-lettered at or after this time (RFC 3339, or a duration ago like 2h)")
	cmd.Flags().StringVar(&until, "until", "", "only records dead-lettered before this time (RFC 3339, or a duration ago)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "count what would be redriven; change nothing")
	return cmd
}

// timeFlag reads an RFC 3339 time or a duration before now.
func timeFlag(name, v string, now time.Time) (string, error) {
	if v == "" {
		return "", nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d).UTC().Format(time.RFC3339Nano), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC().Format(time.RFC3339Nano), nil
	}
	return "", &exitError{code: 2, err: fmt.Errorf("%s %q: use an RFC 3339 time (2026-11-22T08:00:00Z) or a duration ago (2h)", name, v)}
}
