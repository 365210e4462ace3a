// Package handler is the one adapter between NATS messages and jetworker's
// request handlers, shared by the server's micro endpoints and the worker's
// mailboxes.
//
// Typed turns a function of a typed request into a Func: it decodes the
// msgpack body (subjects.Unmarshal, which also calls the request's
// Validate), runs an optional owner check, then the function. Handle runs a
// Func on one message: it recovers a panic into a CodeInternal reply
// (logged at error level with the subject and the stack), maps the error
// to a typed wire error (subjects.Error) whose message is for people, and
// answers requests; a publish gets no answer, and bad input on it is logged
// with its subject. Nothing a peer sends makes the process crash.
package handler
