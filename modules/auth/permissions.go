package auth

import (
	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// Role is what an identity may do.
type Role string

// Roles.
const (
	RoleServer   Role = "server"
	RoleAdmin    Role = "admin"
	RoleOperator Role = "operator"
	RoleViewer   Role = "viewer"
	RoleWorker   Role = "worker" // of one app
)

// Permissions are an identity's NATS permissions.
type Permissions struct {
	PubAllow, PubDeny []string
	SubAllow          []string
	// AllowResponses lets the identity answer requests it received (one
	// reply per request) on the requester's inbox.
	AllowResponses bool
}

// InboxPrefix is the inbox of the identity with NKey public key pub
// (natsconn sets it on connections with an NKey).
func InboxPrefix(pub string) string { return subjects.Inbox(pub) }

// operatorVerbs are the server request verbs that change something;
// readVerbs those that only read.
var (
	operatorVerbs = []string{subjects.VerbRunJob, subjects.VerbRunBatch, subjects.VerbStopRun, subjects.VerbJobSave,
		subjects.VerbJobDelete, subjects.VerbJobEnable, subjects.VerbJobRun, subjects.VerbInstRetry, subjects.VerbContainer}
	readVerbs = []string{subjects.VerbInstActive}
)

// For returns the permissions of role for the identity whose inbox is
// inbox (InboxPrefix); app is the worker's app.
func For(role Role, app, inbox string) Permissions {
	switch role {
	case RoleServer, RoleAdmin:
		return Permissions{PubAllow: []string{">"}, SubAllow: []string{">"}}
	case RoleOperator, RoleViewer:
		return client(role == RoleOperator, inbox)
	case RoleWorker:
		return worker(app, inbox)
	}
	return Permissions{}
}

// streamReads are the JetStream API requests that read stream s: bind
// (info), gets (direct or not) and the ordered consumers behind watches
// and listings (created, read, deleted).
func streamReads(s string) []string {
	return []string{
		"$JS.API.STREAM.INFO." + s,
		"$JS.API.STREAM.MSG.GET." + s,
		"$JS.API.DIRECT.GET." + s, "$JS.API.DIRECT.GET." + s + ".>",
		"$JS.API.CONSUMER.CREATE." + s, "$JS.API.CONSUMER.CREATE." + s + ".>",
		"$JS.API.CONSUMER.INFO." + s + ".>",
		"$JS.API.CONSUMER.DELETE." + s + ".>",
		"$JS.API.CONSUMER.MSG.NEXT." + s + ".>",
	}
}

// keyReads are the JetStream API requests that read the keys of kv under
// prefix (a key prefix ending in "."), and nothing else of it: gets by
// subject and watches filtered on the prefix.
func keyReads(kv jetstream.KV, prefix string) []string {
	s := kv.Stream()
	return []string{
		"$JS.API.STREAM.INFO." + s,
		"$JS.API.DIRECT.GET." + s + "." + kv.Subject(prefix) + ">",
		"$JS.API.CONSUMER.CREATE." + s + ".*." + kv.Subject(prefix) + ">",
		"$JS.API.CONSUMER.INFO." + s + ".>",
		"$JS.API.CONSUMER.DELETE." + s + ".>",
		"$JS.API.CONSUMER.MSG.NEXT." + s + ".>",
	}
}

func worker(app, inbox string) Permissions {
	tasks := jetstream.TasksKV(app)
	art := jetstream.Artifacts(app)
	own := subjects.Prefix + "." + app
	p := Permissions{
		PubAllow: []string{own + ".>", tasks.Subjects(), "$JS.API.STREAM.PURGE." + tasks.Stream()},
		SubAllow: []string{own + ".worker.>", own + ".workers.>", inbox + ".>"},
		// Not the index chains (the server's) nor what operators ask of
		// the server.
		PubDeny:        []string{own + ".index.>"},
		AllowResponses: true,
	}
	for _, v := range append(append([]string{}, operatorVerbs...), readVerbs...) {
		p.PubDeny = append(p.PubDeny, subjects.ServerVerb(app, "*", v))
	}
	p.PubAllow = append(p.PubAllow, streamReads(tasks.Stream())...)
	p.PubAllow = append(p.PubAllow, streamReads(art.Stream())...)
	p.PubAllow = append(p.PubAllow, keyReads(jetstream.RegistryKV, jetstream.ContainerKey(app, ""))...)
	return p
}

func client(write bool, inbox string) Permissions {
	p := Permissions{
		PubAllow: []string{
			subjects.Acquire("*"), subjects.Assert("*"),
			subjects.WorkerVerb("*", "*", subjects.MailboxTaskTracker, subjects.VerbQuery),
			// Reads of every store (they are all JetStream streams).
			"$JS.API.INFO", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST",
			"$JS.API.STREAM.INFO.*", "$JS.API.STREAM.MSG.GET.*",
			"$JS.API.DIRECT.GET.>",
			"$JS.API.CONSUMER.CREATE.>", "$JS.API.CONSUMER.INFO.>",
			"$JS.API.CONSUMER.DELETE.>", "$JS.API.CONSUMER.MSG.NEXT.>",
		},
		SubAllow: []string{inbox + ".>"},
	}
	verbs := readVerbs
	if write {
		verbs = append(append([]string{}, readVerbs...), operatorVerbs...)
		// Container artifacts (see the package doc).
		p.PubAllow = append(p.PubAllow, jetstream.AllObjectSubjects)
	}
	for _, v := range verbs {
		p.PubAllow = append(p.PubAllow, subjects.ServerVerb("*", "*", v))
	}
	return p
}
