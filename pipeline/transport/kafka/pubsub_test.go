package kafka

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/busbar/busbar/pipeline/transport"
)

// TestUniversal runs watermill's contract suite against both client paths
// on a kfake cluster, with topics of one partition. Each constructor call
// makes its own publisher and subscriber (own clients); the plain
// constructor always uses the same consumer group, as busbar's routers do.
//
// Flags: consumer groups yes; persistent yes; exactly-once no
// (at-least-once); order is guaranteed for one subscriber with MaxInFlight
// 1 on one partition, which is what the suite makes. A new subscriber of an
// existing group continues where the group is, so
// NewSubscriberReceivesOldMessages is false (a new group starts at the
// oldest retained record).
func TestUniversal(t *testing.T) {
	for _, scheme := range []string{SchemeFranz, SchemeSarama} {
		t.Run(scheme, func(t *testing.T) {
			if scheme == SchemeSarama && testing.Short() {
				t.Skip("short: the Sarama path is the slower one")
			}
			c := cluster(t)
			tr := open(t, c, scheme, "partitions=1")
			universal(t, tr, 1, tests.Features{
				ConsumerGroups:                      true,
				ExactlyOnceDelivery:                 false,
				GuaranteedOrder:                     true,
				GuaranteedOrderWithSingleSubscriber: true,
				Persistent:                          true,
				NewSubscriberReceivesOldMessages:    false,
			})
		})
	}
}

// TestUniversalConcurrent runs the suite with MaxInFlight 16 on topics of 4
// partitions, the way routers run: no order promised.
func TestUniversalConcurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	c := cluster(t)
	tr := open(t, c, SchemeFranz, "partitions=4")
	universal(t, tr, 16, tests.Features{ConsumerGroups: true, Persistent: true})
}

func universal(t *testing.T, tr *Transport, inFlight int, f tests.Features) {
	opts := transport.SubscribeOptions{MaxInFlight: inFlight, DrainTimeout: 2 * time.Second, NackDelay: 10 * time.Millisecond}
	cg := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		pub, err := tr.newPublisher()
		if err != nil {
			t.Fatal(err)
		}
		sub, err := tr.Subscriber(group, opts)
		if err != nil {
			t.Fatal(err)
		}
		return pub, sub
	}
	tests.TestPubSub(t, f,
		func(t *testing.T) (message.Publisher, message.Subscriber) { return cg(t, "universal") },
		cg,
	)
}
