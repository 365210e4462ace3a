package subjects

import (
	"errors"
	"fmt"
	"strings"
)

// Prefix is the first token of every jetworker subject.
const Prefix = "jw"

// ServerQueue is the queue group that servers use for the app-wide request
// subjects (assert, acquire), so exactly one server answers each request.
const ServerQueue = "jw-servers"

// Mailbox names mirror PowerJob's actors.
const (
	MailboxDeployContainer  = "deploy-container"
	MailboxTaskTracker      = "task-tracker"
	MailboxProcessorTracker = "processor-tracker"
)

// ErrBadToken is returned by ValidToken for names that cannot be used as a
// single subject token.
var ErrBadToken = errors.New("subjects: invalid token")

// MaxTokenLen bounds app names, worker ids and server ids.
const MaxTokenLen = 128

// ValidToken reports whether s can be used as one subject token (an app
// name, worker id, server id or instance id): 1 to MaxTokenLen characters of
// letters, digits, '-', '_' or '='. Dots, spaces, wildcards and '>' are
// rejected because they would change the subject's shape; the same alphabet
// is valid in JetStream KV keys.
func ValidToken(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrBadToken)
	}
	if len(s) > MaxTokenLen {
		return fmt.Errorf("%w: %q is longer than %d characters", ErrBadToken, s[:16]+"...", MaxTokenLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '=':
		default:
			return fmt.Errorf("%w: %q has %q at %d (allowed: letters, digits, '-', '_', '=')", ErrBadToken, s, c, i)
		}
	}
	return nil
}

func join(tokens ...string) string { return strings.Join(tokens, ".") }

// Assert is the subject a worker asks to check that its app exists
// (request-reply, servers' queue group). PowerJob: GET /server/assert.
func Assert(app string) string { return join(Prefix, app, "server", "assert") }

// Acquire is the subject a worker asks which server owns its app
// (request-reply, servers' queue group). PowerJob: GET /server/acquire.
func Acquire(app string) string { return join(Prefix, app, "server", "acquire") }

// ServerVerb is a subject addressed to one server for one app, such as
// "heartbeat" or "instance-status".
func ServerVerb(app, serverID, verb string) string {
	return join(Prefix, app, "server", serverID, verb)
}

// Server verbs.
const (
	VerbHeartbeat      = "heartbeat"
	VerbInstanceStatus = "instance-status"
	VerbWorkerCluster  = "worker-cluster"
	VerbContainer      = "container"
)

// HeartbeatSubject is where a worker publishes its health to its current server.
func HeartbeatSubject(app, serverID string) string { return ServerVerb(app, serverID, VerbHeartbeat) }

// LogsSubject is the subject of an instance's log batches; the logs stream captures
// LogsAll.
func LogsSubject(app, instanceID string) string { return join(Prefix, app, "logs", instanceID) }

// LogsAll matches every app's log subjects (the logs stream's filter).
const LogsAll = Prefix + ".*.logs.*"

// WorkerVerb is a subject in one worker's mailbox:
// jw.<app>.worker.<workerId>.<mailbox>.<verb>.
func WorkerVerb(app, workerID, mailbox, verb string) string {
	return join(Prefix, app, "worker", workerID, mailbox, verb)
}

// WorkerAll matches every mailbox subject of one worker.
func WorkerAll(app, workerID string) string { return join(Prefix, app, "worker", workerID, ">") }

// WorkersBroadcast is a mailbox verb fanned out to every worker of an app
// (jw.<app>.workers.<mailbox>), used to deploy containers everywhere.
func WorkersBroadcast(app, mailbox string) string { return join(Prefix, app, "workers", mailbox) }

// Address is a parsed jetworker subject.
type Address struct {
	App      string
	Kind     string // "server", "worker", "workers" or "logs"
	ServerID string // set for server-addressed verbs
	WorkerID string // set for worker mailboxes
	Mailbox  string // worker mailbox (task-tracker, ...)
	Verb     string // assert, acquire, heartbeat, start-task, ...
	Instance string // set for logs
}

// ErrBadSubject is returned by Parse for subjects outside the protocol.
var ErrBadSubject = errors.New("subjects: not a jetworker subject")

// Parse splits a jetworker subject into its parts. It is the inverse of the
// builders above and rejects anything they cannot produce.
func Parse(subject string) (Address, error) {
	t := strings.Split(subject, ".")
	bad := func() (Address, error) { return Address{}, fmt.Errorf("%w: %q", ErrBadSubject, subject) }
	if len(t) < 4 || t[0] != Prefix {
		return bad()
	}
	// Every token after the prefix must be one the builders accept as an id
	// or name, so no wildcard, empty or oversized token gets into an Address
	// that callers reuse as a subject token or KV key.
	for _, tok := range t[1:] {
		if ValidToken(tok) != nil {
			return bad()
		}
	}
	a := Address{App: t[1], Kind: t[2]}
	switch {
	case a.Kind == "server" && len(t) == 4:
		a.Verb = t[3]
	case a.Kind == "server" && len(t) == 5:
		a.ServerID, a.Verb = t[3], t[4]
	case a.Kind == "worker" && len(t) == 6:
		a.WorkerID, a.Mailbox, a.Verb = t[3], t[4], t[5]
	case a.Kind == "workers" && len(t) == 4:
		a.Mailbox = t[3]
	case a.Kind == "logs" && len(t) == 4:
		a.Instance = t[3]
	default:
		return bad()
	}
	return a, nil
}

// Inbox is the reply inbox prefix of the NATS identity whose NKey public
// key is pub: each identity gets replies on its own inbox, and NATS
// permissions let it subscribe to that one only.
func Inbox(pub string) string { return "_INBOX." + pub }
