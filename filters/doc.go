// Package filters decides which rules an event matches and reshapes events
// for targets. Patterns (the EventBridge JSON pattern language, plus the
// busbar extensions contains and regex) and expr-lang filters are compiled
// once when config loads (ValidatePattern, ValidateFilter, NewMatcher); the
// event path calls Matcher.Match with the structured CloudEvents JSON of
// each event.
//
// All rules of a bus compile into one automaton (automaton.go) fed by a
// one-pass flattener (flatten.go) that keeps only the fields patterns use,
// so the cost of matching depends on the event and the fields in use, not
// on the number of rules; Match allocates nothing. Explain and
// TestPatternHandler serve `busbar test-pattern` and POST /v1/test-pattern.
// The language is documented in docs/patterns.md and pinned by
// testdata/conformance.
//
// It must not import routers, sinks or sources: it is pure computation.
package filters
