// Command busbar is the one binary of busbar: the server (serve), the
// producer's tool (put-events), config checks (validate, test-pattern) and a
// development receiver (dev receiver).
package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	// Transports and sinks register themselves.
	_ "github.com/busbar/busbar/pipeline/transport/kafka"
	_ "github.com/busbar/busbar/pipeline/transport/natsjs"
	_ "github.com/busbar/busbar/pipeline/transport/pulsar"
	_ "github.com/busbar/busbar/sinks/clickhouse"
	_ "github.com/busbar/busbar/sinks/http"
	_ "github.com/busbar/busbar/sinks/pulsar"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

func main() {
	if err := newRootCmd().Execute(); err != nil {
		if e, ok := err.(*exitError); !ok || !e.silent {
			fmt.Fprintln(os.Stderr, "busbar:", err)
		}
		os.Exit(exitCode(err))
	}
}

// exitError carries an exit code other than 1; silent when the command
// already told the user.
type exitError struct {
	code   int
	err    error
	silent bool
}

func (e *exitError) Error() string { return e.err.Error() }

func exitCode(err error) int {
	if e, ok := err.(*exitError); ok {
		return e.code
	}
	return 1
}

type globalFlags struct {
	logLevel  string
	logFormat string
}

func newRootCmd() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "busbar",
		Short: "A self-hosted event bus: CloudEvents in, rules, targets out",
		Long: `busbar takes events from producers (CloudEvents over HTTP, EventBridge-style
PutEvents), keeps them durably on named buses, matches them against rules and
delivers them to targets with retries and dead-letter queues.

Start with:  busbar serve --config examples/retail/busbar.yaml`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.SetErr(os.Stderr)
	root.AddCommand(
		newServeCmd(g),
		newPutEventsCmd(),
		newValidateCmd(),
		newTestPatternCmd(),
		newTestTransformCmd(),
		newQueryCmd(),
		newEventsCmd(),
		newDLQCmd(),
		newVersionCmd(),
		newDevCmd(g),
	)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: 2, err: fmt.Errorf("%w\nrun '%s --help' for usage", err, c.CommandPath())}
	})
	return root
}

func (g *globalFlags) logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("--log-level %q: use debug, info, warn or error", g.logLevel)}
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(g.logFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, &exitError{code: 2, err: fmt.Errorf("--log-format %q: use text or json", g.logFormat)}
}

func versionString() string {
	v := version
	if v == "" {
		v = "dev"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	return v
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of busbar",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "busbar %s\n", versionString())
			return nil
		},
	}
}
