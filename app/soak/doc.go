// Package soak holds a chaos soak test: it runs `jetworker nats`, two
// `jetworker server` and three `jetworker worker` processes on loopback,
// drives a mixed workload through the Go client while it kills, pauses and
// restarts them, and checks invariants over the instance records at the
// end. Run it with
//
//	go test ./app/soak -run TestSoak -soak.duration=2m -soak.seed=N -v
//
// The test lives in _test.go files; this file only names the package.
package soak
