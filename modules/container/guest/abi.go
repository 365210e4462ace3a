package guest

import (
	"encoding/binary"
	"errors"
	"sort"
	"unsafe"
)

// The ABI's messages are a compact binary form (docs/containers.md):
// every string or byte string is a LEB128 length and its bytes, every
// integer a LEB128 number, a list its LEB128 length and its items, in the
// fixed order below. JSON, the first form, cost ~190 µs a call inside a
// Go guest (reflection in WebAssembly); this form costs a few. Inside a
// Go guest every allocation costs hundreds of nanoseconds, so a call is
// decoded with one: its bytes are copied once and every string and the
// payload point into the copy (strings are immutable, so a processor may
// keep them).

// callVersion starts a Call and a Reply.
const callVersion = 1

var errShort = errors.New("guest: message truncated")

type enc []byte

func (e enc) str(s string) enc   { return append(binary.AppendUvarint(e, uint64(len(s))), s...) }
func (e enc) bytes(b []byte) enc { return append(binary.AppendUvarint(e, uint64(len(b))), b...) }
func (e enc) num(n int) enc      { return binary.AppendUvarint(e, uint64(max(n, 0))) }
func (e enc) flag(b bool) enc {
	if b {
		return append(e, 1)
	}
	return append(e, 0)
}

// pairs writes a map sorted by key (the same bytes for the same map).
func (e enc) pairs(m map[string]string) enc {
	if len(m) == 0 {
		return e.num(0)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	e = e.num(len(keys))
	for _, k := range keys {
		e = e.str(k).str(m[k])
	}
	return e
}

type dec struct {
	b   []byte
	err error
	// alias: strings point into b (which the decoder owns) instead of
	// being copied.
	alias bool
}

// The decoder is written so that the common case (lengths under 128)
// inlines: a function call costs tens of nanoseconds inside a Go guest.
// Every error empties d.b, so the fast paths need no error check.

func (d *dec) uvarint() uint64 {
	if len(d.b) > 0 && d.b[0] < 0x80 {
		v := d.b[0]
		d.b = d.b[1:]
		return uint64(v)
	}
	return d.uvarintSlow()
}

func (d *dec) uvarintSlow() uint64 {
	n, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[k:]
	return n
}

func (d *dec) fail() {
	if d.err == nil {
		d.err = errShort
	}
	d.b = nil
}

func (d *dec) bytes() []byte {
	if len(d.b) > 0 {
		if n := int(d.b[0]); n < 0x80 && n < len(d.b) {
			out := d.b[1 : 1+n : 1+n]
			d.b = d.b[1+n:]
			return out
		}
	}
	return d.bytesSlow()
}

func (d *dec) bytesSlow() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

func (d *dec) str() string {
	b := d.bytes()
	if !d.alias {
		return string(b)
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}
func (d *dec) num() int { return int(d.uvarint()) }

func (d *dec) flag() bool {
	if len(d.b) == 0 {
		d.fail()
		return false
	}
	v := d.b[0] != 0
	d.b = d.b[1:]
	return v
}

// count reads a list length, refusing one longer than the bytes left.
func (d *dec) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *dec) pairs() map[string]string {
	n := d.count()
	if n == 0 {
		return nil
	}
	m := make(map[string]string, n)
	for range n {
		k := d.str()
		m[k] = d.str()
	}
	return m
}

// MarshalBinary encodes the call.
func (c *Call) MarshalBinary() ([]byte, error) { return c.AppendBinary(nil) }

// AppendBinary appends the call's encoding to dst (the host reuses one
// buffer per instance).
func (c *Call) AppendBinary(dst []byte) ([]byte, error) {
	t := &c.Task
	e := enc(append(dst, callVersion)).str(c.Op).str(c.Processor).str(t.JobID).str(t.InstanceID).str(t.TaskID).str(t.TaskName).
		str(t.JobParams).str(t.InstanceParams).bytes(t.Payload).num(t.CurrentRetry).num(t.MaxRetry).num(t.FailedTasks).
		pairs(t.Workflow).num(len(c.Results))
	for _, r := range c.Results {
		e = e.str(r.TaskID).str(r.TaskName).flag(r.Success).str(r.Message)
	}
	return e, nil
}

// UnmarshalBinary decodes a call. It copies b once; the strings and the
// payload point into that copy, so b may be reused.
func (c *Call) UnmarshalBinary(b []byte) error { return c.decode(append([]byte(nil), b...)) }

// decode decodes a call whose strings and payload point into b, which
// must not change afterwards.
func (c *Call) decode(b []byte) error {
	if len(b) == 0 || b[0] != callVersion {
		return errors.New("guest: not a call of ABI version 1")
	}
	d := &dec{b: b[1:], alias: true}
	t := &c.Task
	c.Op, c.Processor = d.str(), d.str()
	t.JobID, t.InstanceID, t.TaskID, t.TaskName = d.str(), d.str(), d.str(), d.str()
	t.JobParams, t.InstanceParams, t.Payload = d.str(), d.str(), d.bytes()
	t.CurrentRetry, t.MaxRetry, t.FailedTasks = d.num(), d.num(), d.num()
	t.Workflow = d.pairs()
	n := d.count()
	c.Results = nil
	if n > 0 {
		c.Results = make([]TaskResult, n)
	}
	for i := range c.Results {
		r := &c.Results[i]
		r.TaskID, r.TaskName, r.Success, r.Message = d.str(), d.str(), d.flag(), d.str()
	}
	return d.err
}

// Inside a Go guest an allocation costs microseconds (the runtime's code
// runs under the host's termination checks), so a task's call is decoded
// without one: its bytes go into a large chunk and its Call into a slab,
// neither of which is ever reused, so a processor may keep anything it
// was given; a chunk or slab is collected once nothing points into it.

const chunkSize = 64 << 10

// chunks hands out never-reused copies of calls.
type chunks struct{ buf []byte }

func (a *chunks) copy(b []byte) []byte {
	if len(b) > cap(a.buf)-len(a.buf) {
		if len(b) > chunkSize/4 {
			return append([]byte(nil), b...)
		}
		a.buf = make([]byte, 0, chunkSize)
	}
	n := len(a.buf)
	a.buf = append(a.buf, b...)
	return a.buf[n:len(a.buf):len(a.buf)]
}

// slab hands out never-reused Calls.
type slab struct{ calls []Call }

func (s *slab) next() *Call {
	if len(s.calls) == 0 {
		s.calls = make([]Call, 64)
	}
	c := &s.calls[0]
	s.calls = s.calls[1:]
	return c
}

// MarshalBinary encodes the reply.
func (r *Reply) MarshalBinary() ([]byte, error) { return r.AppendBinary(nil) }

// AppendBinary appends the reply's encoding to dst (a guest reuses one
// buffer for every reply).
func (r *Reply) AppendBinary(dst []byte) ([]byte, error) {
	return enc(append(dst, callVersion)).flag(r.Success).str(r.Message).str(r.Error).pairs(r.Appended), nil
}

// UnmarshalBinary decodes a reply.
func (r *Reply) UnmarshalBinary(b []byte) error {
	if len(b) == 0 || b[0] != callVersion {
		return errors.New("guest: not a reply of ABI version 1")
	}
	d := &dec{b: b[1:]}
	r.Success, r.Message, r.Error, r.Appended = d.flag(), d.str(), d.str(), d.pairs()
	return d.err
}

// MapRequest is a guest's request to record sub-tasks.
type MapRequest struct {
	Name     string
	Payloads [][]byte
}

// MarshalBinary encodes the request.
func (m *MapRequest) MarshalBinary() ([]byte, error) {
	e := enc{}.str(m.Name).num(len(m.Payloads))
	for _, p := range m.Payloads {
		e = e.bytes(p)
	}
	return e, nil
}

// UnmarshalBinary decodes a request (payloads alias b).
func (m *MapRequest) UnmarshalBinary(b []byte) error {
	d := &dec{b: b}
	m.Name = d.str()
	n := d.count()
	m.Payloads = make([][]byte, 0, n)
	for range n {
		m.Payloads = append(m.Payloads, d.bytes())
	}
	return d.err
}
