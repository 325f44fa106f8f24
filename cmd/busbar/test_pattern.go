package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/busbar/busbar/filters"
)

// errNoMatch makes test-pattern exit with status 1; the result is already
// printed, so the error has nothing to add.
var errNoMatch = errors.New("")

// newTestPatternCmd is `busbar test-pattern`: does an event match a pattern
// (and optionally a filter)? Exit status 0 on a match, 1 on no match, 2 when
// the pattern, filter or event is invalid. The logic is filters.ExplainRule.
func newTestPatternCmd() *cobra.Command {
	var patternFile, eventFile, filter string
	var explain, asJSON bool
	cmd := &cobra.Command{
		Use:   "test-pattern --pattern P.json --event E.json",
		Short: "Test an event pattern against an event and say why it does or does not match",
		Long: `test-pattern checks one event pattern (the EventBridge pattern language, see
docs/patterns.md) against one event and prints "match" or "no match" with the
first field that failed. The event is a structured-mode CloudEvent; an AWS
EventBridge event (detail-type, detail) is accepted too. Either file may be
"-" for standard input.

Exit status: 0 match, 1 no match, 2 invalid pattern, filter or event.`,
		Example: `  busbar test-pattern --pattern rule.json --event order.json
  cat order.json | busbar test-pattern --pattern rule.json --event - --explain
  busbar test-pattern --pattern rule.json --event order.json --filter 'data.amount > 100'`,
		Args: cobra.NoArgs,
		// It prints its own result and errors; the exit status says the rest.
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
			fail := func(err error) error {
				fmt.Fprintln(stderr, "busbar test-pattern:", err)
				return &exitError{code: 2, err: err, silent: true}
			}
			if patternFile == "" || eventFile == "" {
				return fail(errors.New("both --pattern and --event are required (use - for standard input)"))
			}
			if patternFile == "-" && eventFile == "-" {
				return fail(errors.New("only one of --pattern and --event can read standard input"))
			}
			pattern, err := readInput(cmd.InOrStdin(), patternFile)
			if err != nil {
				return fail(fmt.Errorf("--pattern: %w", err))
			}
			event, err := readInput(cmd.InOrStdin(), eventFile)
			if err != nil {
				return fail(fmt.Errorf("--event: %w", err))
			}
			res, err := filters.ExplainRule(filters.Rule{Pattern: pattern, Filter: filter}, event)
			if err != nil {
				var pe *filters.PatternError
				if errors.As(err, &pe) {
					return fail(fmt.Errorf("%s: %w", patternFile, err))
				}
				return fail(err)
			}
			if asJSON {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return err
				}
			} else {
				printResult(stdout, res, explain)
			}
			if !res.Match {
				return &exitError{code: 1, err: errNoMatch, silent: true}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&patternFile, "pattern", "p", "", "file holding the event pattern (JSON), or - for standard input")
	f.StringVarP(&eventFile, "event", "e", "", "file holding the event (JSON), or - for standard input")
	f.StringVar(&filter, "filter", "", "an expr-lang filter that must also hold (optional)")
	f.BoolVar(&explain, "explain", false, "show every condition, the event's values and whether each held")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func readInput(stdin io.Reader, name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(io.LimitReader(stdin, 64<<20))
	}
	return os.ReadFile(name)
}

func printResult(w io.Writer, res filters.Result, explain bool) {
	if res.Match {
		fmt.Fprintln(w, "match")
	} else if res.Reason != "" {
		fmt.Fprintln(w, "no match:", res.Reason)
	} else {
		fmt.Fprintln(w, "no match")
	}
	if !explain {
		return
	}
	for i, b := range res.Branches {
		state := "no match"
		if b.Match {
			state = "match"
		}
		if len(res.Branches) > 1 {
			fmt.Fprintf(w, "\nalternative %d of %d ($or): %s\n", i+1, len(res.Branches), state)
		} else {
			fmt.Fprintln(w)
		}
		if len(b.Fields) == 0 {
			fmt.Fprintln(w, "  (no conditions: matches every event)")
		}
		for _, f := range b.Fields {
			mark := "✗"
			if f.Match {
				mark = "✓"
			}
			vals := make([]string, len(f.Values))
			for j, v := range f.Values {
				vals[j] = string(v)
			}
			got := "(absent)"
			if len(vals) > 0 {
				got = strings.Join(vals, ", ")
			}
			fmt.Fprintf(w, "  %s %s\n      pattern %s\n      event   %s\n", mark, f.Path, f.Condition, got)
		}
		if b.Reason != "" {
			fmt.Fprintln(w, "  ", b.Reason)
		}
	}
	if res.Filter != nil {
		fmt.Fprintf(w, "\nfilter: %v\n", *res.Filter)
	}
}
