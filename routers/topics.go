package routers

// Topic names on the transport. Names of buses, rules and targets are
// restricted by config validation to letters, digits, '-' and '_', so the
// dot-separated forms below are unambiguous.

// BusTopic is the topic that holds a bus's events.
func BusTopic(bus string) string { return "busbar.bus." + bus }

// BusDLQTopic receives events a bus's router could not route (not JSON).
func BusDLQTopic(bus string) string { return "busbar.dlq.bus." + bus }

// PipeDLQTopic is the dead-letter queue of a pipe.
func PipeDLQTopic(pipe string) string { return "busbar.dlq.pipe." + pipe }

// SourceDLQTopic receives the records a (Kafka or Pulsar) source could not
// turn into events.
func SourceDLQTopic(source string) string { return "busbar.dlq.source." + source }

// QueueTopic is the durable queue of one (rule, target) pair.
func QueueTopic(bus, rule, target string) string {
	return "busbar.q." + bus + "." + rule + "." + target
}

// DLQTopic is the dead-letter queue of one (rule, target) pair.
func DLQTopic(bus, rule, target string) string {
	return "busbar.dlq." + bus + "." + rule + "." + target
}

// Consumer groups used by the event path.
const (
	GroupRouter   = "router"
	GroupDispatch = "dispatch"
)
