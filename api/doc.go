// Package api serves busbar's management endpoints that act on a running
// engine: today the dead-letter queues (list, show, redrive). Ingest lives
// in sources/http; pattern and transform tooling in filters.
//
// It must not reach into transports or sinks: it works through the engine's
// exported views (routers.DeadLetters, the queue list).
package api
