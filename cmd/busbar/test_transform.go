package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/filters/transform"
)

// newTestTransformCmd is `busbar test-transform`: print what a target's
// transform makes of an event. Exit status 0 with the body on standard
// output, 1 when the transform fails on this event (the event path would
// dead-letter it), 2 when the transform or the event is invalid. The logic
// is transform.Try.
func newTestTransformCmd() *cobra.Command {
	var transformFile, eventFile, rule, bus string
	var showType bool
	cmd := &cobra.Command{
		Use:   "test-transform --transform T.yaml --event E.json",
		Short: "Print what a target's transform makes of an event",
		Long: `test-transform applies one transform — what a target's transform: holds in
busbar.yaml, as YAML or JSON — to one event (a structured-mode CloudEvent) and
prints the body the target would receive. ${ENV} references in the transform
are expanded from the environment, as when the config loads; a hash key may
be written literally here. Either file may be "-" for standard input.
See docs/transforms.md.

Exit status: 0 printed, 1 the transform fails on this event (it would be
dead-lettered), 2 invalid transform or event.`,
		Example: `  busbar test-transform --transform finance.yaml --event order.json
  busbar test-transform --transform chat.yaml --event - --rule orders-to-chat < order.json
  busbar test-transform --transform pii.yaml --event order.json --show-content-type`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
			fail := func(code int, err error) error {
				fmt.Fprintln(stderr, "busbar test-transform:", err)
				return &exitError{code: code, err: err}
			}
			if transformFile == "" || eventFile == "" {
				return fail(2, errors.New("both --transform and --event are required (use - for standard input)"))
			}
			if transformFile == "-" && eventFile == "-" {
				return fail(2, errors.New("only one of --transform and --event can read standard input"))
			}
			spec, err := readInput(cmd.InOrStdin(), transformFile)
			if err != nil {
				return fail(2, fmt.Errorf("--transform: %w", err))
			}
			event, err := readInput(cmd.InOrStdin(), eventFile)
			if err != nil {
				return fail(2, fmt.Errorf("--event: %w", err))
			}
			name := transformFile
			if name == "-" {
				name = "stdin"
			}
			res, err := transform.Try(spec, name, os.LookupEnv, event, transform.Meta{Rule: rule, Bus: bus})
			if err != nil {
				var cl config.ErrorList
				var ee *transform.EventError
				switch {
				case errors.As(err, &cl):
					fmt.Fprintln(stderr, err) // file:line:col: field: problem, one per line
					return &exitError{code: 2, err: err}
				case errors.As(err, &ee):
					return fail(2, fmt.Errorf("%s: %w", eventFile, err))
				default:
					return fail(1, err)
				}
			}
			if showType {
				fmt.Fprintf(stdout, "Content-Type: %s\n\n", res.ContentType)
			}
			if _, err := stdout.Write(res.Body); err != nil {
				return err
			}
			if n := len(res.Body); n == 0 || res.Body[n-1] != '\n' {
				fmt.Fprintln(stdout)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&transformFile, "transform", "t", "", "file holding the transform (YAML or JSON), or - for standard input")
	f.StringVarP(&eventFile, "event", "e", "", "file holding the event (JSON), or - for standard input")
	f.StringVar(&rule, "rule", "test-rule", "the rule name, for <busbar.rule-name> and rule")
	f.StringVar(&bus, "bus", config.DefaultBus, "the bus name, for <busbar.bus> and bus")
	f.BoolVar(&showType, "show-content-type", false, "print a Content-Type: line and a blank line before the body")
	return cmd
}
