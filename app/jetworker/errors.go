package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"regexp"
	"strings"
	"syscall"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"gopkg.in/yaml.v3"

	"github.com/jetworker/jetworker/app"
	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/client"
	"github.com/jetworker/jetworker/modules/natsconn"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/subjects"
)

// Exit codes of the binary (documented in `jetworker --help`).
const (
	exitOK          = 0 // the command (and the instance it waited for) succeeded
	exitFailed      = 1 // the instance failed or was stopped; any other error
	exitUsage       = 2 // bad flags, arguments or input files
	exitNotFound    = 3 // unknown app, job or instance
	exitUnreachable = 4 // cannot reach NATS, or no server answers
	exitDenied      = 5 // NATS denied this identity a subject
)

const exitCodesHelp = `Exit codes:
  0  succeeded
  1  the instance failed or was stopped (or another error)
  2  usage error (flags, arguments, job file)
  3  not found (unknown app, job or instance)
  4  cannot reach NATS, or no server answers
  5  permission denied (the NATS identity may not use a subject)`

// cliError is an error already worded for people, with its exit code.
type cliError struct {
	code int
	msg  string
	err  error // the cause, printed with --log-level debug
}

func (e *cliError) Error() string { return e.msg }
func (e *cliError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &cliError{code: exitUsage, msg: fmt.Sprintf(format, args...)}
}

func notFoundf(cause error, format string, args ...any) error {
	return &cliError{code: exitNotFound, msg: fmt.Sprintf(format, args...), err: cause}
}

// errFailed makes the binary exit 1 after printing the outcome.
var errFailed = &cliError{code: exitFailed, msg: "instance did not succeed"}

// explain turns any error of a command into a message for people and an
// exit code: one place, so that every command words errors alike and
// prints them once.
func explain(err error) (string, int) {
	var ce *cliError
	if errors.As(err, &ce) {
		return ce.msg, ce.code
	}
	var conn *natsconn.ConnectError
	if errors.As(err, &conn) {
		return connectMessage(conn), exitUnreachable
	}
	var denied *natsconn.PermissionError
	if errors.As(err, &denied) {
		return denied.Error() + " (see the identity's permissions: `jetworker auth init` gives workers their app only, " +
			"operators the servers' request subjects and reads, viewers reads only)", exitDenied
	}
	var port *natsconn.PortInUseError
	if errors.As(err, &port) {
		return port.Error(), exitFailed
	}
	var typed *subjects.Error
	if errors.As(err, &typed) {
		msg := tidy(typed.Message)
		switch typed.Code {
		case subjects.CodeUnknownApp, subjects.CodeNotFound:
			return msg, exitNotFound
		case subjects.CodeBadRequest, subjects.CodeUnknownProcessor:
			return msg, exitUsage
		}
		return msg, exitFailed
	}
	var jf *client.JobFileError
	if errors.As(err, &jf) {
		return jf.Error(), exitUsage
	}
	var yerr *yaml.TypeError
	if errors.As(err, &yerr) {
		return tidy(err.Error()), exitUsage
	}
	if errors.Is(err, app.ErrInterrupted) {
		return "interrupted during start-up", exitFailed
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Sprintf("%s: %s", pe.Path, pe.Err), exitUsage
	}
	switch {
	case errors.Is(err, jetstream.ErrNotInitialised):
		return "no jetworker server answered: start `jetworker dev` or `jetworker server` (" + tidy(err.Error()) + ")", exitUnreachable
	case errors.Is(err, jetstream.ErrNotFound):
		return tidy(err.Error()), exitNotFound
	case errors.Is(err, rpc.ErrNoResponders), errors.Is(err, rpc.ErrTimeout):
		return "no jetworker server answered: start `jetworker dev` or `jetworker server` (" + tidy(err.Error()) + ")", exitUnreachable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout), errors.Is(err, njs.ErrNoStreamResponse):
		return "NATS did not answer in time (" + tidy(err.Error()) + "): on a cluster that has just lost a node, " +
			"JetStream elects new leaders within seconds; try again", exitUnreachable
	case errors.Is(err, nats.ErrNoServers), errors.Is(err, syscall.ECONNREFUSED):
		return "cannot reach NATS: start `jetworker dev` or pass --nats URL", exitUnreachable
	case isUsage(err):
		return err.Error(), exitUsage
	}
	return tidy(err.Error()), exitFailed
}

func connectMessage(e *natsconn.ConnectError) string {
	var op *net.OpError
	switch {
	case errors.Is(e.Err, nats.ErrAuthorization), strings.Contains(strings.ToLower(e.Err.Error()), "authorization violation"),
		errors.Is(e.Err, nats.ErrAuthExpired), errors.Is(e.Err, nats.ErrAuthRevoked):
		return fmt.Sprintf("NATS at %s refused the credentials (authorization violation): check --nats-user/--nats-password, --nats-token, --nats-nkey or --nats-creds", e.URL)
	case errors.As(e.Err, &op), errors.Is(e.Err, nats.ErrNoServers), errors.Is(e.Err, nats.ErrTimeout):
		return fmt.Sprintf("cannot reach NATS at %s: start `jetworker dev` or pass --nats URL", e.URL)
	}
	return fmt.Sprintf("cannot connect to NATS at %s: %s", e.URL, tidy(e.Err.Error()))
}

// isUsage recognises cobra's own argument and flag errors.
func isUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "required flag", "invalid argument", "flag needs an argument", "bad flag syntax"} {
		if strings.HasPrefix(s, p) || strings.Contains(s, "\""+strings.TrimSpace(p)) {
			return true
		}
	}
	return false
}

// libPrefix matches the prefixes packages put on their sentinels; people
// need the words after them.
var libPrefix = regexp.MustCompile(`\b(nats|jetstream|rpc|subjects|yaml|natsconn): `)

// tidy removes library prefixes and Go type names, and says each thing
// once ("discovery: discovery: x" -> "discovery: x").
func tidy(s string) string {
	s = libPrefix.ReplaceAllString(s, "")
	s = regexp.MustCompile(`\*?[a-z]+\.[A-Z][A-Za-z]*: `).ReplaceAllString(s, "")
	parts := strings.Split(s, ": ")
	out := parts[:0]
	for i, p := range parts {
		if i > 0 && p == parts[i-1] {
			continue
		}
		out = append(out, p)
	}
	return strings.Join(out, ": ")
}
