package tasktracker

import (
	"context"
	"sync"
	"time"

	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/subjects"
)

// light runs a standalone instance in-process: no task_info writes, retries
// up to TaskRetries, the time limit as a context deadline, stop as a
// cancel.
type light struct {
	m      *Manager
	run    subjects.RunInstance
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	state     subjects.InstanceState
	attempt   int
	stopState subjects.InstanceState
	stopWhy   string
	abandoned bool
}

func (m *Manager) startLight(from context.Context, run *subjects.RunInstance) *light {
	ctx, cancel := context.WithCancel(m.ctx)
	ctx = withSender(from, ctx)
	l := &light{m: m, run: *run, ctx: ctx, cancel: cancel, state: subjects.InstanceRunning}
	m.runners.run(l.exec)
	return l
}

func (l *light) kind() kind    { return kindLight }
func (l *light) epoch() uint64 { return l.run.Epoch }

func (l *light) exec() {
	// Instances sent ahead in batches are recorded as assigned, not
	// running; one that is still running after a progress interval says
	// so once (a short one costs no report).
	running := time.AfterFunc(l.m.cfg.ProgressInterval, func() {
		l.m.progress(&subjects.InstanceStatus{InstanceID: l.run.InstanceID, JobID: l.run.Job.JobID, State: subjects.InstanceRunning,
			Counts: subjects.TaskCounts{Total: 1, Running: 1}, Epoch: l.run.Epoch})
	})
	res := runTask(l.ctx, l.m, &l.run, &l.attempt, &l.mu)
	running.Stop()
	l.mu.Lock()
	state := subjects.InstanceSucceeded
	if !res.Success {
		state = subjects.InstanceFailed
	}
	if l.stopState != 0 {
		state, res = l.stopState, processor.Fail(l.stopWhy)
	}
	l.state = state
	abandoned := l.abandoned
	l.mu.Unlock()
	l.cancel()
	if abandoned {
		l.m.forget(l.run.InstanceID)
		return
	}
	l.m.finish(&subjects.InstanceStatus{InstanceID: l.run.InstanceID, JobID: l.run.Job.JobID, State: state,
		Counts: countsOf(state), Result: res.Message, Epoch: l.run.Epoch}, nil)
}

// runTask runs a one-task instance (standalone, or a frequent
// sub-instance) with retries and the time limit.
func runTask(ctx context.Context, m *Manager, run *subjects.RunInstance, attempt *int, mu *sync.Mutex) processor.Result {
	return runTaskSub(ctx, m, run, 0, attempt, mu)
}

// runTaskSub is runTask for sub-instance sub of a frequent instance.
func runTaskSub(ctx context.Context, m *Manager, run *subjects.RunInstance, sub int64, attempt *int, mu *sync.Mutex) processor.Result {
	if lim := run.Job.TimeLimitMS; lim > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(lim)*time.Millisecond)
		defer cancel()
	}
	proc, err := m.exec.Load(ctx, run.Job.ProcessorType, run.Job.Processor)
	if err != nil {
		return processor.Fail("cannot load processor: " + err.Error())
	}
	var res processor.Result
	for a := 0; a <= run.Job.TaskRetries; a++ {
		mu.Lock()
		*attempt = a
		mu.Unlock()
		res = m.exec.Execute(ctx, proc, &processor.Task{JobID: run.Job.JobID, InstanceID: run.InstanceID, SubInstanceID: sub,
			TaskID: "0", TaskName: processor.RootTaskName, JobParams: run.Job.Params, InstanceParams: run.Params,
			MaxRetry: run.Job.TaskRetries, CurrentRetry: a, Processor: run.Job.Processor})
		if res.Success {
			return res
		}
		if ctx.Err() != nil {
			if ctx.Err() == context.DeadlineExceeded {
				return processor.Fail("instance time limit exceeded: " + res.Message)
			}
			return res
		}
	}
	return res
}

func countsOf(state subjects.InstanceState) subjects.TaskCounts {
	c := subjects.TaskCounts{Total: 1}
	switch state {
	case subjects.InstanceSucceeded:
		c.Succeeded = 1
	case subjects.InstanceRunning:
		c.Running = 1
	default:
		c.Failed = 1
	}
	return c
}

func (l *light) stop(state subjects.InstanceState, reason string) {
	l.mu.Lock()
	if l.stopState == 0 && !l.state.Final() {
		l.stopState, l.stopWhy = state, reason
	}
	l.mu.Unlock()
	l.cancel()
}

// abandon cancels without a final report (hard stop: failover decides).
func (l *light) abandon() {
	l.mu.Lock()
	l.abandoned = true
	l.mu.Unlock()
	l.cancel()
}

func (l *light) detail(int, int) *subjects.InstanceDetail {
	l.mu.Lock()
	defer l.mu.Unlock()
	return &subjects.InstanceDetail{State: l.state, Counts: countsOf(l.state),
		Tasks: []subjects.TaskDetail{{TaskID: "0", TaskName: processor.RootTaskName, State: taskStateOf(l.state), WorkerID: l.m.id.WorkerID, Attempt: l.attempt}}}
}

func taskStateOf(s subjects.InstanceState) subjects.TaskState {
	switch s {
	case subjects.InstanceSucceeded:
		return subjects.TaskSucceeded
	case subjects.InstanceRunning:
		return subjects.TaskRunning
	}
	return subjects.TaskFailed
}
