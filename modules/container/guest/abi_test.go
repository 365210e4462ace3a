package guest

import (
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
