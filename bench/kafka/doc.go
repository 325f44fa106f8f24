// Package kafka holds the benchmarks of busbar on Kafka (issue 6): publish
// and consume throughput of each Kafka client path of the transport
// (kafka:// franz-go, kafka+sarama:// Sarama), and the Kafka source → one
// rule → Kafka sink path through a whole engine. The broker is kfake (the
// Kafka protocol emulated in this process, 3 brokers on loopback), so the
// figures include the emulator's own CPU on the same two cores: they rank
// the client paths and show busbar's overhead, they are not a Kafka
// cluster's capacity. Results are in bench/RESULTS.md.
//
//	go test ./bench/kafka -run '^$' -bench . -benchtime 20000x
package kafka
