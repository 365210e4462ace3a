// Package bench measures a jetworker cluster the way users deploy it: the
// real binary started as separate processes (`jetworker nats`, `server`,
// `worker`) on loopback, driven over TCP by this process as the submitter.
// It reports throughput from the first submit to the last SUCCEEDED
// record stored, the CPU seconds and peak RSS of every process over the
// measured phase, and, in the same run against the same NATS, a raw
// JetStream work-queue yardstick (PublishAsync, then pull Consume + Ack),
// so that a figure can be read as a ratio to what the broker itself does
// on this machine at this moment.
//
// NATS is one node, or (ClusterConfig.NATSNodes) a routed cluster of
// `jetworker nats` processes, each with its own store; on three the
// server puts every store on R3, which CheckReplicas verifies before a
// run, and the yardstick uses the same replicas.
//
// `jetworker bench` is its command; the binary under test is chosen with
// --bin, so two commits can be measured side by side by one driver.
package bench
