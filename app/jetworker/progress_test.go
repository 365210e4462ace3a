package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// Off a terminal, progress is plain lines at a low rate, never \r
// redraws; a change of note (failover, resume) is a line of its own.
func TestProgressPlainLines(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	p := progressPrinter(&b)
	rec := func(state subjects.InstanceState, done int64, note string) *jetstream.Instance {
		return &jetstream.Instance{State: state, Note: note, Counts: subjects.TaskCounts{Total: 10, Succeeded: done}}
	}
	p(rec(subjects.InstanceRunning, 1, ""))
	for i := range 8 {
		p(rec(subjects.InstanceRunning, int64(i+1), "")) // same state within progressEvery: no line
	}
	p(rec(subjects.InstanceRunning, 5, "tracker w-1 lost; resumed on w-2"))
	p(rec(subjects.InstanceSucceeded, 10, "tracker w-1 lost; resumed on w-2"))
	out := b.String()
	require.NotContains(t, out, "\r")
	require.Equal(t, "  RUNNING 1/10 tasks, 0 failed\n  note: tracker w-1 lost; resumed on w-2\n  SUCCEEDED 10/10 tasks, 0 failed\n", out)
	require.Equal(t, 1, strings.Count(out, "note:"))
}

// A final instance shows no running or waiting tasks.
func TestFinalInstanceCounts(t *testing.T) {
	t.Parallel()
	in := &jetstream.Instance{ID: "i1", State: subjects.InstanceStopped, Job: subjects.JobSpec{ExecuteType: subjects.ExecMap},
		Workers: []string{"w-1"}, Counts: subjects.TaskCounts{Total: 3, Running: 1, Waiting: 1, Succeeded: 1}}
	var b bytes.Buffer
	printInstance(&b, in)
	require.Contains(t, b.String(), "3 total, 1 succeeded, 0 failed, 2 not finished (STOPPED)")
	require.NotContains(t, b.String(), "running")
	v := instanceView(in)
	require.Zero(t, v.Tasks.Running)
	require.Zero(t, v.Tasks.Waiting)
}
