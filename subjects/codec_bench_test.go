package subjects_test

import (
	"fmt"
	"testing"

	"github.com/jetworker/jetworker/subjects"
)

// BenchmarkUnmarshalHotBatches decodes the batch messages of the API path
// (1,000 items each, as the worker and the client send them).
func BenchmarkUnmarshalHotBatches(b *testing.B) {
	spec := subjects.JobSpec{JobID: "bench-noop", Name: "noop", ProcessorType: "go", Processor: "demo.sleep",
		ExecuteType: subjects.ExecStandalone, TimeType: subjects.TimeAPI, Dispatch: "health"}
	statuses := &subjects.InstanceStatuses{}
	runs := &subjects.RunInstances{}
	batch := &subjects.RunBatch{App: "bench", Key: "k1"}
	for i := range 1000 {
		id := fmt.Sprintf("01JDZ3K8Q5W7X9Y2A4B6C8D%04d", i)
		statuses.Statuses = append(statuses.Statuses, subjects.InstanceStatus{InstanceID: id, JobID: spec.JobID,
			WorkerID: "w-7f3a9c", State: subjects.InstanceSucceeded, Counts: subjects.TaskCounts{Total: 1, Succeeded: 1}, Seq: 3, Epoch: 1})
		runs.Runs = append(runs.Runs, subjects.RunInstance{ServerID: "s-1", InstanceID: id, Job: spec, Epoch: 1})
		batch.Runs = append(batch.Runs, subjects.RunJob{App: "bench", Job: spec})
	}
	for _, m := range []subjects.Message{statuses, runs, batch} {
		data, err := subjects.Marshal(m)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("%T", m)[len("*subjects."):], func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				var out subjects.InstanceStatuses
				var outRuns subjects.RunInstances
				var outBatch subjects.RunBatch
				var err error
				switch m.(type) {
				case *subjects.InstanceStatuses:
					err = subjects.Unmarshal(data, &out)
				case *subjects.RunInstances:
					err = subjects.Unmarshal(data, &outRuns)
				default:
					err = subjects.Unmarshal(data, &outBatch)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
