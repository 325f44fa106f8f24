#!/usr/bin/env bash
# Installs and starts what `make test` needs on a fresh machine. Today the
# event path needs nothing outside Go: the embedded transport runs inside the
# test binaries. Later components (ClickHouse, the Kafka emulator) hook in here.
set -euo pipefail
command -v go >/dev/null || { echo "test-deps: Go is not installed (https://go.dev/dl/)" >&2; exit 1; }
go mod download
