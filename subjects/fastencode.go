package subjects

import "github.com/vmihailenco/msgpack/v5"

// Hand-written encoders for the messages on the hot paths (a worker's
// final statuses, the run-batches the server sends workers). They write
// exactly the bytes the reflective encoder writes — every field in
// declaration order, uint8 and the fixed-width integer kinds at full
// width, int compact, a nil slice as nil — so the golden fixtures pin them
// like any message; only the reflection is gone.

// mapEncoder writes a struct's fields as the reflective encoder does and
// keeps the first error.
type mapEncoder struct {
	e   *msgpack.Encoder
	err error
}

func newMapEncoder(e *msgpack.Encoder, fields int) *mapEncoder {
	return &mapEncoder{e: e, err: e.EncodeMapLen(fields)}
}

// field writes a key and its value (write is skipped after an error).
func (m *mapEncoder) field(k string, write func(*msgpack.Encoder) error) *mapEncoder {
	if m.err == nil {
		m.err = m.e.EncodeString(k)
	}
	if m.err == nil {
		m.err = write(m.e)
	}
	return m
}

func (m *mapEncoder) str(k, v string) *mapEncoder {
	return m.field(k, func(e *msgpack.Encoder) error { return e.EncodeString(v) })
}
func (m *mapEncoder) u8(k string, v uint8) *mapEncoder {
	return m.field(k, func(e *msgpack.Encoder) error { return e.EncodeUint8(v) })
}
func (m *mapEncoder) u64(k string, v uint64) *mapEncoder {
	return m.field(k, func(e *msgpack.Encoder) error { return e.EncodeUint64(v) })
}
func (m *mapEncoder) i64(k string, v int64) *mapEncoder {
	return m.field(k, func(e *msgpack.Encoder) error { return e.EncodeInt64(v) })
}

// int is Go's int kind: written compact.
func (m *mapEncoder) int(k string, v int) *mapEncoder {
	return m.field(k, func(e *msgpack.Encoder) error { return e.EncodeInt(int64(v)) })
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (m *InstanceStatus) EncodeMsgpack(e *msgpack.Encoder) error {
	return newMapEncoder(e, 10).u8("v", m.V).str("instance_id", m.InstanceID).str("job_id", m.JobID).
		str("worker_id", m.WorkerID).u8("state", uint8(m.State)).field("counts", m.Counts.EncodeMsgpack).
		str("result", m.Result).u64("seq", m.Seq).u64("epoch", m.Epoch).
		field("recent", func(e *msgpack.Encoder) error {
			if m.Recent == nil {
				return e.EncodeNil()
			}
			return e.Encode(m.Recent)
		}).err
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (c *TaskCounts) EncodeMsgpack(e *msgpack.Encoder) error {
	return newMapEncoder(e, 5).i64("total", c.Total).i64("waiting", c.Waiting).i64("running", c.Running).
		i64("succeeded", c.Succeeded).i64("failed", c.Failed).err
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (j *JobSpec) EncodeMsgpack(e *msgpack.Encoder) error {
	n := 15
	if j.RetentionMS != 0 { // omitempty
		n++
	}
	m := newMapEncoder(e, n).str("job_id", j.JobID).str("name", j.Name).str("processor_type", j.ProcessorType).
		str("processor", j.Processor).str("execute_type", string(j.ExecuteType)).str("time_type", string(j.TimeType)).
		i64("period_ms", j.PeriodMS).str("params", j.Params).int("max_instances", j.MaxInstances).
		int("concurrency", j.Concurrency).i64("time_limit_ms", j.TimeLimitMS).int("task_retries", j.TaskRetries).
		int("max_workers", j.MaxWorkers).str("dispatch", j.Dispatch).str("log_mode", j.LogMode)
	if j.RetentionMS != 0 {
		m.i64("retention_ms", j.RetentionMS)
	}
	return m.err
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (m *RunInstance) EncodeMsgpack(e *msgpack.Encoder) error {
	return newMapEncoder(e, 8).u8("v", m.V).str("server_id", m.ServerID).str("instance_id", m.InstanceID).
		field("job", m.Job.EncodeMsgpack).str("instance_params", m.Params).
		field("workers", func(e *msgpack.Encoder) error {
			if m.Workers == nil {
				return e.EncodeNil()
			}
			if err := e.EncodeArrayLen(len(m.Workers)); err != nil {
				return err
			}
			for _, w := range m.Workers {
				if err := e.EncodeString(w); err != nil {
					return err
				}
			}
			return nil
		}).
		field("resume", func(e *msgpack.Encoder) error { return e.EncodeBool(m.Resume) }).
		u64("epoch", m.Epoch).err
}
