package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kfake"

	// The Kafka transport (kafka://, kafka+sarama://) and the kafka sink
	// register themselves.
	_ "github.com/busbar/busbar/pipeline/transport/kafka"
	_ "github.com/busbar/busbar/sinks/kafka"
)

// newDevKafkaCmd is `busbar dev kafka`: a Kafka protocol emulator for trying
// the Kafka transport, source and sink on one machine.
func newDevKafkaCmd() *cobra.Command {
	var brokers, port, partitions int
	var dataDir string
	cmd := &cobra.Command{
		Use:   "kafka",
		Short: "Run a local Kafka protocol emulator (kfake) for development",
		Long: `kafka starts kfake, franz-go's Kafka protocol emulator, on loopback: --brokers
brokers on consecutive ports from --port, topics created automatically with
--partitions partitions. Point busbar at it with the printed transport URL.

This is a protocol emulator for development and tests, not a production
broker: it keeps data in memory (or in --data-dir), has no replication and
is not tuned. For a real Kafka use deployments/kafka/compose.yaml.`,
		Example: `  busbar dev kafka
  busbar dev kafka --port 19092 --partitions 6`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if brokers < 1 || brokers > 16 {
				return &exitError{code: 2, err: fmt.Errorf("--brokers %d: use 1 to 16", brokers)}
			}
			ports := make([]int, brokers)
			for i := range ports {
				ports[i] = port + i
			}
			opts := []kfake.Opt{kfake.Ports(ports...), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(partitions)}
			if dataDir != "" {
				opts = append(opts, kfake.DataDir(dataDir))
			}
			c, err := kfake.NewCluster(opts...)
			if err != nil {
				return fmt.Errorf("starting the Kafka emulator: %w", err)
			}
			defer c.Close()
			addrs := strings.Join(c.ListenAddrs(), ",")
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Kafka protocol emulator (kfake) listening on %s\n", addrs)
			fmt.Fprintln(w, "For development only: not a production broker.")
			fmt.Fprintf(w, "\n  transport: kafka://%s\n\n", addrs)
			fmt.Fprintln(w, "Ctrl-C stops it.")
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			<-ctx.Done()
			return nil
		},
	}
	cmd.Flags().IntVar(&brokers, "brokers", 3, "number of brokers")
	cmd.Flags().IntVar(&port, "port", 9092, "port of the first broker; the others follow")
	cmd.Flags().IntVar(&partitions, "partitions", 1, "partitions of automatically created topics")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "keep the emulator's data in this directory (default: memory only)")
	return cmd
}
