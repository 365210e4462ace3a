package jetstream

import (
	"bytes"
	"sync"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetworker/jetworker/subjects"
)

// A stored instance record is a msgpack map of its non-empty fields (the
// same keys as Instance's tags, so any msgpack reader decodes it), written
// by hand: the reflective omit-empty encoder cost a fifth of the server's
// CPU on the API path (its isEmptyValue per field per record), this costs
// a few appends. The id is left out: it is the key.

// fieldWriter writes the fields of one map into its own buffer and counts
// them; the map header goes in front once the count is known.
type fieldWriter struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
	n   int
}

var fieldWriters = sync.Pool{New: func() any {
	w := &fieldWriter{}
	w.enc = msgpack.NewEncoder(&w.buf)
	w.enc.SetOmitEmpty(true) // for the rare nested values written by reflection
	return w
}}

func getFieldWriter() *fieldWriter {
	w := fieldWriters.Get().(*fieldWriter)
	w.buf.Reset()
	w.n = 0
	return w
}

func (w *fieldWriter) key(k string) {
	_ = w.enc.EncodeString(k)
	w.n++
}

func (w *fieldWriter) str(k, v string) {
	if v != "" {
		w.key(k)
		_ = w.enc.EncodeString(v)
	}
}

func (w *fieldWriter) int(k string, v int64) {
	if v != 0 {
		w.key(k)
		_ = w.enc.EncodeInt(v)
	}
}

func (w *fieldWriter) uint(k string, v uint64) {
	if v != 0 {
		w.key(k)
		_ = w.enc.EncodeUint(v)
	}
}

func (w *fieldWriter) strs(k string, v []string) {
	if len(v) > 0 {
		w.key(k)
		_ = w.enc.EncodeArrayLen(len(v))
		for _, s := range v {
			_ = w.enc.EncodeString(s)
		}
	}
}

// value writes v by reflection (omit-empty), for fields that are rarely
// set.
func (w *fieldWriter) value(k string, v any) error {
	w.key(k)
	return w.enc.Encode(v)
}

// nested writes a nested map built by fill, unless it has no field.
func (w *fieldWriter) nested(k string, fill func(*fieldWriter)) {
	sub := getFieldWriter()
	defer fieldWriters.Put(sub)
	fill(sub)
	if sub.n == 0 {
		return
	}
	w.key(k)
	_ = w.enc.EncodeMapLen(sub.n)
	w.buf.Write(sub.buf.Bytes())
}

// bytes returns the map: header, then fields.
func (w *fieldWriter) bytes() []byte {
	out := make([]byte, 0, 5+w.buf.Len())
	switch n := w.n; {
	case n < 16:
		out = append(out, 0x80|byte(n)) // fixmap
	case n < 1<<16:
		out = append(out, 0xde, byte(n>>8), byte(n)) // map16
	default:
		out = append(out, 0xdf, byte(n>>24), byte(n>>16), byte(n>>8), byte(n)) // map32
	}
	return append(out, w.buf.Bytes()...)
}

// encodeCompact encodes a stored record written by reflection (a batch
// record, an index chunk) without its empty fields: readers decode a
// missing field as its zero value. Wire messages keep every key
// (subjects.Marshal); only what is stored is compact.
func encodeCompact(v any) ([]byte, error) {
	w := getFieldWriter()
	defer fieldWriters.Put(w)
	if err := w.enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.Clone(w.buf.Bytes()), nil
}

// encodeInstance encodes a stored record (see above).
func encodeInstance(in *Instance) ([]byte, error) {
	w := getFieldWriter()
	defer fieldWriters.Put(w)
	w.str("app", in.App)
	w.str("job_id", in.JobID)
	w.nested("job", func(j *fieldWriter) { writeJobSpec(j, &in.Job) })
	w.str("params", in.Params)
	if !zeroSelection(&in.Selection) {
		if err := w.value("selection", &in.Selection); err != nil {
			return nil, err
		}
	}
	w.int("instance_retries", int64(in.InstanceRetries))
	w.uint("state", uint64(in.State))
	w.str("server_id", in.ServerID)
	w.str("tracker_worker", in.TrackerWorker)
	w.strs("workers", in.Workers)
	w.nested("counts", func(c *fieldWriter) {
		c.int("total", in.Counts.Total)
		c.int("waiting", in.Counts.Waiting)
		c.int("running", in.Counts.Running)
		c.int("succeeded", in.Counts.Succeeded)
		c.int("failed", in.Counts.Failed)
	})
	w.str("result", in.Result)
	if len(in.Recent) > 0 {
		if err := w.value("recent", in.Recent); err != nil {
			return nil, err
		}
	}
	w.int("expected_ms", in.ExpectedMS)
	w.int("trigger_ms", in.TriggerMS)
	w.int("finished_ms", in.FinishedMS)
	w.int("run_count", int64(in.RunCount))
	w.uint("epoch", in.Epoch)
	w.uint("last_seq", in.LastSeq)
	w.str("note", in.Note)
	return w.bytes(), nil
}

func writeJobSpec(w *fieldWriter, j *subjects.JobSpec) {
	w.str("job_id", j.JobID)
	w.str("name", j.Name)
	w.str("processor_type", j.ProcessorType)
	w.str("processor", j.Processor)
	w.str("execute_type", string(j.ExecuteType))
	w.str("time_type", string(j.TimeType))
	w.int("period_ms", j.PeriodMS)
	w.str("params", j.Params)
	w.int("max_instances", int64(j.MaxInstances))
	w.int("concurrency", int64(j.Concurrency))
	w.int("time_limit_ms", j.TimeLimitMS)
	w.int("task_retries", int64(j.TaskRetries))
	w.int("max_workers", int64(j.MaxWorkers))
	w.str("dispatch", j.Dispatch)
	w.str("log_mode", j.LogMode)
	w.int("retention_ms", j.RetentionMS)
}

func zeroSelection(s *subjects.Selection) bool {
	return len(s.Designated) == 0 && len(s.Tags) == 0 && s.MinCPUCores == 0 && s.MinMemoryGiB == 0 && s.MinDiskGiB == 0 && s.Strategy == ""
}
