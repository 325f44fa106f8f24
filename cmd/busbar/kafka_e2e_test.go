package main

// End-to-end tests of busbar on the Kafka transport, against kfake (the
// Kafka protocol served by franz-go's emulator on loopback TCP, in this
// process, so it outlives busbar subprocesses that are killed).

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// e2eTransports are the transports the event-path tests run on.
var e2eTransports = []struct {
	name string
	url  func(t *testing.T) string
}{
	{"embedded", func(*testing.T) string { return "embedded://" }},
	{"kafka", func(t *testing.T) string { return kafkaURL(t, newKafka(t, 1), "partitions=3") }},
}

// newKafka starts a 3-broker kfake cluster for the test, with automatic
// topic creation and partitions partitions per created topic.
func newKafka(t *testing.T, partitions int) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(partitions))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// kafkaURL is the transport URL of c with extra query options.
func kafkaURL(_ *testing.T, c *kfake.Cluster, query string) string {
	u := "kafka://" + strings.Join(c.ListenAddrs(), ",") + "?session_timeout=6s&commit_interval=200ms"
	if query != "" {
		u += "&" + query
	}
	return u
}
