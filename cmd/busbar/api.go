package main

import "net/http"

// mountAPI adds the management and tooling endpoints.
func mountAPI(mux *http.ServeMux) {}
