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
	"github.com/busbar/busbar/routers"
)

// dlqClient talks to the dead-letter endpoints of a running busbar.
type dlqClient struct {
	base   string
	bus    string
	rule   string
	target string
	http   *http.Client
}

func newDLQCmd() *cobra.Command {
	c := &dlqClient{http: &http.Client{Timeout: 5 * time.Minute}}
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, show and redrive the dead-letter queues of a running busbar",
		Long: `Every target has a dead-letter queue holding the events it could not deliver:
a permanent failure (a 4xx answer), retries exhausted, or the event older than
the target's max_event_age. Each record keeps the event, the rule, the target,
the last error and status, the attempts and when they happened.

A target is named by --target, with --rule and --bus when the id alone is
ambiguous. These commands talk to a running busbar (--url).`,
	}
	cmd.PersistentFlags().StringVar(&c.base, "url", "http://127.0.0.1:8080", "base URL of busbar's API")
	cmd.PersistentFlags().StringVar(&c.bus, "bus", "", "bus of the target")
	cmd.PersistentFlags().StringVar(&c.rule, "rule", "", "rule of the target")
	cmd.PersistentFlags().StringVar(&c.target, "target", "", "target id")
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

func (c *dlqClient) summary() ([]api.QueueSummary, error) {
	var out struct{ Queues []api.QueueSummary }
	err := c.call("GET", "/v1/dlq", nil, &out)
	return out.Queues, err
}

// resolve finds the one queue --bus/--rule/--target name.
func (c *dlqClient) resolve() (routers.QueueRef, error) {
	if c.target == "" {
		return routers.QueueRef{}, &exitError{code: 2, err: fmt.Errorf("--target is required")}
	}
	qs, err := c.summary()
	if err != nil {
		return routers.QueueRef{}, err
	}
	var found []routers.QueueRef
	for _, q := range qs {
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

func queuePath(q routers.QueueRef) string {
	return "/v1/dlq/" + url.PathEscape(q.Bus) + "/" + url.PathEscape(q.Rule) + "/" + url.PathEscape(q.Target)
}

func (c *dlqClient) listCmd() *cobra.Command {
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Without --target: dead-letter counts of every target; with it: its records",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if c.target == "" {
				qs, err := c.summary()
				if err != nil {
					return err
				}
				if asJSON {
					return json.NewEncoder(out).Encode(qs)
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "BUS\tRULE\tTARGET\tDEAD LETTERS")
				for _, q := range qs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", q.Bus, q.Rule, q.Target, q.DeadLetters)
				}
				return tw.Flush()
			}
			q, err := c.resolve()
			if err != nil {
				return err
			}
			var page struct {
				Records []routers.DeadLetter
				Next    uint64
			}
			if err := c.call("GET", fmt.Sprintf("%s?limit=%d", queuePath(q), limit), nil, &page); err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(out).Encode(page.Records)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tEVENT ID\tREASON\tSTATUS\tATTEMPTS\tLAST ATTEMPT\tERROR")
			for _, r := range page.Records {
				status := "-"
				if r.Status != 0 {
					status = fmt.Sprint(r.Status)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", r.Seq, r.EventID, r.Reason, status, r.Attempts, r.LastAttempt, truncateLine(r.Error, 80))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if page.Next != 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "(first %d shown; raise --limit for more)\n", limit)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 50, "records to show (1–1000)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (c *dlqClient) showCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show SEQ",
		Short: "Print one dead letter with its event, as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := c.resolve()
			if err != nil {
				return err
			}
			var rec json.RawMessage
			if err := c.call("GET", queuePath(q)+"/"+url.PathEscape(args[0]), nil, &rec); err != nil {
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
can: delivery is at-least-once). A redriven event's max_event_age starts over.`,
		Example: `  busbar dlq redrive --target finance --dry-run
  busbar dlq redrive --target finance --since 2h
  busbar dlq redrive --target finance --since 2026-11-22T08:00:00Z --until 2026-11-22T09:00:00Z`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := c.resolve()
			if err != nil {
				return err
			}
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
				if err := c.call("POST", queuePath(q)+"/redrive", req, &res); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "dry run: %d of %d dead letters would be redriven to %s/%s/%s\n", res.Matched, res.Remaining, q.Bus, q.Rule, q.Target)
				return nil
			}
			req.Limit = 200
			total := 0
			for {
				var res routers.RedriveResult
				if err := c.call("POST", queuePath(q)+"/redrive", req, &res); err != nil {
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
