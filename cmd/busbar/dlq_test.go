package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// flakyTarget answers 400 to events whose data has "bad":true, and 503 to
// the rest until healthy; once healthy it takes everything.
type flakyTarget struct {
	healthy atomic.Bool
	mu      sync.Mutex
	got     map[string]int
}

func (f *flakyTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ev struct {
		ID   string
		Data struct{ Bad bool }
	}
	json.NewDecoder(r.Body).Decode(&ev)
	switch {
	case f.healthy.Load():
		f.mu.Lock()
		f.got[ev.ID]++
		f.mu.Unlock()
	case ev.Data.Bad:
		w.WriteHeader(400)
		fmt.Fprint(w, `{"message":"amount is required"}`)
	default:
		w.WriteHeader(503)
	}
}

func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errb.String(), err
}

// TestDeadLettersAndRedrive: a 400 is dead-lettered after one attempt with
// its status and body; a target down past max_event_age fills the DLQ;
// after it recovers, redrive delivers every event once.
func TestDeadLettersAndRedrive(t *testing.T) {
	f := &flakyTarget{got: map[string]int{}}
	url, _ := listen(t, f)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`
rules:
  - name: orders
    targets:
      - id: finance
        type: http
        url: %q
        retry: {max_event_age: 2s, initial_interval: 50ms, max_interval: 200ms}
`, url))
	base, _ := startInProcess(t, cfg, filepath.Join(dir, "data"))
	var batch []map[string]any
	for i := 0; i < 20; i++ {
		batch = append(batch, map[string]any{"specversion": "1.0", "id": fmt.Sprintf("o-%02d", i), "source": "erp", "type": "order.created",
			"data": map[string]any{"bad": i%4 == 0}})
	}
	body, _ := json.Marshal(batch)
	mustPost(t, base+"/v1/buses/default/events", "application/cloudevents-batch+json", body, nil)

	var summary struct {
		Queues []struct {
			Target      string
			DeadLetters int `json:"dead_letters"`
		}
	}
	waitFor(t, 30*time.Second, "all 20 events to be dead-lettered", func() (bool, string) {
		resp, err := http.Get(base + "/v1/dlq")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&summary)
		return len(summary.Queues) == 1 && summary.Queues[0].DeadLetters == 20, fmt.Sprint(summary)
	})

	out, _, err := runCLI(t, "dlq", "list", "--url", base, "--target", "finance", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var recs []struct {
		Seq      uint64
		EventID  string `json:"event_id"`
		Reason   string
		Status   int
		Attempts int
		Error    string
	}
	if err := json.Unmarshal([]byte(out), &recs); err != nil || len(recs) != 20 {
		t.Fatalf("dlq list: %v %s", err, out)
	}
	perm, aged := 0, 0
	for _, r := range recs {
		switch r.Reason {
		case "permanent-failure":
			perm++
			if r.Status != 400 || r.Attempts != 1 || !strings.Contains(r.Error, "amount is required") {
				t.Errorf("a 400 record: %+v", r)
			}
		case "max-event-age":
			aged++
			if r.Status != 503 || r.Attempts < 2 {
				t.Errorf("an aged record: %+v", r)
			}
		}
	}
	if perm != 5 || aged != 15 {
		t.Errorf("permanent %d, aged %d; want 5 and 15", perm, aged)
	}
	out, _, err = runCLI(t, "dlq", "show", "--url", base, "--target", "finance", fmt.Sprint(recs[0].Seq))
	if err != nil || !strings.Contains(out, `"specversion": "1.0"`) {
		t.Fatalf("dlq show: %v %s", err, out)
	}
	out, _, err = runCLI(t, "dlq", "redrive", "--url", base, "--target", "finance", "--dry-run")
	if err != nil || !strings.Contains(out, "20 of 20") {
		t.Fatalf("dry run: %v %s", err, out)
	}

	f.healthy.Store(true)
	out, progress, err := runCLI(t, "dlq", "redrive", "--url", base, "--target", "finance")
	if err != nil || !strings.Contains(out, "redrove 20") || !strings.Contains(progress, "0 left") {
		t.Fatalf("redrive: %v %s %s", err, out, progress)
	}
	waitFor(t, 30*time.Second, "redriven events to arrive", func() (bool, string) {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.got) == 20, fmt.Sprint(len(f.got), " of 20")
	})
	// a second redrive has nothing left to do
	out, _, err = runCLI(t, "dlq", "redrive", "--url", base, "--target", "finance")
	if err != nil || !strings.Contains(out, "redrove 0") {
		t.Fatalf("second redrive: %v %s", err, out)
	}
	time.Sleep(200 * time.Millisecond)
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, n := range f.got {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
	_, _, err = runCLI(t, "dlq", "list", "--url", base, "--target", "nope")
	if err == nil || !strings.Contains(err.Error(), `no target "nope"`) {
		t.Errorf("unknown target: %v", err)
	}
}
