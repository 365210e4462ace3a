// Package subjects is jetworker's wire protocol: every NATS subject name
// (builders such as Assert, HeartbeatSubject and WorkerVerb, and Parse,
// their inverse), every message exchanged on them (msgpack structs with a
// protocol version field), the typed error reply (Error and its codes) and
// the header names.
//
// It is a pure leaf: no I/O, no goroutines, no state, and no imports of
// other jetworker packages, so that every module, the CLI and tests can
// share it, and so that it can be read as the specification. Marshal and
// Unmarshal are the only way messages are encoded: they stamp and check the
// version, bound the size (MaxMessageSize), refuse malformed input before
// the msgpack decoder allocates for it, and validate required fields.
//
// PROTOCOL.md in this directory describes the protocol for implementers in
// other languages; testdata/golden at the repository root holds a fixture
// of every message, byte for byte.
package subjects
