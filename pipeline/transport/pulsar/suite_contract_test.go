package pulsar

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/busbar/busbar/pipeline/transport"
)

// TestContractWatermillSuiteOnFake runs watermill's universal Pub/Sub suite
// against the adapter on pulsarfake. It is a contract test: it shows the
// adapter keeps watermill's Publisher/Subscriber contract (close, context
// cancellation, acks, nacks, redelivery, consumer groups) on a broker that
// behaves as the fake models Pulsar. It is not a compatibility test: the
// same suite runs against a real broker in TestIntegrationUniversal when
// PULSAR_URL is set.
func TestContractWatermillSuiteOnFake(t *testing.T) {
	for _, sub := range []string{SubKeyShared, SubShared} {
		t.Run(sub, func(t *testing.T) {
			tr, _ := openFake(t, "subscription="+sub)
			universal(t, tr, 1, tests.Features{
				ConsumerGroups:                      true,
				GuaranteedOrder:                     true,
				GuaranteedOrderWithSingleSubscriber: true,
				Persistent:                          true,
			})
		})
	}
}

// universal runs watermill's suite on tr. Each constructor call makes its
// own publisher and subscriber; the plain constructor always uses the same
// group, as busbar's routers do.
func universal(t *testing.T, tr *Transport, inFlight int, f tests.Features) {
	opts := transport.SubscribeOptions{MaxInFlight: inFlight, DrainTimeout: 2 * time.Second, NackDelay: 10 * time.Millisecond}
	cg := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		sub, err := tr.Subscriber(group, opts)
		if err != nil {
			t.Fatal(err)
		}
		return tr.NewPublisher(), sub
	}
	tests.TestPubSub(t, f,
		func(t *testing.T) (message.Publisher, message.Subscriber) { return cg(t, "universal") },
		cg,
	)
}
