// Package pipeline owns busbar's event model: what a CloudEvent must hold
// before it may land on a bus, how it is normalised (default id and time,
// ingestion-time extension) and how it is encoded for the transport.
//
// Everything downstream of a source (routers, dispatchers, sinks) works on the
// encoded form, structured-mode CloudEvents JSON, and never decodes it unless a
// rule or transform needs to. This package must not import sources, routers or
// sinks; the engine that wires them lives in pipeline/engine.
package pipeline
