package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/jetworker/jetworker/subjects"
)

// traceEvent is one line of `jetworker trace`: a message seen on NATS or
// a revision of a stored record.
type traceEvent struct {
	At      time.Time
	Kind    string // publish, request, reply, error, status, record, task
	Subject string
	Reply   string // a request's reply subject
	Size    int
	Headers nats.Header

	Body        any    // the decoded body; nil when empty or undecodable
	Encoding    string // msgpack or json; "" for an empty body
	Undecodable string // why the body did not decode

	ErrorCode string        // error replies: the Jw-Error code
	Status    string        // status replies (no responders): the Status header
	ReplyTo   string        // replies: the subject of the request answered
	Latency   time.Duration // replies: since the request was seen

	Bucket   string // records: the KV bucket, key and revision
	Key      string
	Revision uint64
	Op       string // put, delete, purge

	Instance string // the instance it is about, when one (header, subject or body)
	Job      string
}

// Trace event kinds.
const (
	kindPublish = "publish"
	kindRequest = "request"
	kindReply   = "reply"
	kindError   = "error"
	kindStatus  = "status"
	kindRecord  = "record"
	kindTask    = "task"
)

// newMsgEvent decodes a message into an event (never fails: a body that
// does not decode is kept as its reason). Replies are classified by the
// caller, which knows the request.
func newMsgEvent(m *nats.Msg, at time.Time) *traceEvent {
	ev := &traceEvent{At: at, Kind: kindPublish, Subject: m.Subject, Reply: m.Reply, Size: len(m.Data), Headers: m.Header}
	if m.Reply != "" {
		ev.Kind = kindRequest
	}
	ev.Body, ev.Encoding, ev.Undecodable = decodeBody(m.Data)
	ev.ErrorCode = m.Header.Get(subjects.HeaderError)
	ev.Status = m.Header.Get("Status")
	ev.Instance, ev.Job = aboutOf(ev)
	return ev
}

// decodeBody decodes a body: msgpack (every jetworker message), or JSON
// (JetStream's acknowledgements and API replies).
func decodeBody(data []byte) (body any, encoding, undecodable string) {
	if len(data) == 0 {
		return nil, "", ""
	}
	v, err := subjects.DecodeLoose(data)
	if err == nil {
		return v, "msgpack", ""
	}
	if t := bytes.TrimSpace(data); len(t) > 0 && (t[0] == '{' || t[0] == '[') && json.Valid(t) {
		dec := json.NewDecoder(bytes.NewReader(t))
		dec.UseNumber()
		if jerr := dec.Decode(&v); jerr == nil {
			return v, "json", ""
		}
	}
	return nil, "", strings.TrimPrefix(err.Error(), "subjects: ")
}

// markReply makes ev a reply to req.
func (ev *traceEvent) markReply(req *traceEvent) {
	switch {
	case ev.ErrorCode != "":
		ev.Kind = kindError
	case ev.Status != "" && ev.Size == 0:
		ev.Kind = kindStatus
	default:
		ev.Kind = kindReply
	}
	ev.ReplyTo, ev.Latency = req.Subject, ev.At.Sub(req.At)
	if ev.Instance == "" {
		ev.Instance = req.Instance
	}
	if ev.Job == "" {
		ev.Job = req.Job
	}
}

// batchKeys are the list fields of batch messages whose items name an
// instance (InstanceStatuses, RunInstances, RunBatch, RunResults, a page).
var batchKeys = []string{"statuses", "runs", "results", "items"}

// aboutOf is the instance and job a message is about: the Jw-Instance and
// Jw-Job headers when present, else the body (the logs subject, a top-level
// instance_id or job_id, or the one value all items of a batch share).
func aboutOf(ev *traceEvent) (instance, job string) {
	instance, job = ev.Headers.Get(subjects.HeaderInstance), ev.Headers.Get(subjects.HeaderJob)
	if instance == "" {
		if a, err := subjects.Parse(ev.Subject); err == nil && a.Kind == "logs" {
			instance = a.Instance
		}
	}
	body, _ := ev.Body.(map[string]any)
	if instance == "" {
		instance = shared(body, "instance_id")
	}
	if job == "" {
		job = shared(body, "job_id")
	}
	return instance, job
}

// shared returns key's value in body, or in the items of its batch when
// every item has the same one.
func shared(body map[string]any, key string) string {
	if s := idOf(body, key); s != "" {
		return s
	}
	out := ""
	eachItem(body, func(item map[string]any) bool {
		s := idOf(item, key)
		if s == "" || out != "" && s != out {
			out = ""
			return false
		}
		out = s
		return true
	})
	return out
}

// idOf reads key from m; for job_id also the job spec's (job.job_id, or
// job.id in a job definition).
func idOf(m map[string]any, key string) string {
	if s, ok := m[key].(string); ok && s != "" {
		return s
	}
	if key == "job_id" {
		if j, ok := m["job"].(map[string]any); ok {
			for _, k := range []string{"job_id", "id"} {
				if s, ok := j[k].(string); ok && s != "" {
					return s
				}
			}
		}
	}
	return ""
}

// eachItem calls fn with every map item of body's batch lists until fn
// returns false.
func eachItem(body map[string]any, fn func(map[string]any) bool) {
	for _, k := range batchKeys {
		list, _ := body[k].([]any)
		for _, it := range list {
			if m, ok := it.(map[string]any); ok && !fn(m) {
				return
			}
		}
	}
}

// mentions reports whether ev is about the instance or job id (key is
// instance_id or job_id): by the header when the sender set it, else by
// the body, where a batch matches when any of its items does.
func mentions(ev *traceEvent, header, key, id string) bool {
	if h := ev.Headers.Get(header); h != "" {
		return h == id
	}
	if key == "instance_id" && ev.Instance == id || key == "job_id" && ev.Job == id {
		return true
	}
	body, _ := ev.Body.(map[string]any)
	found := false
	eachItem(body, func(item map[string]any) bool {
		found = idOf(item, key) == id
		return !found
	})
	return found
}

// ---- text ----

// maxLine bounds one text line; longer summaries end with "…".
const maxLine = 600

// formatText renders ev as one line: receive time, kind, subject (or
// bucket/key and revision), size, the Jw-* headers and the body's key
// fields.
func formatText(ev *traceEvent, utc bool) string {
	var b strings.Builder
	at := ev.At
	if utc {
		at = at.UTC()
	}
	b.WriteString(at.Format("15:04:05.000"))
	kind := ev.Kind
	switch {
	case ev.Kind == kindError:
		kind = "error(" + ev.ErrorCode + ")"
	case ev.Kind == kindStatus:
		kind = "status(" + ev.Status + ")"
	}
	fmt.Fprintf(&b, " %-8s ", kind)
	if ev.Bucket != "" {
		fmt.Fprintf(&b, "%s/%s rev %d", ev.Bucket, ev.Key, ev.Revision)
		if ev.Op != "" && ev.Op != "put" {
			b.WriteString(" " + ev.Op)
		}
	} else {
		b.WriteString(ev.Subject)
	}
	fmt.Fprintf(&b, " %dB", ev.Size)
	if ev.ReplyTo != "" {
		fmt.Fprintf(&b, " re %s +%s", ev.ReplyTo, ev.Latency.Round(time.Microsecond))
	}
	if h := jwHeaders(ev.Headers); h != "" {
		b.WriteString(" [" + h + "]")
	}
	switch {
	case ev.Undecodable != "":
		fmt.Fprintf(&b, " undecodable (%d bytes): %s", ev.Size, ev.Undecodable)
	case ev.Kind == kindStatus && ev.Status == "503":
		b.WriteString(" no responders")
	case ev.Body != nil:
		s := summary(ev.Body, ev.Kind, utc)
		if s != "" {
			b.WriteString(" " + s)
		}
	}
	return clip(b.String(), maxLine)
}

// jwHeaders lists the Jw-* headers but Jw-Error (shown as the kind), in a
// fixed order.
func jwHeaders(h nats.Header) string {
	var out []string
	for _, k := range []string{subjects.HeaderApp, subjects.HeaderJob, subjects.HeaderInstance, subjects.HeaderTask} {
		if v := h.Get(k); v != "" {
			out = append(out, k+"="+v)
		}
	}
	var rest []string
	for k := range h {
		if strings.HasPrefix(k, "Jw-") && k != subjects.HeaderError && !slices.Contains([]string{subjects.HeaderApp, subjects.HeaderJob, subjects.HeaderInstance, subjects.HeaderTask}, k) {
			rest = append(rest, k+"="+h.Get(k))
		}
	}
	slices.Sort(rest)
	return strings.Join(append(out, rest...), " ")
}

// firstKeys come first in a summary, in this order; the rest follow
// sorted.
var firstKeys = []string{"instance_id", "id", "job_id", "task_id", "app", "server_id", "worker_id", "tracker_id", "tracker_worker",
	"state", "code", "message", "counts", "result", "reason", "accepted", "rejected", "already", "epoch", "seq"}

// recordKeys are the fields of an instance record worth a line.
var recordKeys = []string{"state", "tracker_worker", "workers", "counts", "result", "expected_ms", "trigger_ms", "finished_ms", "run_count", "epoch", "note"}

// summary renders the key fields of a body: zero values left out, long
// strings and payloads cut, long lists counted.
func summary(v any, kind string, utc bool) string {
	m, ok := v.(map[string]any)
	if !ok {
		return render(v, "", 0, kind == kindTask, utc)
	}
	keys := orderedKeys(m)
	if kind == kindRecord {
		keys = slices.DeleteFunc(slices.Clone(recordKeys), func(k string) bool { _, ok := m[k]; return !ok })
	}
	return renderMap(m, keys, 0, kind == kindTask, utc)
}

func orderedKeys(m map[string]any) []string {
	var keys, rest []string
	for _, k := range firstKeys {
		if _, ok := m[k]; ok {
			keys = append(keys, k)
		}
	}
	for k := range m {
		if k != "v" && !slices.Contains(firstKeys, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	return append(keys, rest...)
}

func renderMap(m map[string]any, keys []string, depth int, taskish, utc bool) string {
	var parts []string
	for _, k := range keys {
		val := m[k]
		if isZero(val) {
			continue
		}
		parts = append(parts, k+"="+render(val, k, depth, taskish, utc))
	}
	return strings.Join(parts, " ")
}

// render renders one value; key names it (for states and times), depth
// bounds nesting, taskish says states are task states.
func render(v any, key string, depth int, taskish, utc bool) string {
	switch x := v.(type) {
	case string:
		return quote(clip(x, 48))
	case []byte:
		return fmt.Sprintf("<%d bytes>", len(x))
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return number(key, x, taskish, utc)
	case uint64:
		if x <= math.MaxInt64 {
			return number(key, int64(x), taskish, utc)
		}
		return strconv.FormatUint(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', 6, 64)
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return number(key, n, taskish, utc)
		}
		return x.String()
	case map[string]any:
		if depth >= 2 {
			return fmt.Sprintf("{%d keys}", len(x))
		}
		return "{" + renderMap(x, orderedKeys(x), depth+1, taskish || key == "reports" || key == "tasks", utc) + "}"
	case []any:
		return renderList(x, key, depth, taskish, utc)
	case nil:
		return "nil"
	}
	return clip(fmt.Sprint(v), 48)
}

// renderList shows up to 3 scalars or one small map; longer lists as a
// count.
func renderList(l []any, key string, depth int, taskish, utc bool) string {
	taskish = taskish || key == "reports" || key == "tasks"
	if len(l) == 1 && depth < 2 {
		if m, ok := l[0].(map[string]any); ok {
			return "[" + render(m, key, depth, taskish, utc) + "]"
		}
	}
	if len(l) > 3 {
		return fmt.Sprintf("%d items", len(l))
	}
	parts := make([]string, 0, len(l))
	for _, it := range l {
		switch it.(type) {
		case map[string]any, []any:
			return fmt.Sprintf("%d items", len(l))
		}
		parts = append(parts, render(it, "", depth+1, taskish, utc))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// number renders an integer: states by name, Unix-millisecond times of
// *_ms fields as a clock time, the rest as is.
func number(key string, n int64, taskish, utc bool) string {
	switch {
	case key == "state" && n >= 0 && n <= math.MaxUint8:
		if taskish {
			return subjects.TaskState(n).String()
		}
		return subjects.InstanceState(n).String()
	case strings.HasSuffix(key, "_ms") && n > 1e12: // a date, not a duration
		t := time.UnixMilli(n)
		if utc {
			t = t.UTC()
		}
		return t.Format("15:04:05.000")
	}
	return strconv.FormatInt(n, 10)
}

func isZero(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []byte:
		return len(x) == 0
	case bool:
		return !x
	case int64:
		return x == 0
	case uint64:
		return x == 0
	case float64:
		return x == 0
	case json.Number:
		return x == "0"
	case map[string]any:
		for _, e := range x {
			if !isZero(e) {
				return false
			}
		}
		return true
	case []any:
		return len(x) == 0
	}
	return false
}

// quote quotes s when it would not read as one token.
func quote(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\n\"=[]{}") || !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	return s
}

// clip cuts s to at most n runes, marking the cut.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// ---- JSON ----

// traceJSON is one line of `jetworker trace --json`: a stable interface
// for scripts (new fields may be added).
type traceJSON struct {
	Time        string              `json:"time"`
	Kind        string              `json:"kind"`
	Subject     string              `json:"subject,omitempty"`
	Reply       string              `json:"reply,omitempty"`
	Size        int                 `json:"size"`
	Headers     map[string][]string `json:"headers,omitempty"`
	ErrorCode   string              `json:"error_code,omitempty"`
	Status      string              `json:"status,omitempty"`
	InReplyTo   string              `json:"in_reply_to,omitempty"`
	LatencyMS   *float64            `json:"latency_ms,omitempty"`
	Bucket      string              `json:"bucket,omitempty"`
	Key         string              `json:"key,omitempty"`
	Revision    uint64              `json:"revision,omitempty"`
	Op          string              `json:"op,omitempty"`
	InstanceID  string              `json:"instance_id,omitempty"`
	JobID       string              `json:"job_id,omitempty"`
	Encoding    string              `json:"encoding,omitempty"`
	Body        any                 `json:"body,omitempty"`
	Undecodable string              `json:"undecodable,omitempty"`
}

// formatJSON renders ev as one JSON object (no newline), with the full
// decoded body.
func formatJSON(ev *traceEvent) []byte {
	j := traceJSON{Time: ev.At.Format(time.RFC3339Nano), Kind: ev.Kind, Subject: ev.Subject, Reply: ev.Reply, Size: ev.Size,
		Headers: ev.Headers, ErrorCode: ev.ErrorCode, Status: ev.Status, InReplyTo: ev.ReplyTo, Bucket: ev.Bucket, Key: ev.Key,
		Revision: ev.Revision, Op: ev.Op, InstanceID: ev.Instance, JobID: ev.Job, Encoding: ev.Encoding, Body: jsonable(ev.Body),
		Undecodable: ev.Undecodable}
	if ev.ReplyTo != "" {
		ms := float64(ev.Latency.Microseconds()) / 1000
		j.LatencyMS = &ms
	}
	b, err := json.Marshal(j)
	if err != nil { // unreachable: jsonable leaves nothing json cannot encode
		b, _ = json.Marshal(traceJSON{Time: j.Time, Kind: j.Kind, Subject: j.Subject, Size: j.Size, Undecodable: err.Error()})
	}
	return b
}

// jsonable replaces what encoding/json refuses (NaN and infinite floats)
// and keeps the rest; []byte becomes base64.
func jsonable(v any) any {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return strconv.FormatFloat(x, 'g', -1, 64)
		}
	case float32:
		return jsonable(float64(x))
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	}
	return v
}

// skippedText and skippedJSON report lines left out by the rate bound.
func skippedText(n int, rate int) string {
	return fmt.Sprintf("... %d messages skipped (over --max-rate %d/s)", n, rate)
}

func skippedJSON(at time.Time, n int) []byte {
	b, _ := json.Marshal(struct {
		Time  string `json:"time"`
		Kind  string `json:"kind"`
		Count int    `json:"count"`
	}{at.Format(time.RFC3339Nano), "skipped", n})
	return b
}
