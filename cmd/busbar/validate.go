package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/busbar/busbar/config"
)

func newValidateCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check a config file and print every error with file:line and field",
		Long: `validate loads a config the way serve does — YAML or JSON, ${ENV} references,
patterns and filters compiled — and prints every problem it finds, one per
line, as file:line:column: field.path: what is wrong. Exit status 0 means the
config is valid, 1 that it is not.`,
		Example: "  busbar validate --config examples/retail/busbar.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid (%d buses, %d rules)\n", path, len(cfg.Buses), len(cfg.Rules))
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "busbar.yaml", "config file (YAML or JSON)")
	return cmd
}
