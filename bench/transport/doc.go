// Package transport holds the benchmarks of busbar's transports (publish
// throughput and latency at a fixed rate, consume throughput per consumer
// group, idle CPU). It owns no code that busbar runs; results are recorded
// in bench/RESULTS.md.
package transport
