// Package http is the HTTP ingest API of busbar: CloudEvents over HTTP in
// structured, binary and batch mode (POST /v1/buses/{bus}/events) and the
// EventBridge-style PutEvents batch (POST /v1/buses/{bus}/put-events).
//
// Every request is hostile until validated: bodies are capped, JSON is parsed
// strictly, each event is normalised and checked by pipeline.Normalize and
// pipeline.Encode. A request is answered only after the bus has durably
// accepted its events (Publisher.Publish returned), so a 2xx means nothing
// can be lost. It must not know about rules, targets or the transport.
package http
