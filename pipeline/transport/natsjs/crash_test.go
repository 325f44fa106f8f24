package natsjs

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/busbar/busbar/pipeline/transport"
)

const crashChildEnv = "BUSBAR_NATSJS_CRASH_CHILD"

// crashChild runs in a subprocess: it publishes forever from 4 goroutines
// (batches of 5) and prints "acked <uuid>" for every message whose Publish
// returned nil, until the parent kills it with SIGKILL.
func crashChild(dir string) {
	tr, err := openErr(dir, "")
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	fmt.Println("ready")
	var mu sync.Mutex
	for g := 0; g < 4; g++ {
		go func() {
			for i := 0; ; i++ {
				msgs := newMsgs(5, "crash")
				if err := tr.Publisher().Publish(topic, msgs...); err != nil {
					continue
				}
				var b strings.Builder
				for _, m := range msgs {
					b.WriteString("acked " + m.UUID + "\n")
				}
				mu.Lock()
				_, _ = os.Stdout.WriteString(b.String())
				mu.Unlock()
			}
		}()
	}
	select {}
}

// TestCrashDurability: every message whose Publish returned nil survives a
// kill -9 of the process in the middle of publishing.
func TestCrashDurability(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	sc := bufio.NewScanner(out)
	const target = 2000
	for sc.Scan() && len(acked) < target {
		line := sc.Text()
		if id, ok := strings.CutPrefix(line, "acked "); ok {
			acked[id] = true
		} else if line != "ready" {
			t.Fatalf("child: %s", line)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() { // lines written before the kill landed
		if id, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
			acked[id] = true
		}
	}
	_ = cmd.Wait()
	if len(acked) < target {
		t.Fatalf("child acked only %d messages", len(acked))
	}

	tr := open(t, dir, "") // the dead child's lock and files must just work
	stream, _ := StreamName(topic)
	s, err := tr.js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	stored := s.CachedInfo().State.Msgs
	_, ch := subscribe(t, tr, "audit", topic, transport.SubscribeOptions{MaxInFlight: 256})
	got := map[string]bool{}
	for uint64(len(got)) < stored {
		select {
		case m := <-ch:
			got[m.UUID] = true
			m.Ack()
		case <-time.After(10 * time.Second):
			t.Fatalf("read %d of %d stored messages", len(got), stored)
		}
	}
	missing := 0
	for id := range acked {
		if !got[id] {
			missing++
		}
	}
	t.Logf("acked before kill: %d, stored after restart: %d, acked but missing: %d", len(acked), stored, missing)
	if missing > 0 {
		t.Fatalf("%d acknowledged messages lost by kill -9", missing)
	}
}
