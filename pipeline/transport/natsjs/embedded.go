package natsjs

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// embeddedServer is the in-process NATS server of embedded://.
type embeddedServer struct {
	srv    *server.Server
	unlock func()
}

// startServer starts nats-server in this process with JetStream file storage
// under <dataDir>/jetstream. No TCP port is opened unless cfg.listen is set;
// clients connect in-process (nats.InProcessServer).
func startServer(ctx context.Context, dataDir string, cfg config, log *slog.Logger) (*embeddedServer, error) {
	if dataDir == "" {
		return nil, fmt.Errorf("embedded transport needs a data dir (set --data-dir)")
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("embedded transport data dir: %w", err)
	}
	unlock, err := lockDir(dataDir)
	if err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName:      "busbar-embedded",
		DontListen:      true,
		JetStream:       true,
		StoreDir:        dataDir, // the server appends "jetstream"
		SyncAlways:      cfg.syncAlways,
		SyncInterval:    cfg.syncInterval,
		NoSigs:          true,
		NoSystemAccount: true,
		MaxPayload:      cfg.maxPayload,
	}
	if cfg.listen != "" {
		host, port, _ := net.SplitHostPort(cfg.listen)
		p, err := strconv.Atoi(port)
		if err != nil {
			unlock()
			return nil, fmt.Errorf("URL option listen=%q: port: %w", cfg.listen, err)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		}
		opts.DontListen, opts.Host, opts.Port = false, host, p
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		unlock()
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	srv.SetLoggerV2(serverLogger{log.With("component", "nats-server")}, log.Enabled(ctx, slog.LevelDebug), false, false)

	// Start recovers every stream from disk before it is ready, which can
	// take a while on a big store: wait for it, bounded by ctx.
	go srv.Start()
	for !srv.ReadyForConnections(100 * time.Millisecond) {
		if ctx.Err() != nil {
			srv.Shutdown()
			srv.WaitForShutdown()
			unlock()
			return nil, fmt.Errorf("embedded NATS server not ready: %w", ctx.Err())
		}
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		unlock()
		return nil, fmt.Errorf("embedded NATS server started without JetStream (see the warnings logged by component=nats-server)")
	}
	return &embeddedServer{srv: srv, unlock: unlock}, nil
}

// stop shuts the server down (flushing every stream and consumer state to
// disk), waits for it, then releases the data dir lock.
func (e *embeddedServer) stop() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	e.unlock()
}

// serverLogger sends nats-server's log to slog: notices (startup banner,
// stream recovery) at debug, warnings and errors as such, traces nowhere.
type serverLogger struct{ l *slog.Logger }

func (s serverLogger) Noticef(format string, v ...any) { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s serverLogger) Debugf(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s serverLogger) Tracef(string, ...any)           {}
func (s serverLogger) Warnf(format string, v ...any)   { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s serverLogger) Errorf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s serverLogger) Fatalf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
