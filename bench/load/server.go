package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/pipeline/engine"
	ingest "github.com/busbar/busbar/sources/http"

	// Transports and sinks register themselves, as in cmd/busbar.
	_ "github.com/busbar/busbar/pipeline/transport/natsjs"
	_ "github.com/busbar/busbar/sinks/http"
)

// runServer is busbar serve built from the library, the same way
// cmd/busbar/serve.go assembles it, plus net/http/pprof under
// /debug/pprof/ on the API listener. The driver runs it (-inprocess) to
// profile busbar without changing cmd/busbar: the profile holds busbar's
// own code only, since the generator and the receiver are other processes.
func runServer(cfgPath, listen, dataDir, level string, blockRate, mutexFrac int) error {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("-log-level %q: %w", level, err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	if blockRate > 0 {
		runtime.SetBlockProfileRate(blockRate)
	}
	if mutexFrac > 0 {
		runtime.SetMutexProfileFraction(mutexFrac)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); stop() }()

	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	drain := 30 * time.Second
	eng, err := engine.Start(ctx, cfg, engine.Options{DataDir: dataDir, Logger: log, DrainTimeout: drain})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/buses/", ingest.NewHandler(eng, ingest.Options{
		MaxBatchEntries: cfg.Ingest.MaxBatchEntries,
		MaxRequestBytes: cfg.Ingest.MaxRequestBytes,
		Logger:          log,
	}))
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !eng.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      5 * time.Minute, // profiles take as long as the run
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := eng.Shutdown(sctx); err != nil {
		return errors.Join(serveErr, err)
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return serveErr
}
