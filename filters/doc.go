// Package filters decides which rules an event matches and reshapes events
// for targets. Patterns (the EventBridge JSON pattern language) are compiled
// once when config loads; the event path calls Matcher.Match with the
// structured CloudEvents JSON of each event.
//
// It must not import routers, sinks or sources: it is pure computation.
package filters
