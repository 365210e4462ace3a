// Package auth generates what a NATS needs to isolate jetworker's apps
// from each other: one NKey identity per role, the permissions of each
// (built from subjects and jetstream's store layout, nowhere else), a NATS
// server configuration holding them, and optionally TLS certificates with
// client certificates for every identity.
//
// Roles:
//
//   - server: everything (it owns every store and answers every app).
//   - admin: everything (registers apps, traces traffic, repairs stores).
//   - operator: acts through the servers' request subjects (run, stop,
//     jobs, containers) and reads the stores; writes no store directly.
//     The one exception is a container push's artifact, which the
//     operator uploads into the app's artifact store before asking the
//     owner to record it: artifacts are content-addressed (the md5 is the
//     version, checked by the owner and by every worker), so an upload
//     can add a module but not change what any version means.
//   - viewer: the operator's reads, and no request that changes anything.
//   - worker of app A: publishes and subscribes only on jw.A.… (but not
//     the operators' request verbs nor the index chains the server
//     writes), its own inbox, and its app's own stores (task_info read
//     and write; container registry entries and artifacts read).
//
// Every identity receives replies on an inbox of its own, _INBOX.<its
// public key>, which the Go client sets by itself from the NKey seed: no
// identity can subscribe to another's replies.
package auth
