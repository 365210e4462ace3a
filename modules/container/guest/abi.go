package guest

import (
	"encoding/binary"
	"errors"
	"sort"
)

// The ABI's messages are a compact binary form (docs/containers.md):
// every string or byte string is a LEB128 length and its bytes, every
// integer a LEB128 number, a list its LEB128 length and its items, in the
// fixed order below. JSON, the first form, cost ~190 µs a call inside a
// Go guest (reflection in WebAssembly); this form costs a few.

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
}

func (d *dec) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[k:]
	return n
}

func (d *dec) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errShort
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

func (d *dec) str() string { return string(d.bytes()) }
func (d *dec) num() int    { return int(d.uvarint()) }

func (d *dec) flag() bool {
	if d.err != nil || len(d.b) == 0 {
		d.err = errShort
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
		d.err = errShort
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
func (c *Call) MarshalBinary() ([]byte, error) {
	t := &c.Task
	e := enc{callVersion}.str(c.Op).str(c.Processor).str(t.JobID).str(t.InstanceID).str(t.TaskID).str(t.TaskName).
		str(t.JobParams).str(t.InstanceParams).bytes(t.Payload).num(t.CurrentRetry).num(t.MaxRetry).num(t.FailedTasks).
		pairs(t.Workflow).num(len(c.Results))
	for _, r := range c.Results {
		e = e.str(r.TaskID).str(r.TaskName).flag(r.Success).str(r.Message)
	}
	return e, nil
}

// UnmarshalBinary decodes a call (the payload aliases b).
func (c *Call) UnmarshalBinary(b []byte) error {
	if len(b) == 0 || b[0] != callVersion {
		return errors.New("guest: not a call of ABI version 1")
	}
	d := &dec{b: b[1:]}
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

// MarshalBinary encodes the reply.
func (r *Reply) MarshalBinary() ([]byte, error) {
	return enc{callVersion}.flag(r.Success).str(r.Message).str(r.Error).pairs(r.Appended), nil
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
