package subjects

import (
	"encoding/binary"
	"math"

	"github.com/vmihailenco/msgpack/v5"
)

// Hand-written encoders for the messages on the hot paths (a worker's
// final statuses, the run-batches a client sends the server and the
// server sends workers). They append exactly the bytes the reflective
// encoder writes — every field in declaration order, uint8 and the
// fixed-width integer kinds at full width, int compact, a nil slice as nil
// — so the golden fixtures pin them like any message; only the reflection
// and the encoder's writer are gone (TestFastEncodersMatchReflection).
// Marshal uses them directly; msgpack.CustomEncoder serves nested uses.

// fastEncoder is a message that appends its own encoding.
type fastEncoder interface {
	appendTo(b []byte) ([]byte, error)
}

// w appends msgpack values.
type w []byte

func (b w) mapLen(n int) w {
	switch {
	case n < 16:
		return append(b, 0x80|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xde), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdf), uint32(n))
}

func (b w) arrayLen(n int) w {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xdc), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
}

func (b w) str(s string) w {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n < 256:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xda), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
	}
	return append(b, s...)
}

// key writes a field name (always a fixstr: names are short).
func (b w) key(k string) w { return append(append(b, 0xa0|byte(len(k))), k...) }

func (b w) u8(v uint8) w   { return append(b, 0xcc, v) }
func (b w) u64(v uint64) w { return binary.BigEndian.AppendUint64(append(b, 0xcf), v) }
func (b w) i64(v int64) w  { return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v)) }
func (b w) f64(v float64) w {
	return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(v))
}

func (b w) bool(v bool) w {
	if v {
		return append(b, 0xc3)
	}
	return append(b, 0xc2)
}

// int is Go's int kind: written compact.
func (b w) int(v int) w {
	n := int64(v)
	switch {
	case n >= 0 && n <= math.MaxInt8, n < 0 && n >= -32:
		return append(b, byte(n))
	case n >= 0 && n <= math.MaxUint8:
		return append(b, 0xcc, byte(n))
	case n >= 0 && n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(n))
	case n >= 0 && n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(n))
	case n >= 0:
		return binary.BigEndian.AppendUint64(append(b, 0xcf), uint64(n))
	case n >= math.MinInt8:
		return append(b, 0xd0, byte(n))
	case n >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(n))
	}
	return b.i64(n)
}

func (b w) strs(v []string) w {
	if v == nil {
		return append(b, 0xc0)
	}
	b = b.arrayLen(len(v))
	for _, s := range v {
		b = b.str(s)
	}
	return b
}

// reflect appends v encoded by the reflective encoder (the rare, nested
// fields).
func (b w) reflect(v any) (w, error) {
	out, err := msgpack.Marshal(v)
	return append(b, out...), err
}

// encodeCustom serves msgpack.CustomEncoder from a fastEncoder.
func encodeCustom(e *msgpack.Encoder, m fastEncoder) error {
	b, err := m.appendTo(nil)
	if err != nil {
		return err
	}
	_, err = e.Writer().Write(b)
	return err
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (m *InstanceStatus) EncodeMsgpack(e *msgpack.Encoder) error { return encodeCustom(e, m) }

func (m *InstanceStatus) appendTo(out []byte) ([]byte, error) {
	n := 10
	if m.Handover { // omitempty
		n++
	}
	b := w(out).mapLen(n).key("v").u8(m.V).key("instance_id").str(m.InstanceID).key("job_id").str(m.JobID).
		key("worker_id").str(m.WorkerID).key("state").u8(uint8(m.State)).key("counts")
	b, _ = m.Counts.appendTo(b)
	b = b.key("result").str(m.Result).key("seq").u64(m.Seq).key("epoch").u64(m.Epoch).key("recent")
	if m.Recent == nil {
		b = append(b, 0xc0)
	} else {
		var err error
		if b, err = b.reflect(m.Recent); err != nil {
			return b, err
		}
	}
	if m.Handover {
		b = b.key("handover").bool(true)
	}
	return b, nil
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (c *TaskCounts) EncodeMsgpack(e *msgpack.Encoder) error { return encodeCustom(e, c) }

func (c *TaskCounts) appendTo(out []byte) ([]byte, error) {
	return w(out).mapLen(5).key("total").i64(c.Total).key("waiting").i64(c.Waiting).key("running").i64(c.Running).
		key("succeeded").i64(c.Succeeded).key("failed").i64(c.Failed), nil
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (j *JobSpec) EncodeMsgpack(e *msgpack.Encoder) error { return encodeCustom(e, j) }

func (j *JobSpec) appendTo(out []byte) ([]byte, error) {
	n := 15
	if j.RetentionMS != 0 { // omitempty
		n++
	}
	b := w(out).mapLen(n).key("job_id").str(j.JobID).key("name").str(j.Name).key("processor_type").str(j.ProcessorType).
		key("processor").str(j.Processor).key("execute_type").str(string(j.ExecuteType)).key("time_type").str(string(j.TimeType)).
		key("period_ms").i64(j.PeriodMS).key("params").str(j.Params).key("max_instances").int(j.MaxInstances).
		key("concurrency").int(j.Concurrency).key("time_limit_ms").i64(j.TimeLimitMS).key("task_retries").int(j.TaskRetries).
		key("max_workers").int(j.MaxWorkers).key("dispatch").str(j.Dispatch).key("log_mode").str(j.LogMode)
	if j.RetentionMS != 0 {
		b = b.key("retention_ms").i64(j.RetentionMS)
	}
	return b, nil
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (m *RunInstance) EncodeMsgpack(e *msgpack.Encoder) error { return encodeCustom(e, m) }

func (m *RunInstance) appendTo(out []byte) ([]byte, error) {
	b := w(out).mapLen(8).key("v").u8(m.V).key("server_id").str(m.ServerID).key("instance_id").str(m.InstanceID).key("job")
	b, _ = m.Job.appendTo(b)
	return b.key("instance_params").str(m.Params).key("workers").strs(m.Workers).
		key("resume").bool(m.Resume).key("epoch").u64(m.Epoch), nil
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (s *Selection) EncodeMsgpack(e *msgpack.Encoder) error { return encodeCustom(e, s) }

func (s *Selection) appendTo(out []byte) ([]byte, error) {
	return w(out).mapLen(6).key("designated").strs(s.Designated).key("tags").strs(s.Tags).
		key("min_cpu_cores").f64(s.MinCPUCores).key("min_memory_gib").f64(s.MinMemoryGiB).
		key("min_disk_gib").f64(s.MinDiskGiB).key("strategy").str(s.Strategy), nil
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (m *RunJob) EncodeMsgpack(e *msgpack.Encoder) error { return encodeCustom(e, m) }

func (m *RunJob) appendTo(out []byte) ([]byte, error) {
	b := w(out).mapLen(6).key("v").u8(m.V).key("app").str(m.App).key("job")
	b, _ = m.Job.appendTo(b)
	b = b.key("instance_params").str(m.Params).key("selection")
	b, _ = m.Selection.appendTo(b)
	return b.key("key").str(m.Key), nil
}

// The batch messages encode only through Marshal (nothing nests them).

func (m *InstanceStatuses) appendTo(out []byte) ([]byte, error) {
	b := w(out).mapLen(2).key("v").u8(m.V).key("statuses")
	if m.Statuses == nil {
		return append(b, 0xc0), nil
	}
	b = b.arrayLen(len(m.Statuses))
	var err error
	for i := range m.Statuses {
		if b, err = m.Statuses[i].appendTo(b); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func (m *RunInstances) appendTo(out []byte) ([]byte, error) {
	b := w(out).mapLen(2).key("v").u8(m.V).key("runs")
	if m.Runs == nil {
		return append(b, 0xc0), nil
	}
	b = b.arrayLen(len(m.Runs))
	for i := range m.Runs {
		b, _ = m.Runs[i].appendTo(b)
	}
	return b, nil
}

func (m *RunBatch) appendTo(out []byte) ([]byte, error) {
	b := w(out).mapLen(4).key("v").u8(m.V).key("app").str(m.App).key("runs")
	if m.Runs == nil {
		b = append(b, 0xc0)
	} else {
		b = b.arrayLen(len(m.Runs))
		for i := range m.Runs {
			b, _ = m.Runs[i].appendTo(b)
		}
	}
	return b.key("key").str(m.Key), nil
}
