// Package sinks defines what a target's sink is and keeps the registry of sink
// kinds. Each kind lives in its own folder (sinks/http, …) and registers a
// constructor in init(); the dispatcher in routers calls Deliver and applies
// the target's retry and dead-letter policy around it, so sinks only do the
// network call and say whether a failure is worth retrying.
package sinks

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/busbar/busbar/config"
)

// Delivery is one event handed to a sink.
type Delivery struct {
	// EventID is the CloudEvent id, for logs.
	EventID string
	// Bus is the bus the event came through ("" on a pipe).
	Bus string
	// Event is the event in structured-mode CloudEvents JSON.
	Event []byte
	// Body, when not nil, is what the target's transform made of the event:
	// sinks send it as is, with ContentType, instead of the CloudEvent.
	Body        []byte
	ContentType string
}

// Sink delivers events to one target. Implementations are safe for
// concurrent use: the dispatcher calls Deliver from up to the target's
// concurrency goroutines at once.
type Sink interface {
	// Deliver sends one event. nil means the target accepted it. A failure
	// that retrying cannot fix is wrapped with Permanent; any other error is
	// retried under the target's policy.
	Deliver(ctx context.Context, d Delivery) error
	// Close releases connections; Deliver is not called afterwards.
	Close() error
}

// BatchSink is a Sink that takes many events in one call, as pipes hand them
// over: the result of ds[i] is errs[i], with Deliver's meaning.
type BatchSink interface {
	Sink
	DeliverBatch(ctx context.Context, ds []Delivery) (errs []error)
}

// Factory builds a sink from a validated target config.
type Factory func(t config.Target) (Sink, error)

var (
	mu        sync.RWMutex
	factories = map[string]Factory{}
)

// Register makes a sink kind available under its config type name.
func Register(kind string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := factories[kind]; dup {
		panic("sinks: kind registered twice: " + kind)
	}
	factories[kind] = f
}

// New builds the sink for a target.
func New(t config.Target) (Sink, error) {
	mu.RLock()
	f, ok := factories[t.Type]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("target %q: unknown type %q (known: %v)", t.ID, t.Type, Kinds())
	}
	return f(t)
}

// Kinds lists the registered sink kinds, sorted.
func Kinds() []string {
	mu.RLock()
	defer mu.RUnlock()
	k := make([]string, 0, len(factories))
	for name := range factories {
		k = append(k, name)
	}
	sort.Strings(k)
	return k
}

// permanentError marks a failure that must not be retried.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying (a 4xx answer, an event the
// target can never accept): the dispatcher dead-letters the event at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// StatusError carries the status code a target answered with (an HTTP
// status), for dead-letter records.
type StatusError struct {
	Status int
	Err    error
}

func (e *StatusError) Error() string { return e.Err.Error() }
func (e *StatusError) Unwrap() error { return e.Err }

// StatusOf returns the status code carried by err, or 0.
func StatusOf(err error) int {
	var s *StatusError
	if errors.As(err, &s) {
		return s.Status
	}
	return 0
}

// RetryAfterError carries a delay the target asked for (HTTP Retry-After).
type RetryAfterError struct {
	Err   error
	After time.Duration
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter returns the delay requested by the target, if any.
func RetryAfter(err error) (time.Duration, bool) {
	var r *RetryAfterError
	if errors.As(err, &r) {
		return r.After, true
	}
	return 0, false
}
