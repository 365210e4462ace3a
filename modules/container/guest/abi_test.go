package guest

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestABIRoundTrip: calls, replies and map requests come back as they
// went, and every truncation of them is refused, never misread.
func TestABIRoundTrip(t *testing.T) {
	t.Parallel()
	call := &Call{Op: "reduce", Processor: "sum", Task: Task{JobID: "j", InstanceID: "i", TaskID: "1.2", TaskName: "n",
		JobParams: "jp", InstanceParams: "ip", Payload: []byte{0, 1, 2}, CurrentRetry: 1, MaxRetry: 3, FailedTasks: 2,
		Workflow: map[string]string{"b": "2", "a": "1"}},
		Results: []TaskResult{{TaskID: "1", TaskName: "ROOT_TASK", Success: true, Message: "ok"}, {TaskID: "1.1", Message: "no"}}}
	b, err := call.MarshalBinary()
	require.NoError(t, err)
	var back Call
	require.NoError(t, back.UnmarshalBinary(b))
	require.Equal(t, *call, back)
	for i := range len(b) {
		var c Call
		require.Error(t, c.UnmarshalBinary(b[:i]), "cut at %d", i)
	}

	rep := &Reply{Result: OK("fine"), Error: "", Appended: map[string]string{"k": "v"}}
	b, err = rep.MarshalBinary()
	require.NoError(t, err)
	var repBack Reply
	require.NoError(t, repBack.UnmarshalBinary(b))
	require.Equal(t, *rep, repBack)
	for i := range len(b) {
		var r Reply
		require.Error(t, r.UnmarshalBinary(b[:i]), "cut at %d", i)
	}

	mr := &MapRequest{Name: "number", Payloads: [][]byte{[]byte("1"), {}, []byte("333")}}
	b, err = mr.MarshalBinary()
	require.NoError(t, err)
	var mrBack MapRequest
	require.NoError(t, mrBack.UnmarshalBinary(b))
	require.Equal(t, mr.Name, mrBack.Name)
	require.Len(t, mrBack.Payloads, 3)
	require.Equal(t, "333", string(mrBack.Payloads[2]))
}

// TestHandle: a call reaches its processor and kind; unknown processors,
// missing kinds and panics are errors in the reply.
func TestHandle(t *testing.T) {
	Register("echo", Definition{Process: func(t *Task) Result {
		if t.InstanceParams == "panic" {
			panic("boom")
		}
		t.Append("seen", t.InstanceParams)
		return OK(t.InstanceParams)
	}})
	call := func(c Call) Reply {
		b, _ := c.MarshalBinary()
		return handle(b)
	}
	rep := call(Call{Op: "process", Processor: "echo", Task: Task{InstanceParams: "x"}})
	require.Equal(t, Reply{Result: OK("x"), Appended: map[string]string{"seen": "x"}}, rep)
	require.Contains(t, call(Call{Op: "process", Processor: "nope"}).Error, `no processor "nope"`)
	require.Contains(t, call(Call{Op: "reduce", Processor: "echo"}).Error, `does not implement "reduce"`)
	require.Contains(t, call(Call{Op: "process", Processor: "echo", Task: Task{InstanceParams: "panic"}}).Error, "panicked: boom")
	require.Contains(t, handle([]byte{9}).Error, "decode call")
	require.Equal(t, "echo", manifest().Processors[0].Name)
}

// TestCallsAreNotReused: what a processor is given (the Task, its
// strings and payload) stays as it was after later calls, though calls
// are decoded without allocating (into shared chunks and slabs); long
// fields take the slow path and come through whole.
func TestCallsAreNotReused(t *testing.T) {
	var kept []*Task
	var params []string
	Register("keep", Definition{Process: func(t *Task) Result {
		kept = append(kept, t)
		params = append(params, t.InstanceParams)
		return OK(string(t.Payload))
	}})
	long := strings.Repeat("x", 300)
	var want []string
	for i := range 2000 { // more than a slab and a chunk hold
		p := strconv.Itoa(i)
		if i%100 == 0 {
			p += long
		}
		want = append(want, p)
		b, _ := (&Call{Op: "process", Processor: "keep", Task: Task{InstanceParams: p, Payload: []byte(p)}}).MarshalBinary()
		rep := handle(b)
		require.Equal(t, OK(p), rep.Result)
	}
	for i, p := range want {
		require.Equal(t, p, kept[i].InstanceParams)
		require.Equal(t, p, params[i])
		require.Equal(t, p, string(kept[i].Payload))
	}
}
