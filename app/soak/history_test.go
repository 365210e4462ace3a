package soak

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	jwjs "github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// step is one stored version of an instance record.
type step struct {
	state    subjects.InstanceState
	runCount int
	note     string
	tracker  string
	epoch    uint64
	server   string
}

func (s step) String() string {
	return fmt.Sprintf("%s run=%d epoch=%d tracker=%s server=%s note=%q", s.state, s.runCount, s.epoch, s.tracker, s.server, s.note)
}

// history follows every write to the instances bucket from the start
// (a KV watcher with history), so that a final state that was later
// overwritten is seen even when the record now looks fine.
type history struct {
	mu      sync.Mutex
	steps   map[string][]step
	records map[string]*jwjs.Instance // latest version
}

// watchHistory starts the watcher; it ends with ctx.
func watchHistory(ctx context.Context, js jetstream.JetStream) (*history, error) {
	kv, err := js.KeyValue(ctx, jwjs.BucketInstances)
	if err != nil {
		return nil, err
	}
	w, err := kv.WatchAll(ctx, jetstream.IncludeHistory())
	if err != nil {
		return nil, err
	}
	h := &history{steps: map[string][]step{}, records: map[string]*jwjs.Instance{}}
	go func() {
		<-ctx.Done()
		_ = w.Stop()
	}()
	go func() {
		for e := range w.Updates() {
			if e == nil || e.Operation() != jetstream.KeyValuePut || !jwjs.IsRecordKey(e.Key()) {
				continue // nil marks the end of the initial values
			}
			in, err := jwjs.DecodeInstance(e.Key(), e.Value())
			if err != nil {
				continue
			}
			h.mu.Lock()
			h.steps[in.ID] = append(h.steps[in.ID], step{state: in.State, runCount: in.RunCount, note: in.Note,
				tracker: in.TrackerWorker, epoch: in.Epoch, server: in.ServerID})
			h.records[in.ID] = in
			h.mu.Unlock()
		}
	}()
	return h, nil
}

// snapshot copies what was seen so far.
func (h *history) snapshot() (map[string][]step, map[string]*jwjs.Instance) {
	h.mu.Lock()
	defer h.mu.Unlock()
	steps := make(map[string][]step, len(h.steps))
	for k, v := range h.steps {
		steps[k] = append([]step(nil), v...)
	}
	recs := make(map[string]*jwjs.Instance, len(h.records))
	for k, v := range h.records {
		recs[k] = v
	}
	return steps, recs
}
