package pulsar

// Integration tests against a real Pulsar broker, enabled by PULSAR_URL
// (for example pulsar://127.0.0.1:6650; PULSAR_ADMIN_URL, e.g.
// http://127.0.0.1:8080, adds topic creation and retention).
// deployments/pulsar/README.md starts a standalone broker for them. Without
// PULSAR_URL they are skipped, and `make test` says so: busbar's CI has no
// Pulsar broker, so these have not been run there.

import (
	"context"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/busbar/busbar/pipeline/transport"
)

// SkipMessage is what every Pulsar integration test says without a broker.
const SkipMessage = "Pulsar integration: SKIPPED (set PULSAR_URL)"

// openIntegration opens a transport on the broker of PULSAR_URL with a
// fresh topic prefix, so runs never see each other's messages.
func openIntegration(t *testing.T, query string) *Transport {
	t.Helper()
	raw := os.Getenv("PULSAR_URL")
	if raw == "" {
		t.Skip(SkipMessage)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("prefix", "it"+watermill.NewShortUUID()+".")
	if a := os.Getenv("PULSAR_ADMIN_URL"); a != "" && !q.Has("admin") {
		q.Set("admin", a)
	}
	extra, _ := url.ParseQuery(query)
	for k, v := range extra {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tr, err := OpenTransport(ctx, u, transport.Options{Logger: testLogger()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// TestIntegrationUniversal runs watermill's universal Pub/Sub suite against
// the broker of PULSAR_URL, for both subscription types.
func TestIntegrationUniversal(t *testing.T) {
	for _, sub := range []string{SubKeyShared, SubShared} {
		t.Run(sub, func(t *testing.T) {
			tr := openIntegration(t, "subscription="+sub)
			universal(t, tr, 1, tests.Features{
				ConsumerGroups:                      true,
				GuaranteedOrder:                     true,
				GuaranteedOrderWithSingleSubscriber: true,
				Persistent:                          true,
			})
		})
	}
}

// TestIntegrationUniversalConcurrent runs the suite with MaxInFlight 16, the
// way routers run: no order promised.
func TestIntegrationUniversalConcurrent(t *testing.T) {
	tr := openIntegration(t, "")
	universal(t, tr, 16, tests.Features{ConsumerGroups: true, Persistent: true})
}

// TestIntegrationCreateTopic declares a topic with retention through the
// admin API (PULSAR_ADMIN_URL).
func TestIntegrationCreateTopic(t *testing.T) {
	if os.Getenv("PULSAR_ADMIN_URL") == "" {
		t.Skip("Pulsar admin integration: SKIPPED (set PULSAR_URL and PULSAR_ADMIN_URL)")
	}
	tr := openIntegration(t, "")
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if err := tr.CreateTopic(ctx, "busbar.bus.orders", transport.TopicOptions{MaxAge: time.Hour, MaxBytes: 1 << 30}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Publisher().Publish("busbar.bus.orders", newMsgs(3, "m")...); err != nil {
		t.Fatal(err)
	}
	sub, ch := subscribe(t, tr, "router", "busbar.bus.orders", fast)
	defer sub.Close()
	for _, m := range receive(t, ch, 3, 30*time.Second) {
		m.Ack()
	}
}
