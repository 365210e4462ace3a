// Package alert notifies people when jobs go wrong: PowerJob's alarm, with
// the holes closed.
//
// The scheduler server that owns an app feeds a Notifier with events (an
// instance failed, a fire was missed) and with run outcomes (Observe),
// from which the Notifier derives failure-rate events. Rules from the
// configuration match events by app, job and kind and name the channels
// (signed webhooks, email) that receive them.
//
// What it guarantees:
//
//   - Notify never blocks on the network: events go to a bounded queue
//     drained by a few sender goroutines. A full queue drops the event and
//     counts it (Stats.Dropped) with a warning; overload shows, it is never
//     absorbed.
//   - A silence window per (rule, job, kind) is honoured (PowerJob #742):
//     after a notification no other event of that kind for that job is sent
//     through the rule for Rule.Silence, measured with this process's
//     monotonic clock and, across failover, by the Ledger.
//   - Each (event, channel) delivery is sent once across servers: it is
//     claimed in a shared Ledger before it is sent and marked sent after.
//     See Ledger for what happens when a server dies mid-delivery.
//   - Failure-rate windows are counts per time bucket, so memory is bounded
//     per (rule, job) whatever the run rate.
package alert
