package main

import (
	"net/http"

	"github.com/busbar/busbar/filters"
	"github.com/busbar/busbar/filters/transform"
)

// mountAPI adds the tooling endpoints that need no running bus.
func mountAPI(mux *http.ServeMux) {
	mux.Handle("/v1/test-pattern", filters.TestPatternHandler())
	mux.Handle("/v1/test-transform", transform.TestTransformHandler())
}
