package pulsar

// Real-network error paths: the real pulsar-client-go against loopback
// sockets that refuse or never answer. No broker is needed for these.

import (
	"context"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/busbar/busbar/pipeline/transport"
)

// openReal opens the transport with the real client and returns how long
// it took.
func openReal(t *testing.T, raw string) (*Transport, error, time.Duration) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t0 := time.Now()
	tr, err := OpenTransport(ctx, u, transport.Options{Logger: testLogger()}, nil)
	return tr, err, time.Since(t0)
}

func TestNetworkConnectionRefused(t *testing.T) {
	noLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused
	tr, err, took := openReal(t, "pulsar://"+addr+"?connect_timeout=1s&operation_timeout=3s")
	if err == nil {
		tr.Close()
		t.Fatal("opened a transport on a closed port")
	}
	t.Logf("after %v: %v", took.Round(time.Millisecond), err)
	if !strings.Contains(err.Error(), "cannot connect to "+addr) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("unclear error: %v", err)
	}
	if took > 3*time.Second+2*time.Second {
		t.Errorf("took %v with operation_timeout=3s", took)
	}
}

// silentListener accepts connections and never writes a byte.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

func TestNetworkListenerThatNeverAnswers(t *testing.T) {
	noLeaks(t)
	addr := silentListener(t)
	tr, err, took := openReal(t, "pulsar://"+addr+"?connect_timeout=1s&operation_timeout=2s")
	if err == nil {
		tr.Close()
		t.Fatal("opened a transport on a listener that never answers")
	}
	t.Logf("after %v: %v", took.Round(time.Millisecond), err)
	if !strings.Contains(err.Error(), "cannot reach the brokers at pulsar://"+addr) {
		t.Errorf("unclear error: %v", err)
	}
	if took > 2*time.Second+3*time.Second {
		t.Errorf("took %v with operation_timeout=2s", took)
	}
}

func TestNetworkCancelledOpen(t *testing.T) {
	noLeaks(t)
	addr := silentListener(t)
	u, _ := url.Parse("pulsar://" + addr + "?operation_timeout=3s&connect_timeout=1s")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	tr, err := OpenTransport(ctx, u, transport.Options{Logger: testLogger()}, nil)
	if err == nil {
		tr.Close()
		t.Fatal("opened")
	}
	t.Logf("after %v: %v", time.Since(t0).Round(time.Millisecond), err)
	if d := time.Since(t0); d > time.Second {
		t.Errorf("took %v to give up after the context ended at 300ms", d)
	}
}

// noLeaks checks, after the test and its cleanups, that no goroutine it
// started is left (the client's connection, lookup and keep-alive loops).
// The client's lookups end within connect_timeout after a close, so it
// waits up to 5s for them first.
func noLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for goleak.Find(opt) != nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		goleak.VerifyNone(t, opt)
	})
}
