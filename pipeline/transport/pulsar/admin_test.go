package pulsar

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/busbar/busbar/pipeline/transport"
)

// fakeAdmin is an HTTP server answering the admin calls busbar makes, the
// way the Pulsar admin REST API (v2) documents them.
type fakeAdmin struct {
	mu              sync.Mutex
	topics          map[string]int // path -> partitions (0: non-partitioned)
	retained        map[string]map[string]int64
	auth            []string
	noTopicPolicies bool
}

func (f *fakeAdmin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	body, _ := io.ReadAll(r.Body)
	path := r.URL.EscapedPath()
	switch {
	case r.Method == http.MethodPost && len(path) > 10 && path[len(path)-10:] == "/retention":
		if f.noTopicPolicies {
			http.Error(w, `{"reason":"Topic level policies is disabled, to enable the topic level policy and retry."}`, http.StatusMethodNotAllowed)
			return
		}
		var v map[string]int64
		json.Unmarshal(body, &v)
		f.retained[path[:len(path)-10]] = v
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPut && len(path) > 11 && path[len(path)-11:] == "/partitions":
		p := path[:len(path)-11]
		if _, ok := f.topics[p]; ok {
			http.Error(w, `{"reason":"Partitioned topic already exists"}`, http.StatusConflict)
			return
		}
		var n int
		json.Unmarshal(body, &n)
		f.topics[p] = n
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPut:
		if _, ok := f.topics[path]; ok {
			http.Error(w, `{"reason":"This topic already exists"}`, http.StatusConflict)
			return
		}
		f.topics[path] = 0
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, "unexpected "+r.Method+" "+path, http.StatusBadRequest)
	}
}

func TestAdminCreatesTopicsAndSetsRetention(t *testing.T) {
	fa := &fakeAdmin{topics: map[string]int{}, retained: map[string]map[string]int64{}}
	srv := httptest.NewServer(fa)
	defer srv.Close()
	tr, _ := openFake(t, "admin="+srv.URL+"&partitions=4&token=tok&tenant=acme&namespace=ev")
	ctx := context.Background()
	if err := tr.CreateTopic(ctx, "busbar.bus.orders", transport.TopicOptions{MaxAge: 72 * time.Hour, MaxBytes: 10 << 30}); err != nil {
		t.Fatal(err)
	}
	if err := tr.CreateTopic(ctx, "busbar.bus.orders", transport.TopicOptions{MaxAge: 90 * time.Second}); err != nil {
		t.Fatalf("second CreateTopic (topic exists): %v", err)
	}
	if err := tr.CreateTopic(ctx, "busbar.q.orders.r.t", transport.TopicOptions{}); err != nil {
		t.Fatal(err)
	}
	const p = "/admin/v2/persistent/acme/ev/busbar.bus.orders"
	if fa.topics[p] != 4 {
		t.Errorf("topics %v", fa.topics)
	}
	if got := fa.retained[p]; got["retentionTimeInMinutes"] != 2 || got["retentionSizeInMB"] != -1 {
		t.Errorf("retention after update %v, want 2 minutes (90s rounded up), no size limit", got)
	}
	if got := fa.retained["/admin/v2/persistent/acme/ev/busbar.q.orders.r.t"]; got["retentionTimeInMinutes"] != -1 || got["retentionSizeInMB"] != -1 {
		t.Errorf("queue retention %v, want unlimited", got)
	}
	for _, a := range fa.auth {
		if a != "Bearer tok" {
			t.Errorf("Authorization %q", a)
		}
	}
	if m, mb := retentionOf(72*time.Hour, 10<<30, 4); m != 4320 || mb != 2560 {
		t.Errorf("retentionOf = %d min, %d MB", m, mb)
	}
}

func TestAdminWithoutTopicPolicies(t *testing.T) {
	fa := &fakeAdmin{topics: map[string]int{}, retained: map[string]map[string]int64{}, noTopicPolicies: true}
	srv := httptest.NewServer(fa)
	defer srv.Close()
	tr, _ := openFake(t, "admin="+srv.URL)
	if err := tr.CreateTopic(context.Background(), "busbar.bus.orders", transport.TopicOptions{MaxAge: time.Hour}); err != nil {
		t.Fatalf("brokers without topic policies: %v (want a warning, not an error)", err)
	}
	if _, ok := fa.topics["/admin/v2/persistent/public/default/busbar.bus.orders"]; !ok {
		t.Errorf("topic not created: %v", fa.topics)
	}
}

func TestAdminErrorsAreClear(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"reason":"Tenant does not exist"}`, http.StatusNotFound)
	}))
	defer srv.Close()
	tr, _ := openFake(t, "admin="+srv.URL+"&tenant=nope")
	err := tr.CreateTopic(context.Background(), "busbar.bus.orders", transport.TopicOptions{})
	if err == nil || !contains(err.Error(), "404") || !contains(err.Error(), "Tenant does not exist") {
		t.Fatalf("error %v", err)
	}
	// Without admin, CreateTopic leaves topics to the brokers.
	tr2, _ := openFake(t, "")
	if err := tr2.CreateTopic(context.Background(), "busbar.bus.orders", transport.TopicOptions{}); err != nil {
		t.Fatal(err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
