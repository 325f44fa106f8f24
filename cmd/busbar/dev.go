package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

func newDevCmd(g *globalFlags) *cobra.Command {
	dev := &cobra.Command{
		Use:   "dev",
		Short: "Tools for trying busbar on one machine",
	}
	dev.AddCommand(newReceiverCmd(), newDevKafkaCmd())
	return dev
}

func newReceiverCmd() *cobra.Command {
	var listen string
	var status int
	cmd := &cobra.Command{
		Use:   "receiver",
		Short: "A tiny HTTP server that prints every event a target receives",
		Long: `receiver stands in for the services a config's targets point at. Every
request to http://LISTEN/NAME is printed as one line — NAME, event type, id,
source, subject and data — and answered with --status (default 200), so
routing can be watched in a terminal. Use --status 503 to see retries.`,
		Example: "  busbar dev receiver --listen 127.0.0.1:9090",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runReceiver(ctx, listen, status, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9090", "address to listen on")
	cmd.Flags().IntVar(&status, "status", 200, "HTTP status to answer with")
	return cmd
}

func runReceiver(ctx context.Context, listen string, status int, out io.Writer) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", listen, err)
	}
	var mu sync.Mutex
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		line := describe(strings.Trim(r.URL.Path, "/"), r.Header, body)
		mu.Lock()
		fmt.Fprintln(out, line)
		mu.Unlock()
		w.WriteHeader(status)
	})}
	fmt.Fprintf(out, "receiver listening on http://%s/ (answering %d)\n", ln.Addr(), status)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// describe renders one received request as a line.
func describe(target string, h http.Header, body []byte) string {
	if target == "" {
		target = "/"
	}
	var ev struct {
		ID      string          `json:"id"`
		Source  string          `json:"source"`
		Type    string          `json:"type"`
		Subject string          `json:"subject"`
		Data    json.RawMessage `json:"data"`
	}
	if h.Get("Ce-Id") != "" { // binary mode
		ev.ID, ev.Source, ev.Type, ev.Subject = h.Get("Ce-Id"), h.Get("Ce-Source"), h.Get("Ce-Type"), h.Get("Ce-Subject")
		ev.Data = body
	} else if json.Unmarshal(body, &ev) != nil || ev.Type == "" {
		return fmt.Sprintf("%-14s ← %s", target, truncateLine(string(body), 200))
	}
	s := fmt.Sprintf("%-14s ← %-22s id=%s source=%s", target, ev.Type, ev.ID, ev.Source)
	if ev.Subject != "" {
		s += " subject=" + ev.Subject
	}
	if len(ev.Data) > 0 {
		s += " data=" + truncateLine(string(ev.Data), 160)
	}
	return s
}

func truncateLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
