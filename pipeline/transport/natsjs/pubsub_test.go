package natsjs

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/busbar/busbar/pipeline/transport"
)

// TestUniversal runs watermill's contract suite against the embedded
// transport. Each constructor call makes its own publisher and subscriber
// (own connections) on one embedded server; the plain constructor always
// uses the same consumer group, like busbar's routers do.
//
// Flags, honestly: consumer groups yes; persistent yes; exactly-once no
// (at-least-once); order is guaranteed only for one subscriber with
// MaxInFlight 1, which is what the suite's constructor makes; a new
// subscriber of an existing group continues where the group is, so
// NewSubscriberReceivesOldMessages is false (a new group does get old
// messages: TestNewGroupGetsOldMessages).
func TestUniversal(t *testing.T) {
	tr := open(t, t.TempDir(), "")
	opts := transport.SubscribeOptions{MaxInFlight: 1, DrainTimeout: time.Second}
	cg := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		pub, err := tr.NewPublisher()
		if err != nil {
			t.Fatal(err)
		}
		sub, err := tr.NewSubscriber(group, opts)
		if err != nil {
			t.Fatal(err)
		}
		return pub, sub
	}
	tests.TestPubSub(t, tests.Features{
		ConsumerGroups:                      true,
		ExactlyOnceDelivery:                 false,
		GuaranteedOrder:                     true,
		GuaranteedOrderWithSingleSubscriber: true,
		Persistent:                          true,
		NewSubscriberReceivesOldMessages:    false,
	},
		func(t *testing.T) (message.Publisher, message.Subscriber) { return cg(t, "universal") },
		cg,
	)
}

// TestUniversalConcurrent runs the suite again with MaxInFlight 16, the way
// routers run (a handler goroutine per message): no order promised.
func TestUniversalConcurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	tr := open(t, t.TempDir(), "")
	opts := transport.SubscribeOptions{MaxInFlight: 16, DrainTimeout: time.Second}
	cg := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		pub, err := tr.NewPublisher()
		if err != nil {
			t.Fatal(err)
		}
		sub, err := tr.NewSubscriber(group, opts)
		if err != nil {
			t.Fatal(err)
		}
		return pub, sub
	}
	tests.TestPubSub(t, tests.Features{
		ConsumerGroups: true,
		Persistent:     true,
	},
		func(t *testing.T) (message.Publisher, message.Subscriber) { return cg(t, "universal") },
		cg,
	)
}
