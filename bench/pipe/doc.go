// Package pipe benchmarks a pipe end to end (issue 7): small JSON records on
// a Kafka topic, a pattern keeping about half of them, the rest into the
// ClickHouse events table — no bus, no queue. The broker is kfake (the
// Kafka protocol emulated in this process), the ClickHouse server the dev
// server of make test (or CLICKHOUSE_ADDR), all on the same machine: the
// figures are what busbar, its broker and its database get done together
// on these cores. Each run checks the table holds exactly the kept records.
// Results: bench/RESULTS.md.
//
//	go test -run '^$' -bench . -benchtime 1000000x ./bench/pipe
//
// PIPE_CPUPROFILE=/tmp/pipe.cpu writes a CPU profile of each measured part
// (without producing the records) to /tmp/pipe.cpu-json and -string.
package pipe
