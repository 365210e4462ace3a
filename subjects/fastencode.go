package subjects

import "github.com/vmihailenco/msgpack/v5"

// Hand-written encoders for the messages on the hot paths (a worker's
// final statuses, the run-batches the server sends workers). They write
// exactly the bytes the reflective encoder writes — every field in
// declaration order, uint8 and the fixed-width integer kinds at full
// width, int compact, a nil slice as nil — so the golden fixtures pin them
// like any message; only the reflection is gone.

func encodeKey(e *msgpack.Encoder, k string) error { return e.EncodeString(k) }

// EncodeMsgpack implements msgpack.CustomEncoder.
func (m *InstanceStatus) EncodeMsgpack(e *msgpack.Encoder) error {
	_ = e.EncodeMapLen(10)
	_ = encodeKey(e, "v")
	_ = e.EncodeUint8(m.V)
	_ = encodeKey(e, "instance_id")
	_ = e.EncodeString(m.InstanceID)
	_ = encodeKey(e, "job_id")
	_ = e.EncodeString(m.JobID)
	_ = encodeKey(e, "worker_id")
	_ = e.EncodeString(m.WorkerID)
	_ = encodeKey(e, "state")
	_ = e.EncodeUint8(uint8(m.State))
	_ = encodeKey(e, "counts")
	_ = m.Counts.EncodeMsgpack(e)
	_ = encodeKey(e, "result")
	_ = e.EncodeString(m.Result)
	_ = encodeKey(e, "seq")
	_ = e.EncodeUint64(m.Seq)
	_ = encodeKey(e, "epoch")
	_ = e.EncodeUint64(m.Epoch)
	_ = encodeKey(e, "recent")
	if m.Recent == nil {
		return e.EncodeNil()
	}
	return e.Encode(m.Recent)
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (c *TaskCounts) EncodeMsgpack(e *msgpack.Encoder) error {
	_ = e.EncodeMapLen(5)
	_ = encodeKey(e, "total")
	_ = e.EncodeInt64(c.Total)
	_ = encodeKey(e, "waiting")
	_ = e.EncodeInt64(c.Waiting)
	_ = encodeKey(e, "running")
	_ = e.EncodeInt64(c.Running)
	_ = encodeKey(e, "succeeded")
	_ = e.EncodeInt64(c.Succeeded)
	_ = encodeKey(e, "failed")
	return e.EncodeInt64(c.Failed)
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (j *JobSpec) EncodeMsgpack(e *msgpack.Encoder) error {
	n := 15
	if j.RetentionMS != 0 {
		n++
	}
	_ = e.EncodeMapLen(n)
	for _, f := range [...]struct{ k, v string }{{"job_id", j.JobID}, {"name", j.Name}, {"processor_type", j.ProcessorType},
		{"processor", j.Processor}, {"execute_type", string(j.ExecuteType)}, {"time_type", string(j.TimeType)}} {
		_ = encodeKey(e, f.k)
		_ = e.EncodeString(f.v)
	}
	_ = encodeKey(e, "period_ms")
	_ = e.EncodeInt64(j.PeriodMS)
	_ = encodeKey(e, "params")
	_ = e.EncodeString(j.Params)
	_ = encodeKey(e, "max_instances")
	_ = e.EncodeInt(int64(j.MaxInstances))
	_ = encodeKey(e, "concurrency")
	_ = e.EncodeInt(int64(j.Concurrency))
	_ = encodeKey(e, "time_limit_ms")
	_ = e.EncodeInt64(j.TimeLimitMS)
	_ = encodeKey(e, "task_retries")
	_ = e.EncodeInt(int64(j.TaskRetries))
	_ = encodeKey(e, "max_workers")
	_ = e.EncodeInt(int64(j.MaxWorkers))
	_ = encodeKey(e, "dispatch")
	_ = e.EncodeString(j.Dispatch)
	_ = encodeKey(e, "log_mode")
	err := e.EncodeString(j.LogMode)
	if j.RetentionMS != 0 {
		_ = encodeKey(e, "retention_ms")
		err = e.EncodeInt64(j.RetentionMS)
	}
	return err
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (m *RunInstance) EncodeMsgpack(e *msgpack.Encoder) error {
	_ = e.EncodeMapLen(8)
	_ = encodeKey(e, "v")
	_ = e.EncodeUint8(m.V)
	_ = encodeKey(e, "server_id")
	_ = e.EncodeString(m.ServerID)
	_ = encodeKey(e, "instance_id")
	_ = e.EncodeString(m.InstanceID)
	_ = encodeKey(e, "job")
	_ = m.Job.EncodeMsgpack(e)
	_ = encodeKey(e, "instance_params")
	_ = e.EncodeString(m.Params)
	_ = encodeKey(e, "workers")
	if m.Workers == nil {
		_ = e.EncodeNil()
	} else {
		_ = e.EncodeArrayLen(len(m.Workers))
		for _, w := range m.Workers {
			_ = e.EncodeString(w)
		}
	}
	_ = encodeKey(e, "resume")
	_ = e.EncodeBool(m.Resume)
	_ = encodeKey(e, "epoch")
	return e.EncodeUint64(m.Epoch)
}
