// Package clickhouse is the ClickHouse sink and the query side of event
// history.
//
// The sink (type clickhouse) writes events in batches, over the native
// protocol or HTTP, to the default events table (CloudEvents attributes as
// columns, data as JSON; created when missing) or to a table of yours
// through a column mapping. Deliver hands one event to the current batch
// and returns when that batch is committed; DeliverBatch does the same for
// many events at once, for pipes that drive the sink without a bus. A
// failed insert is retried as the same batch with the same
// insert_deduplication_token, so ClickHouse drops a retried batch whose
// first try landed; while ClickHouse is down, deliveries wait (backpressure)
// with at most the target's concurrency of events in memory.
//
// The query side (Querier, QueryHandler) runs read-only SQL against the
// events table (readonly=1, a time limit, a row limit) and renders results
// as a terminal table, JSON, CSV or NDJSON; Search builds that SQL from
// structured filters for `busbar events`.
//
// The package must not know about buses, rules or the dispatcher: it gets
// deliveries and returns per-event results. docs/clickhouse.md is its
// manual.
package clickhouse
