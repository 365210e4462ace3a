package subjects

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/vmihailenco/msgpack/v5"
)

// Hand-written decoders for the messages on the hot paths (a worker's
// final statuses and a client's run-batch on the server, run-batches on
// the worker, and the job spec every instance carries). They read the same
// maps as the reflective decoder — keys in any order, unknown keys
// skipped, nil as zero, integers of any width — straight from the
// message's bytes: keys are matched without allocating, and the values
// that repeat through a batch (job, worker, processor, app) are stored
// once per message. Decoding InstanceStatuses was a fifth of the server's
// CPU on the API path through the reflective decoder, and still a tenth
// through hand-written decoders on msgpack.Decoder. The golden fixtures,
// the fuzzers and TestFastDecodersMatchReflection cover them.

// fastDecoder is a message that decodes itself from bytes (Unmarshal uses
// it; the same code serves msgpack.CustomDecoder for nested uses).
type fastDecoder interface {
	decodeFrom(r *reader) error
}

// reader reads msgpack values from b. Unmarshal has already checked that
// b is one well-formed value, but every read is bounds-checked anyway.
type reader struct {
	b   []byte
	pos int
	// syms are the distinct values sym returned in this message (a few
	// per batch: the same job, worker and processor in every item).
	syms []string
}

const maxSyms = 16

var errShort = errors.New("msgpack: unexpected end of data")

func (r *reader) code() (byte, error) {
	if r.pos >= len(r.b) {
		return 0, errShort
	}
	c := r.b[r.pos]
	r.pos++
	return c, nil
}

func (r *reader) take(n int) ([]byte, error) {
	if n < 0 || n > len(r.b)-r.pos {
		return nil, errShort
	}
	out := r.b[r.pos : r.pos+n]
	r.pos += n
	return out, nil
}

// size reads a big-endian length of n bytes (1, 2 or 4).
func (r *reader) size(n int) (int, error) {
	b, err := r.take(n)
	if err != nil {
		return 0, err
	}
	switch n {
	case 1:
		return int(b[0]), nil
	case 2:
		return int(binary.BigEndian.Uint16(b)), nil
	default:
		return int(binary.BigEndian.Uint32(b)), nil
	}
}

// mapLen reads a map header; nil is an empty map.
func (r *reader) mapLen() (int, error) {
	c, err := r.code()
	switch {
	case err != nil:
		return 0, err
	case c == 0xc0:
		return 0, nil
	case c&0xf0 == 0x80:
		return int(c & 0x0f), nil
	case c == 0xde:
		return r.size(2)
	case c == 0xdf:
		return r.size(4)
	}
	return 0, fmt.Errorf("msgpack: invalid code=%x decoding map length", c)
}

// arrayLen reads an array header; nil is -1.
func (r *reader) arrayLen() (int, error) {
	c, err := r.code()
	switch {
	case err != nil:
		return 0, err
	case c == 0xc0:
		return -1, nil
	case c&0xf0 == 0x90:
		return int(c & 0x0f), nil
	case c == 0xdc:
		return r.size(2)
	case c == 0xdd:
		return r.size(4)
	}
	return 0, fmt.Errorf("msgpack: invalid code=%x decoding array length", c)
}

// bytes reads a str or bin value without copying; nil reads as empty.
func (r *reader) bytes() ([]byte, error) {
	c, err := r.code()
	if err != nil {
		return nil, err
	}
	var n int
	switch {
	case c == 0xc0:
		return nil, nil
	case c&0xe0 == 0xa0:
		n = int(c & 0x1f)
	case c == 0xd9 || c == 0xc4:
		n, err = r.size(1)
	case c == 0xda || c == 0xc5:
		n, err = r.size(2)
	case c == 0xdb || c == 0xc6:
		n, err = r.size(4)
	default:
		return nil, fmt.Errorf("msgpack: invalid code=%x decoding string/bytes length", c)
	}
	if err != nil {
		return nil, err
	}
	return r.take(n)
}

// str reads a string.
func (r *reader) str() (string, error) {
	b, err := r.bytes()
	if len(b) == 0 {
		return "", err
	}
	return string(b), err
}

// sym reads a string that is likely to repeat in the message, storing
// each distinct value once.
func (r *reader) sym() (string, error) {
	b, err := r.bytes()
	if len(b) == 0 || err != nil {
		return "", err
	}
	for _, s := range r.syms {
		if s == string(b) {
			return s, nil
		}
	}
	s := string(b)
	if len(r.syms) < maxSyms {
		r.syms = append(r.syms, s)
	}
	return s, nil
}

// uint reads any integer as the reflective decoder does (a negative one
// wraps); nil is 0.
func (r *reader) uint() (uint64, error) {
	c, err := r.code()
	if err != nil {
		return 0, err
	}
	switch {
	case c == 0xc0:
		return 0, nil
	case c <= 0x7f || c >= 0xe0:
		return uint64(int8(c)), nil
	}
	var b []byte
	switch c {
	case 0xcc, 0xd0:
		b, err = r.take(1)
		if err == nil && c == 0xd0 {
			return uint64(int8(b[0])), nil
		}
	case 0xcd, 0xd1:
		b, err = r.take(2)
		if err == nil && c == 0xd1 {
			return uint64(int16(binary.BigEndian.Uint16(b))), nil
		}
	case 0xce, 0xd2:
		b, err = r.take(4)
		if err == nil && c == 0xd2 {
			return uint64(int32(binary.BigEndian.Uint32(b))), nil
		}
	case 0xcf, 0xd3:
		b, err = r.take(8)
	default:
		return 0, fmt.Errorf("msgpack: invalid code=%x decoding int64", c)
	}
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, x := range b {
		n = n<<8 | uint64(x)
	}
	return n, nil
}

func (r *reader) u8() (uint8, error) {
	n, err := r.uint()
	return uint8(n), err
}

func (r *reader) i64() (int64, error) {
	n, err := r.uint()
	return int64(n), err
}

func (r *reader) int() (int, error) {
	n, err := r.uint()
	return int(n), err
}

// f64 reads a float of either width, or an integer, as the reflective
// decoder does.
func (r *reader) f64() (float64, error) {
	if r.pos < len(r.b) {
		switch r.b[r.pos] {
		case 0xca:
			r.pos++
			b, err := r.take(4)
			if err != nil {
				return 0, err
			}
			return float64(math.Float32frombits(binary.BigEndian.Uint32(b))), nil
		case 0xcb:
			r.pos++
			b, err := r.take(8)
			if err != nil {
				return 0, err
			}
			return math.Float64frombits(binary.BigEndian.Uint64(b)), nil
		}
	}
	n, err := r.uint()
	return float64(int64(n)), err
}

func (r *reader) bool() (bool, error) {
	c, err := r.code()
	switch {
	case err != nil:
		return false, err
	case c == 0xc0 || c == 0xc2:
		return false, nil
	case c == 0xc3:
		return true, nil
	}
	return false, fmt.Errorf("msgpack: invalid code=%x decoding bool", c)
}

// raw returns the bytes of the next value and moves past it.
func (r *reader) raw() ([]byte, error) {
	s := scanner{b: r.b, pos: r.pos}
	if err := s.value(1); err != nil {
		return nil, err
	}
	out := r.b[r.pos:s.pos]
	r.pos = s.pos
	return out, nil
}

func (r *reader) skip() error {
	_, err := r.raw()
	return err
}

// reflect decodes the next value into v with the reflective decoder (for
// the rare, nested fields); nil leaves v as it is (callers decode into
// zero values).
func (r *reader) reflect(v any) error {
	if r.pos < len(r.b) && r.b[r.pos] == 0xc0 { // nil: v stays zero
		r.pos++
		return nil
	}
	b, err := r.raw()
	if err != nil {
		return err
	}
	return msgpack.Unmarshal(b, v)
}

// strs reads an array of strings (nil stays nil).
func (r *reader) strs() ([]string, error) {
	n, err := r.arrayLen()
	if err != nil || n < 0 {
		return nil, err
	}
	if n > len(r.b)-r.pos {
		return nil, errShort
	}
	out := make([]string, n)
	for i := range out {
		if out[i], err = r.sym(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fields calls field with each key of the map at r (nil: none).
func (r *reader) fields(field func(key []byte) error) error {
	n, err := r.mapLen()
	if err != nil {
		return err
	}
	for range n {
		key, err := r.bytes()
		if err != nil {
			return fmt.Errorf("map key: %w", err)
		}
		if err := field(key); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
	}
	return nil
}

// each calls item with the index of each element of the array at r,
// after sizing out for them with grow (nil: none).
func (r *reader) each(grow func(n int), item func(i int) error) error {
	n, err := r.arrayLen()
	if err != nil || n < 0 {
		return err
	}
	if n > len(r.b)-r.pos { // every element takes a byte at least
		return errShort
	}
	grow(n)
	for i := range n {
		if err := item(i); err != nil {
			return fmt.Errorf("[%d]: %w", i, err)
		}
	}
	return nil
}

// decodeCustom serves msgpack.CustomDecoder from a fastDecoder.
func decodeCustom(d *msgpack.Decoder, m fastDecoder) error {
	b, err := d.DecodeRaw()
	if err != nil {
		return err
	}
	return m.decodeFrom(&reader{b: b})
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (m *InstanceStatus) DecodeMsgpack(d *msgpack.Decoder) error { return decodeCustom(d, m) }

func (m *InstanceStatus) decodeFrom(r *reader) error {
	return r.fields(func(key []byte) (err error) {
		switch string(key) {
		case "v":
			m.V, err = r.u8()
		case "instance_id":
			m.InstanceID, err = r.str()
		case "job_id":
			m.JobID, err = r.sym()
		case "worker_id":
			m.WorkerID, err = r.sym()
		case "state":
			var s uint8
			s, err = r.u8()
			m.State = InstanceState(s)
		case "counts":
			err = m.Counts.decodeFrom(r)
		case "result":
			m.Result, err = r.sym()
		case "seq":
			m.Seq, err = r.uint()
		case "epoch":
			m.Epoch, err = r.uint()
		case "recent":
			m.Recent = nil
			err = r.reflect(&m.Recent)
		case "handover":
			m.Handover, err = r.bool()
		default:
			err = r.skip()
		}
		return err
	})
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (c *TaskCounts) DecodeMsgpack(d *msgpack.Decoder) error { return decodeCustom(d, c) }

func (c *TaskCounts) decodeFrom(r *reader) error {
	return r.fields(func(key []byte) (err error) {
		switch string(key) {
		case "total":
			c.Total, err = r.i64()
		case "waiting":
			c.Waiting, err = r.i64()
		case "running":
			c.Running, err = r.i64()
		case "succeeded":
			c.Succeeded, err = r.i64()
		case "failed":
			c.Failed, err = r.i64()
		default:
			err = r.skip()
		}
		return err
	})
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (j *JobSpec) DecodeMsgpack(d *msgpack.Decoder) error { return decodeCustom(d, j) }

func (j *JobSpec) decodeFrom(r *reader) error {
	return r.fields(func(key []byte) (err error) {
		var s string
		switch string(key) {
		case "job_id":
			j.JobID, err = r.sym()
		case "name":
			j.Name, err = r.sym()
		case "processor_type":
			j.ProcessorType, err = r.sym()
		case "processor":
			j.Processor, err = r.sym()
		case "execute_type":
			s, err = r.sym()
			j.ExecuteType = ExecuteType(s)
		case "time_type":
			s, err = r.sym()
			j.TimeType = TimeType(s)
		case "period_ms":
			j.PeriodMS, err = r.i64()
		case "params":
			j.Params, err = r.sym()
		case "max_instances":
			j.MaxInstances, err = r.int()
		case "concurrency":
			j.Concurrency, err = r.int()
		case "time_limit_ms":
			j.TimeLimitMS, err = r.i64()
		case "task_retries":
			j.TaskRetries, err = r.int()
		case "max_workers":
			j.MaxWorkers, err = r.int()
		case "dispatch":
			j.Dispatch, err = r.sym()
		case "log_mode":
			j.LogMode, err = r.sym()
		case "retention_ms":
			j.RetentionMS, err = r.i64()
		default:
			err = r.skip()
		}
		return err
	})
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (m *RunInstance) DecodeMsgpack(d *msgpack.Decoder) error { return decodeCustom(d, m) }

func (m *RunInstance) decodeFrom(r *reader) error {
	return r.fields(func(key []byte) (err error) {
		switch string(key) {
		case "v":
			m.V, err = r.u8()
		case "server_id":
			m.ServerID, err = r.sym()
		case "instance_id":
			m.InstanceID, err = r.str()
		case "job":
			err = m.Job.decodeFrom(r)
		case "instance_params":
			m.Params, err = r.sym()
		case "workers":
			m.Workers, err = r.strs()
		case "resume":
			m.Resume, err = r.bool()
		case "epoch":
			m.Epoch, err = r.uint()
		default:
			err = r.skip()
		}
		return err
	})
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (m *RunJob) DecodeMsgpack(d *msgpack.Decoder) error { return decodeCustom(d, m) }

func (m *RunJob) decodeFrom(r *reader) error {
	return r.fields(func(key []byte) (err error) {
		switch string(key) {
		case "v":
			m.V, err = r.u8()
		case "app":
			m.App, err = r.sym()
		case "job":
			err = m.Job.decodeFrom(r)
		case "instance_params":
			m.Params, err = r.sym()
		case "selection":
			err = m.Selection.decodeFrom(r)
		case "key":
			m.Key, err = r.str()
		default:
			err = r.skip()
		}
		return err
	})
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (s *Selection) DecodeMsgpack(d *msgpack.Decoder) error { return decodeCustom(d, s) }

func (s *Selection) decodeFrom(r *reader) error {
	return r.fields(func(key []byte) (err error) {
		switch string(key) {
		case "designated":
			s.Designated, err = r.strs()
		case "tags":
			s.Tags, err = r.strs()
		case "min_cpu_cores":
			s.MinCPUCores, err = r.f64()
		case "min_memory_gib":
			s.MinMemoryGiB, err = r.f64()
		case "min_disk_gib":
			s.MinDiskGiB, err = r.f64()
		case "strategy":
			s.Strategy, err = r.sym()
		default:
			err = r.skip()
		}
		return err
	})
}

// The batch messages decode only through Unmarshal (no CustomDecoder:
// nothing nests them).

func (m *InstanceStatuses) decodeFrom(r *reader) error {
	return r.fields(func(key []byte) (err error) {
		switch string(key) {
		case "v":
			m.V, err = r.u8()
		case "statuses":
			err = r.each(func(n int) { m.Statuses = make([]InstanceStatus, n) },
				func(i int) error { return m.Statuses[i].decodeFrom(r) })
		default:
			err = r.skip()
		}
		return err
	})
}

func (m *RunInstances) decodeFrom(r *reader) error {
	return r.fields(func(key []byte) (err error) {
		switch string(key) {
		case "v":
			m.V, err = r.u8()
		case "runs":
			err = r.each(func(n int) { m.Runs = make([]RunInstance, n) },
				func(i int) error { return m.Runs[i].decodeFrom(r) })
		default:
			err = r.skip()
		}
		return err
	})
}

func (m *RunBatch) decodeFrom(r *reader) error {
	return r.fields(func(key []byte) (err error) {
		switch string(key) {
		case "v":
			m.V, err = r.u8()
		case "app":
			m.App, err = r.sym()
		case "runs":
			err = r.each(func(n int) { m.Runs = make([]RunJob, n) },
				func(i int) error { return m.Runs[i].decodeFrom(r) })
		case "key":
			m.Key, err = r.str()
		default:
			err = r.skip()
		}
		return err
	})
}
