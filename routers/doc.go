// Package routers assembles the watermill handlers of the event path: the
// rule router of a bus (read each event once, evaluate every rule, hand a copy
// to the durable queue of each matched (rule, target)) and the dispatcher of
// a target queue (deliver through the sink, retry with backoff, dead-letter
// what cannot be delivered). Both work on structured CloudEvents JSON and
// never decode it.
//
// It must not know which transport or which sink kind it runs on: it sees
// watermill's Publisher and the sinks.Sink interface only.
package routers
