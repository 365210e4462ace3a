package jetstream

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetworker/jetworker/subjects"
)

// Buckets of the job store.
const (
	BucketJobs  = "jw_jobs"  // key <app>.<jobId>: subjects.Job
	BucketFires = "jw_fires" // key <app>.<jobId>: the last scheduled cron time fired (unix ms)
)

// Jobs is the job definition store plus each cron job's last fire time.
type Jobs struct {
	kv    jetstream.KeyValue
	fires jetstream.KeyValue
}

// OpenJobs binds to (or creates) the buckets.
func OpenJobs(ctx context.Context, js jetstream.JetStream, replicas int) (*Jobs, error) {
	kv, err := ensureKV(ctx, js, jetstream.KeyValueConfig{Bucket: BucketJobs, History: 1, Replicas: replicas, Storage: jetstream.FileStorage})
	if err != nil {
		return nil, err
	}
	fires, err := ensureKV(ctx, js, jetstream.KeyValueConfig{Bucket: BucketFires, History: 1, Replicas: replicas, Storage: jetstream.FileStorage})
	if err != nil {
		return nil, err
	}
	return &Jobs{kv: kv, fires: fires}, nil
}

// JobKey is the store key of a job.
func JobKey(app, id string) string { return app + "." + id }

// Create stores a new job; ErrExists when the id is taken.
func (s *Jobs) Create(ctx context.Context, j *subjects.Job) (uint64, error) {
	b, err := msgpack.Marshal(j)
	if err != nil {
		return 0, err
	}
	rev, err := s.kv.Create(ctx, JobKey(j.App, j.ID), b)
	return rev, mapErr(err)
}

// Update replaces a job if its revision still matches (ErrConflict if not).
func (s *Jobs) Update(ctx context.Context, j *subjects.Job, rev uint64) (uint64, error) {
	b, err := msgpack.Marshal(j)
	if err != nil {
		return 0, err
	}
	nrev, err := s.kv.Update(ctx, JobKey(j.App, j.ID), b, rev)
	return nrev, mapErr(err)
}

// Get returns a job with its revision; ErrNotFound when absent.
func (s *Jobs) Get(ctx context.Context, app, id string) (*subjects.Job, error) {
	e, err := s.kv.Get(ctx, JobKey(app, id))
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", id, mapErr(err))
	}
	return DecodeJob(e)
}

// DecodeJob decodes a job entry, setting its Revision.
func DecodeJob(e jetstream.KeyValueEntry) (*subjects.Job, error) {
	var j subjects.Job
	if err := msgpack.Unmarshal(e.Value(), &j); err != nil {
		return nil, fmt.Errorf("job %s: corrupt entry: %w", e.Key(), err)
	}
	j.Revision = e.Revision()
	return &j, nil
}

// Delete removes a job and its fire record.
func (s *Jobs) Delete(ctx context.Context, app, id string) error {
	if _, err := s.kv.Get(ctx, JobKey(app, id)); err != nil {
		return fmt.Errorf("job %s: %w", id, mapErr(err))
	}
	if err := s.kv.Delete(ctx, JobKey(app, id)); err != nil {
		return mapErr(err)
	}
	_ = s.fires.Delete(ctx, JobKey(app, id))
	return nil
}

// List returns an app's jobs sorted by name.
func (s *Jobs) List(ctx context.Context, app string) ([]*subjects.Job, error) {
	es, err := entries(ctx, s.kv, app+".>")
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	out := make([]*subjects.Job, 0, len(es))
	for _, e := range es {
		j, err := DecodeJob(e)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	sort.Slice(out, func(i, k int) bool { return out[i].Name < out[k].Name })
	return out, nil
}

// Watch streams an app's job changes, current values first (a nil entry
// ends them); deletes arrive with Operation() != KeyValuePut.
func (s *Jobs) Watch(ctx context.Context, app string) (jetstream.KeyWatcher, error) {
	return s.kv.Watch(ctx, app+".>")
}

// FireState is a job's trigger record: the last scheduled cron time fired
// and, for a frequent job, the instance that keeps it running.
type FireState struct {
	LastMS   int64  `msgpack:"last_ms"`
	Instance string `msgpack:"instance"`
	Revision uint64 `msgpack:"-"`
}

// Fire returns a job's trigger record (zero if none yet).
func (s *Jobs) Fire(ctx context.Context, app, id string) (FireState, error) {
	e, err := s.fires.Get(ctx, JobKey(app, id))
	if err != nil {
		if errors.Is(mapErr(err), ErrNotFound) {
			return FireState{}, nil
		}
		return FireState{}, mapErr(err)
	}
	var f FireState
	if err := msgpack.Unmarshal(e.Value(), &f); err != nil {
		return FireState{}, fmt.Errorf("fire record %s: corrupt: %w", e.Key(), err)
	}
	f.Revision = e.Revision()
	return f, nil
}

// SetFire writes a job's trigger record by compare-and-set from
// f.Revision (0: it must not exist yet). ErrConflict means another server
// wrote it first: this one must re-read, and may no longer own the app.
func (s *Jobs) SetFire(ctx context.Context, app, id string, f FireState) (FireState, error) {
	b, err := msgpack.Marshal(&f)
	if err != nil {
		return f, err
	}
	var rev uint64
	if f.Revision == 0 {
		rev, err = s.fires.Create(ctx, JobKey(app, id), b)
		if errors.Is(mapErr(err), ErrExists) {
			return f, fmt.Errorf("%w: %w", ErrConflict, err)
		}
	} else {
		rev, err = s.fires.Update(ctx, JobKey(app, id), b, f.Revision)
	}
	if err != nil {
		return f, mapErr(err)
	}
	f.Revision = rev
	return f, nil
}

// Find returns a job by id alone (any app).
func (s *Jobs) Find(ctx context.Context, id string) (*subjects.Job, error) {
	es, err := entries(ctx, s.kv, "*."+id)
	if err != nil {
		return nil, err
	}
	if len(es) == 0 {
		return nil, fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	return DecodeJob(es[0])
}
