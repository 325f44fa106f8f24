package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/busbar/busbar/api"
	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/pipeline/engine"
	ingest "github.com/busbar/busbar/sources/http"
)

type serveFlags struct {
	config       string
	listen       string
	dataDir      string
	drainTimeout time.Duration
}

func newServeCmd(g *globalFlags) *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run busbar: the ingest API, the buses, rules and targets of a config",
		Long: `serve loads a config, opens the transport (by default an embedded NATS
JetStream store under --data-dir, nothing to install), and serves the ingest
API on --listen:

  POST /v1/buses/{bus}/events      CloudEvents: structured, binary or batch mode
  POST /v1/buses/{bus}/put-events  EventBridge-style PutEvents batch
  GET  /healthz, /readyz           liveness and readiness

On SIGINT or SIGTERM it stops accepting requests, lets in-flight deliveries
finish (up to --drain-timeout) and exits; undelivered events stay queued under
--data-dir and are delivered at the next start.`,
		Example: `  busbar serve --config examples/retail/busbar.yaml
  busbar serve --config busbar.yaml --listen 0.0.0.0:8080 --data-dir /var/lib/busbar --log-level debug`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, f, log, nil)
		},
	}
	cmd.Flags().StringVarP(&f.config, "config", "c", "busbar.yaml", "config file (YAML or JSON)")
	cmd.Flags().StringVar(&f.listen, "listen", "127.0.0.1:8080", "address of the HTTP API")
	cmd.Flags().StringVar(&f.dataDir, "data-dir", ".data", "directory of the embedded transport's storage")
	cmd.Flags().DurationVar(&f.drainTimeout, "drain-timeout", 30*time.Second, "how long shutdown waits for in-flight work")
	return cmd
}

// serve runs until ctx is cancelled. When ready is not nil it receives the
// bound address once the API serves (tests use it with --listen :0).
func serve(ctx context.Context, f *serveFlags, log *slog.Logger, ready chan<- string) error {
	cfg, err := config.Load(f.config)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.dataDir, 0o750); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", f.listen, err)
	}
	defer ln.Close()

	start := time.Now()
	eng, err := engine.Start(ctx, cfg, engine.Options{DataDir: f.dataDir, Logger: log, DrainTimeout: f.drainTimeout})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/buses/", ingest.NewHandler(eng, ingest.Options{
		MaxBatchEntries: cfg.Ingest.MaxBatchEntries,
		MaxRequestBytes: cfg.Ingest.MaxRequestBytes,
		RateLimits:      busRateLimits(cfg),
		Logger:          log,
	}))
	mountAPI(mux)
	closeQuery := mountQuery(ctx, mux, cfg, log)
	defer closeQuery()
	dlq := api.NewDLQHandler(eng)
	mux.Handle("/v1/dlq", dlq)
	mux.Handle("/v1/dlq/", dlq)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if !eng.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, `{"status":"not ready"}`)
			return
		}
		fmt.Fprintln(w, `{"status":"ready"}`)
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("busbar is serving", "listen", ln.Addr().String(), "config", f.config, "transport", cfg.Redacted().Transport,
		"data_dir", f.dataDir, "buses", len(cfg.Buses), "rules", len(cfg.Rules), "sources", len(cfg.Sources), "pipes", len(cfg.Pipes), "startup", time.Since(start).Round(time.Millisecond))
	if ready != nil {
		ready <- ln.Addr().String()
	}

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down: draining in-flight work", "timeout", f.drainTimeout)
	case serveErr = <-errc:
		log.Error("HTTP server stopped", "error", serveErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), f.drainTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("HTTP server did not finish in time", "error", err)
	}
	if err := eng.Shutdown(sctx); err != nil {
		log.Error("drain incomplete; undelivered events stay queued", "error", err)
		return errors.Join(serveErr, err)
	}
	log.Info("busbar stopped")
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return serveErr
}

// busRateLimits are the buses' ingest rate limits (defaults applied).
func busRateLimits(cfg *config.Config) map[string]ingest.RateLimit {
	out := map[string]ingest.RateLimit{}
	for _, b := range cfg.Buses {
		if b.RateLimitPerSecond > 0 {
			out[b.Name] = ingest.RateLimit{PerSecond: b.RateLimitPerSecond, Burst: b.RateLimitBurst}
		}
	}
	return out
}
