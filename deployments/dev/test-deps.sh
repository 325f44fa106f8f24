#!/usr/bin/env bash
# Installs and starts what `make test` needs on a fresh machine. Today the
# event path needs nothing outside Go: the embedded transport runs inside the
# test binaries. Later components (ClickHouse, the Kafka emulator) hook in here.
set -euo pipefail
command -v go >/dev/null || { echo "test-deps: Go is not installed (https://go.dev/dl/)" >&2; exit 1; }
go mod download
# ClickHouse: the local server (libchdb, fetched once into ~/.cache/busbar).
# The tests find it through .data/clickhouse/addr and fail, not skip, when
# it is down; `make test` stops it afterwards if this step started it.
# CLICKHOUSE_ADDR=host:port points the tests at another server instead.
if [[ -z "${CLICKHOUSE_ADDR:-}" ]]; then
	"$(dirname "$0")/clickhouse.sh" start --for-tests >/dev/null
fi
