package tasktracker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	jwjs "github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// record is a task_info entry: PowerJob's task_info row.
type record struct {
	Name      string             `msgpack:"name"`
	State     subjects.TaskState `msgpack:"state"`
	Attempt   int                `msgpack:"attempt"`
	Worker    string             `msgpack:"worker"`
	Result    string             `msgpack:"result"`
	Payload   []byte             `msgpack:"payload"`
	CreatedMS int64              `msgpack:"created_ms"`
	UpdatedMS int64              `msgpack:"updated_ms"`
}

// metaKey holds the RunInstance of a heavy instance, for resume.
const metaTask = "meta"

// mapPrefix starts the keys of mapped chunks: "<instanceId>.m.<first task
// id>". A map request is stored as one entry holding all its sub-tasks
// (one durable write per chunk, not per task); a task gets its own entry
// when it ends. Task ids never start with "m." (they are "0…", "b.…").
const mapPrefix = "m."

// endedPrefix starts the keys of report batches: "<instanceId>.r.<first
// task id>". The outcomes of one report batch are one entry; a task ends
// once, so the first id of a batch names it uniquely.
const endedPrefix = "r."

// endedTask is a task's outcome inside a report batch entry.
type endedTask struct {
	ID      string             `msgpack:"id"`
	Name    string             `msgpack:"name"`
	State   subjects.TaskState `msgpack:"state"`
	Attempt int                `msgpack:"attempt"`
	Worker  string             `msgpack:"worker"`
	Result  string             `msgpack:"result"`
}

// mappedChunk is the stored form of one map request.
type mappedChunk struct {
	Parent string              `msgpack:"parent"`
	Tasks  []subjects.TaskSpec `msgpack:"tasks"`
}

// store writes task_info entries with asynchronous JetStream publishes, so
// that a batch of N writes costs one round trip, not N.
type store struct {
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	layout jwjs.KV
	prefix string // the subject of key "" ("$KV.<bucket>.")
}

func newStore(js jetstream.JetStream, kv jetstream.KeyValue) *store {
	l := jwjs.KV{Bucket: kv.Bucket()}
	return &store{js: js, kv: kv, layout: l, prefix: l.Subject("")}
}

func key(instanceID, taskID string) string { return instanceID + "." + taskID }

// put starts a write and returns its ack future.
func (s *store) put(instanceID, taskID string, r *record) (jetstream.PubAckFuture, error) {
	b, err := msgpack.Marshal(r)
	if err != nil {
		return nil, err
	}
	return s.js.PublishAsync(s.prefix+key(instanceID, taskID), b)
}

// putChunk starts the write of a map request's sub-tasks as one entry.
func (s *store) putChunk(instanceID, parent string, tasks []subjects.TaskSpec) (jetstream.PubAckFuture, error) {
	b, err := msgpack.Marshal(&mappedChunk{Parent: parent, Tasks: tasks})
	if err != nil {
		return nil, err
	}
	return s.js.PublishAsync(s.prefix+key(instanceID, mapPrefix+tasks[0].TaskID), b)
}

// putEnded starts the write of a batch of task outcomes as one entry.
func (s *store) putEnded(instanceID string, ended []endedTask) (jetstream.PubAckFuture, error) {
	b, err := msgpack.Marshal(ended)
	if err != nil {
		return nil, err
	}
	return s.js.PublishAsync(s.prefix+key(instanceID, endedPrefix+ended[0].ID), b)
}

// putMeta writes the instance's run request synchronously.
func (s *store) putMeta(ctx context.Context, run *subjects.RunInstance) error {
	b, err := subjects.Marshal(run)
	if err != nil {
		return err
	}
	_, err = s.kv.Put(ctx, key(run.InstanceID, metaTask), b)
	return err
}

// wait blocks until every future is acknowledged, retrying failed writes
// (with their data) until they succeed or ctx ends. A future always ends:
// the JetStream context fails one whose acknowledgement does not come
// within natsconn.PublishAsyncTimeout (lost with a stream leader that
// died), and it is written again like any failed write.
func (s *store) wait(ctx context.Context, futures []jetstream.PubAckFuture) error {
	for _, f := range futures {
		msg := f.Msg()
		for attempt := 0; ; attempt++ {
			var err error
			select {
			case <-f.Ok():
			case err = <-f.Err():
			case <-ctx.Done():
				return ctx.Err()
			}
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("task store: %w (last: %w)", ctx.Err(), err)
			}
			// Re-publish until the write is sent: a future whose error was
			// taken never reports again, so it must not be waited on twice.
			for nf := jetstream.PubAckFuture(nil); nf == nil; attempt++ {
				select { // back off before re-publishing a failed write
				case <-time.After(time.Duration(min(attempt+1, 20)) * 50 * time.Millisecond):
				case <-ctx.Done():
					return ctx.Err()
				}
				nf, _ = s.js.PublishAsync(msg.Subject, msg.Data)
				f = nf
			}
		}
	}
	return nil
}

// purge deletes every entry of an instance.
func (s *store) purge(ctx context.Context, instanceID string) error {
	st, err := s.js.Stream(ctx, s.layout.Stream())
	if err != nil {
		return err
	}
	return st.Purge(ctx, jetstream.WithPurgeSubject(s.prefix+instanceID+".>"))
}

// errNoEntries is returned by load for an instance with nothing stored.
var errNoEntries = errors.New("task store: no entries for instance")

// load reads an instance's meta and task entries (for resume): one ordered
// watch over its keys, not a get per key.
func (s *store) load(ctx context.Context, instanceID string) (*subjects.RunInstance, map[string]*record, error) {
	w, err := s.kv.Watch(ctx, instanceID+".>")
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = w.Stop() }()
	var meta *subjects.RunInstance
	recs := map[string]*record{}
	var chunks []*mappedChunk
	var ended [][]endedTask
	// Sub-tasks of stored map chunks that have no entry of their own are
	// waiting; outcomes in report batches, and entries of their own
	// (written when they ended), win.
	expand := func() {
		for _, c := range chunks {
			for _, t := range c.Tasks {
				if _, ok := recs[t.TaskID]; !ok {
					recs[t.TaskID] = &record{Name: t.TaskName, State: subjects.TaskWaiting, Payload: t.Payload}
				}
			}
		}
		for _, batch := range ended {
			for _, t := range batch {
				if r, ok := recs[t.ID]; ok && r.State.Final() {
					continue
				}
				recs[t.ID] = &record{Name: t.Name, State: t.State, Attempt: t.Attempt, Worker: t.Worker, Result: t.Result}
			}
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, nil, errors.New("task store: watch closed")
			}
			if e == nil { // initial values delivered
				expand()
				if meta == nil && len(recs) == 0 {
					return nil, nil, errNoEntries
				}
				return meta, recs, nil
			}
			if e.Operation() != jetstream.KeyValuePut {
				continue
			}
			taskID := e.Key()[len(instanceID)+1:]
			if strings.HasPrefix(taskID, endedPrefix) {
				var batch []endedTask
				if err := msgpack.Unmarshal(e.Value(), &batch); err != nil {
					return nil, nil, fmt.Errorf("report batch %s: corrupt entry: %w", e.Key(), err)
				}
				ended = append(ended, batch)
				continue
			}
			if strings.HasPrefix(taskID, mapPrefix) {
				var c mappedChunk
				if err := msgpack.Unmarshal(e.Value(), &c); err != nil {
					return nil, nil, fmt.Errorf("map chunk %s: corrupt entry: %w", e.Key(), err)
				}
				chunks = append(chunks, &c)
				continue
			}
			if taskID == metaTask {
				var m subjects.RunInstance
				if err := subjects.Unmarshal(e.Value(), &m); err == nil {
					meta = &m
				}
				continue
			}
			var r record
			if err := msgpack.Unmarshal(e.Value(), &r); err != nil {
				return nil, nil, fmt.Errorf("task %s: corrupt entry: %w", e.Key(), err)
			}
			recs[taskID] = &r
		}
	}
}
