package scheduler_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // the time zone test must not depend on the host's zoneinfo

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/app/testkit"
	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/scheduler"
	"github.com/jetworker/jetworker/subjects"
)

func TestAPITrigger(t *testing.T) {
	t.Parallel()
	s := testkit.New(t, 1, procFunc("echo", func(_ context.Context, tc *processor.TaskContext) (processor.Result, error) {
		return processor.OK(tc.JobParams + "/" + tc.InstanceParams), nil
	}))
	waitLive(t, s, 1)
	j := apiJob("echo-job", "echo")
	j.Params = "job-params"
	j = saveJob(t, s, j)

	r, err := s.Client.RunJob(testCtx(t), testkit.App, j.ID, "override")
	require.NoError(t, err)
	require.Equal(t, s.Workers[0].ID.WorkerID, r.TrackerWorker)
	in := wait(t, s, r.InstanceID)
	require.Equal(t, subjects.InstanceSucceeded, in.State, in.Result)
	require.Equal(t, "job-params/override", in.Result)
	require.Equal(t, j.ID, in.JobID)
	require.Equal(t, "override", in.Params)
	require.Equal(t, "api", in.Note)
	require.Equal(t, 1, in.RunCount)

	// No params: the job's own.
	r, err = s.Client.RunJob(testCtx(t), testkit.App, j.ID, "")
	require.NoError(t, err)
	in = wait(t, s, r.InstanceID)
	require.Equal(t, subjects.InstanceSucceeded, in.State, in.Result)
	require.Equal(t, "job-params/job-params", in.Result)
	require.Len(t, instancesOf(t, s, j.ID), 2)
}

// cronStack is a one-worker stack whose scheduler runs on a manual clock
// starting at start.
func cronStack(t *testing.T, start time.Time, procs ...processor.Named) (*testkit.Stack, *scheduler.ManualClock) {
	t.Helper()
	clock := scheduler.NewManualClock(start)
	s := testkit.NewWith(t, testkit.Options{Workers: 1, Processors: procs, Scheduler: scheduler.Config{Clock: clock}})
	waitLive(t, s, 1)
	return s, clock
}

// waitArmed waits until the clock's pending timers are exactly at (the
// scheduler has seen the job changes and armed its timers). A cron timer
// is armed scheduler.DefaultFireLead before its time, to prepare the
// instance record.
func waitArmed(t *testing.T, clock *scheduler.ManualClock, at ...time.Time) {
	t.Helper()
	testkit.Eventually(t, within, func() bool {
		p := slices.CompactFunc(clock.PendingTimers(), time.Time.Equal) // fires at one instant share a timer
		if len(p) != len(at) {
			return false
		}
		for i := range p {
			if !p[i].Equal(at[i]) && !p[i].Equal(at[i].Add(-scheduler.DefaultFireLead)) {
				return false
			}
		}
		return true
	}, "timers armed at %v (have %v)", at, clock.PendingTimers())
}

// requireFires checks that the job's instances are exactly one per
// scheduled time, with the deterministic id and expected time, and that
// each succeeds.
func requireFires(t *testing.T, s *testkit.Stack, jobID string, times ...time.Time) {
	t.Helper()
	list := instancesOf(t, s, jobID)
	got := make([]string, len(list))
	for i, in := range list {
		got[i] = in.ID
	}
	want := make([]string, len(times))
	for i, at := range times {
		want[i] = jobID + "-" + strconv.FormatInt(at.Unix(), 10)
	}
	require.Equal(t, want, got, "one instance per scheduled second")
	for i, in := range list {
		require.Equal(t, times[i].UnixMilli(), in.ExpectedMS, "instance %s expected time", in.ID)
		fin := wait(t, s, in.ID)
		require.Equal(t, subjects.InstanceSucceeded, fin.State, "instance %s: %s", in.ID, fin.Result)
	}
}

func secs(t0 time.Time, offsets ...int) []time.Time {
	out := make([]time.Time, len(offsets))
	for i, o := range offsets {
		out[i] = t0.Add(time.Duration(o) * time.Second)
	}
	return out
}

func TestCronEverySecond(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)
	s, clock := cronStack(t, t0, okProc("ok"))
	j := saveJob(t, s, cronJob("every-second", "ok", "* * * * * *"))
	waitArmed(t, clock, t0.Add(time.Second))
	require.Empty(t, instancesOf(t, s, j.ID), "nothing fires before the clock moves")

	for range 5 {
		clock.Advance(time.Second) // runs the due fire on this goroutine
	}
	requireFires(t, s, j.ID, secs(t0, 1, 2, 3, 4, 5)...)
	waitArmed(t, clock, t0.Add(6*time.Second))

	// A jump of three seconds fires each of them, in order.
	clock.Advance(3 * time.Second)
	requireFires(t, s, j.ID, secs(t0, 1, 2, 3, 4, 5, 6, 7, 8)...)

	f, err := s.Scheduler.Jobs().Fire(testCtx(t), testkit.App, j.ID)
	require.NoError(t, err)
	require.Equal(t, t0.Add(8*time.Second).UnixMilli(), f.LastMS, "durable fire record")
}

func TestCronLifecycleWindow(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2031, 3, 4, 5, 6, 0, 0, time.UTC)
	s, clock := cronStack(t, t0, okProc("ok"))
	j := cronJob("windowed", "ok", "* * * * * *")
	j.StartMS, j.EndMS = t0.Add(3*time.Second).UnixMilli(), t0.Add(5*time.Second).UnixMilli()
	j = saveJob(t, s, j)
	waitArmed(t, clock, t0.Add(3*time.Second))
	for range 8 {
		clock.Advance(time.Second)
	}
	requireFires(t, s, j.ID, secs(t0, 3, 4, 5)...)
	require.Empty(t, clock.PendingTimers(), "nothing armed after the window ends")
}

func TestCronDisableEnable(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2031, 3, 4, 5, 6, 0, 0, time.UTC)
	s, clock := cronStack(t, t0, okProc("ok"))
	off := cronJob("off", "ok", "* * * * * *")
	off.Enabled = false
	off = saveJob(t, s, off)
	// The sentinel is saved after the disabled job: once its timer is
	// armed, the scheduler has seen both (the watch keeps store order).
	sentinel := saveJob(t, s, cronJob("sentinel", "ok", "*/10 * * * * *"))
	waitArmed(t, clock, t0.Add(10*time.Second))

	clock.Advance(3 * time.Second)
	require.Empty(t, instancesOf(t, s, off.ID), "a disabled job does not fire")

	_, err := s.Client.EnableJob(testCtx(t), testkit.App, off.ID, true)
	require.NoError(t, err)
	waitArmed(t, clock, t0.Add(4*time.Second), t0.Add(10*time.Second))
	clock.Advance(2 * time.Second) // 4, 5
	requireFires(t, s, off.ID, secs(t0, 4, 5)...)

	_, err = s.Client.EnableJob(testCtx(t), testkit.App, off.ID, false)
	require.NoError(t, err)
	waitArmed(t, clock, t0.Add(10*time.Second))
	clock.Advance(3 * time.Second) // 6, 7, 8 pass while disabled
	requireFires(t, s, off.ID, secs(t0, 4, 5)...)

	// Enabled again it resumes from now: the seconds it was disabled are
	// not caught up.
	_, err = s.Client.EnableJob(testCtx(t), testkit.App, off.ID, true)
	require.NoError(t, err)
	waitArmed(t, clock, t0.Add(9*time.Second), t0.Add(10*time.Second))
	clock.Advance(2 * time.Second) // 9, 10
	requireFires(t, s, off.ID, secs(t0, 4, 5, 9, 10)...)
	requireFires(t, s, sentinel.ID, secs(t0, 10)...)
}

func TestCronTimeZone(t *testing.T) {
	t.Parallel()
	// 23:59:58 UTC is 08:59:58 in Tokyo (UTC+9, no daylight saving).
	t0 := time.Date(2030, 1, 1, 23, 59, 58, 0, time.UTC)
	s, clock := cronStack(t, t0, okProc("ok"))
	tokyo := cronJob("nine-tokyo", "ok", "0 0 9 * * *")
	tokyo.TimeZone = "Asia/Tokyo"
	tokyo = saveJob(t, s, tokyo)
	utc := saveJob(t, s, cronJob("nine-utc", "ok", "0 0 9 * * *"))
	nineTokyo := time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC)
	nineUTC := time.Date(2030, 1, 2, 9, 0, 0, 0, time.UTC)
	waitArmed(t, clock, nineTokyo, nineUTC)

	clock.Advance(3 * time.Second)
	requireFires(t, s, tokyo.ID, nineTokyo)
	require.Empty(t, instancesOf(t, s, utc.ID))
	waitArmed(t, clock, nineUTC, nineTokyo.Add(24*time.Hour))
}

func TestCronMaxInstancesSkips(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan string, 10)
	t0 := time.Date(2031, 3, 4, 5, 6, 0, 0, time.UTC)
	s, clock := cronStack(t, t0, procFunc("block", func(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
		started <- tc.InstanceID
		select {
		case <-release:
			return processor.OK("released"), nil
		case <-ctx.Done():
			return processor.Result{}, ctx.Err()
		}
	}))
	j := cronJob("one-at-a-time", "block", "* * * * * *")
	j.MaxInstances = 1
	j = saveJob(t, s, j)
	waitArmed(t, clock, t0.Add(time.Second))

	clock.Advance(time.Second)
	first := j.ID + "-" + strconv.FormatInt(t0.Add(time.Second).Unix(), 10)
	select {
	case id := <-started:
		require.Equal(t, first, id)
	case <-time.After(within):
		t.Fatal("the first fire did not start")
	}
	clock.Advance(3 * time.Second) // 2, 3, 4 while the first still runs
	list := instancesOf(t, s, j.ID)
	require.Len(t, list, 4)
	require.Equal(t, first, list[0].ID)
	require.False(t, list[0].State.Final(), "the first one is still running: %s", list[0].State)
	for i, in := range list[1:] {
		at := t0.Add(time.Duration(i+2) * time.Second)
		require.Equal(t, j.ID+"-"+strconv.FormatInt(at.Unix(), 10), in.ID)
		require.Equal(t, subjects.InstanceCanceled, in.State)
		require.Contains(t, in.Note, "skipped")
		require.Equal(t, at.UnixMilli(), in.ExpectedMS)
		require.Empty(t, in.TrackerWorker, "a skipped fire is not dispatched")
	}

	close(release)
	in := wait(t, s, first)
	require.Equal(t, subjects.InstanceSucceeded, in.State, in.Result)
	testkit.Eventually(t, within, func() bool { return s.Scheduler.RunningOf(j.ID) == 0 }, "the first instance leaves the running set")
	clock.Advance(time.Second) // 5 runs again
	fifth := j.ID + "-" + strconv.FormatInt(t0.Add(5*time.Second).Unix(), 10)
	in = wait(t, s, fifth)
	require.Equal(t, subjects.InstanceSucceeded, in.State, in.Result)
	require.Len(t, started, 1)
	require.Equal(t, fifth, <-started)
}

// subLog records which instance ran which sub-instance.
type subLog struct {
	mu   sync.Mutex
	runs map[string][]int64
}

func (l *subLog) count(instanceID string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.runs[instanceID])
}

func TestFrequent(t *testing.T) {
	t.Parallel()
	for _, tt := range []subjects.TimeType{subjects.TimeFixedRate, subjects.TimeFixedDelay} {
		t.Run(string(tt), func(t *testing.T) {
			t.Parallel()
			log := &subLog{runs: map[string][]int64{}}
			s := testkit.New(t, 1, procFunc("tick", func(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
				log.mu.Lock()
				log.runs[tc.InstanceID] = append(log.runs[tc.InstanceID], tc.SubInstanceID)
				log.mu.Unlock()
				select { // a little work, so that fixed delay is measurable
				case <-time.After(20 * time.Millisecond):
				case <-ctx.Done():
				}
				return processor.OK("tick " + strconv.FormatInt(tc.SubInstanceID, 10)), nil
			}))
			waitLive(t, s, 1)
			j := apiJob("frequent-"+string(tt), "tick")
			j.TimeType, j.TimeExpression = tt, "100ms"
			j = saveJob(t, s, j)

			firstID := frequentInstance(t, s, j.ID, "")
			in := waitFor(t, s, firstID, "three sub-instances reported", func(in *jetstream.Instance) bool {
				return in.State == subjects.InstanceRunning && len(in.Recent) >= 3
			})
			require.Equal(t, s.Workers[0].ID.WorkerID, in.TrackerWorker)
			require.Equal(t, tt, in.Job.TimeType)
			require.EqualValues(t, 100, in.Job.PeriodMS)
			requireSubInstances(t, in, tt)

			// Disabled: the frequent instance is stopped and stays stopped.
			_, err := s.Client.EnableJob(testCtx(t), testkit.App, j.ID, false)
			require.NoError(t, err)
			in = wait(t, s, firstID)
			require.Equal(t, subjects.InstanceStopped, in.State, in.Result)
			require.Equal(t, "job disabled", in.Result)
			testkit.Eventually(t, within, func() bool {
				_, _, f := s.Workers[0].Trackers.Counts()
				return f == 0
			}, "the worker drops its frequent tracker")
			ran := log.count(firstID)
			require.GreaterOrEqual(t, ran, 3)

			// Enabled again: a new frequent instance.
			_, err = s.Client.EnableJob(testCtx(t), testkit.App, j.ID, true)
			require.NoError(t, err)
			secondID := frequentInstance(t, s, j.ID, firstID)
			waitFor(t, s, secondID, "a sub-instance reported", func(in *jetstream.Instance) bool {
				return in.State == subjects.InstanceRunning && len(in.Recent) >= 1
			})
			require.Equal(t, ran, log.count(firstID), "the stopped instance ran nothing more")
			in, err = s.Client.Instance(testCtx(t), firstID)
			require.NoError(t, err)
			require.Equal(t, subjects.InstanceStopped, in.State, "still stopped")

			// Deleted: stopped too, and nothing restarts it.
			require.NoError(t, s.Client.DeleteJob(testCtx(t), testkit.App, j.ID))
			in = wait(t, s, secondID)
			require.Equal(t, subjects.InstanceStopped, in.State, in.Result)
			require.Equal(t, "job deleted", in.Result)
			testkit.Eventually(t, within, func() bool {
				_, _, f := s.Workers[0].Trackers.Counts()
				return f == 0
			}, "the worker drops its frequent tracker")
			require.Len(t, instancesOf(t, s, j.ID), 2, "one frequent instance per enable")
		})
	}
}

// frequentInstance waits for the job's frequent instance other than not.
func frequentInstance(t *testing.T, s *testkit.Stack, jobID, not string) string {
	t.Helper()
	var id string
	testkit.Eventually(t, within, func() bool {
		f, err := s.Scheduler.Jobs().Fire(context.Background(), testkit.App, jobID)
		id = f.Instance
		return err == nil && id != "" && id != not
	}, "a frequent instance of job %s", jobID)
	return id
}

// requireSubInstances checks the reported sub-instances: numbered in
// order, succeeded, and for fixed delay started at least the delay after
// the previous one ended.
func requireSubInstances(t *testing.T, in *jetstream.Instance, tt subjects.TimeType) {
	t.Helper()
	for i, sub := range in.Recent {
		require.Equal(t, subjects.InstanceSucceeded, sub.State, "sub-instance %d: %s", sub.ID, sub.Result)
		require.Equal(t, "tick "+strconv.FormatInt(sub.ID, 10), sub.Result)
		if i == 0 {
			continue
		}
		prev := in.Recent[i-1]
		require.Equal(t, prev.ID+1, sub.ID, "sub-instances are numbered in order")
		if tt == subjects.TimeFixedDelay {
			require.GreaterOrEqual(t, sub.StartMS-prev.EndMS, int64(95), "fixed delay: %d starts %dms after %d ended", sub.ID, sub.StartMS-prev.EndMS, prev.ID)
		}
	}
}

// TestCronMisfire: fires missed while no server owned the app (the fire
// record says the last one was 4s ago) are caught up when the job is
// scheduled, according to its misfire policy, with the same deterministic
// ids as live fires.
func TestCronMisfire(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{subjects.MisfireRunOnce, subjects.MisfireSkip} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			t0 := time.Date(2031, 3, 4, 5, 6, 10, 0, time.UTC)
			s, clock := cronStack(t, t0, okProc("ok"))
			j := cronJob("missed-"+policy, "ok", "* * * * * *")
			j.MisfirePolicy, j.Enabled = policy, false
			j = saveJob(t, s, j)
			_, err := s.Scheduler.Jobs().SetFire(testCtx(t), testkit.App, j.ID, jetstream.FireState{LastMS: t0.Add(-4 * time.Second).UnixMilli()})
			require.NoError(t, err)
			_, err = s.Client.EnableJob(testCtx(t), testkit.App, j.ID, true)
			require.NoError(t, err)
			waitArmed(t, clock, t0.Add(time.Second))

			list := instancesOf(t, s, j.ID)
			require.Len(t, list, 4, "t0-3s .. t0")
			for i, in := range list {
				at := t0.Add(time.Duration(i-3) * time.Second)
				require.Equal(t, j.ID+"-"+strconv.FormatInt(at.Unix(), 10), in.ID)
				require.Equal(t, at.UnixMilli(), in.ExpectedMS)
				if policy == subjects.MisfireRunOnce && i == 3 {
					fin := wait(t, s, in.ID)
					require.Equal(t, subjects.InstanceSucceeded, fin.State, fin.Result)
					require.Contains(t, fin.Note, "late")
					continue
				}
				require.Equal(t, subjects.InstanceCanceled, in.State, "instance %s", in.ID)
				require.Contains(t, in.Note, "missed")
				require.Contains(t, in.Note, "misfire policy "+policy)
			}
			f, err := s.Scheduler.Jobs().Fire(testCtx(t), testkit.App, j.ID)
			require.NoError(t, err)
			require.Equal(t, t0.UnixMilli(), f.LastMS)

			clock.Advance(time.Second)
			require.Len(t, instancesOf(t, s, j.ID), 5)
			in := wait(t, s, j.ID+"-"+strconv.FormatInt(t0.Add(time.Second).Unix(), 10))
			require.Equal(t, subjects.InstanceSucceeded, in.State, in.Result)
		})
	}
}

// A cron fire is assigned to a worker ahead of its time; when that worker
// leaves before the fire time, the assignment is dropped and at its time
// the fire runs once on a live worker.
func TestCronFireMovesWhenItsWorkerLeavesFirst(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)
	clock := scheduler.NewManualClock(t0)
	s := testkit.NewWith(t, testkit.Options{Workers: 2, Processors: []processor.Named{okProc("ok")}, Scheduler: scheduler.Config{Clock: clock}})
	waitLive(t, s, 2)
	j := saveJob(t, s, cronJob("moves", "ok", "* * * * * *"))
	waitArmed(t, clock, t0.Add(time.Second))
	clock.Advance(time.Second - scheduler.DefaultFireLead) // prepares the fire
	id := j.ID + "-" + strconv.FormatInt(t0.Add(time.Second).Unix(), 10)
	in := waitFor(t, s, id, "assigned ahead", func(in *jetstream.Instance) bool {
		return in.State == subjects.InstanceWaitingWorker && in.TrackerWorker != ""
	})
	for _, w := range s.Workers {
		if w.ID.WorkerID == in.TrackerWorker {
			require.NoError(t, w.Stop(testCtx(t)))
		}
	}
	waitFor(t, s, id, "assignment dropped", func(in *jetstream.Instance) bool {
		return in.State == subjects.InstanceWaitingDispatch && in.TrackerWorker == ""
	})
	clock.Advance(scheduler.DefaultFireLead)
	fin := wait(t, s, id)
	require.Equal(t, subjects.InstanceSucceeded, fin.State, fin.Result)
	require.NotEqual(t, in.TrackerWorker, fin.TrackerWorker)
	require.Equal(t, 1, fin.RunCount)
	require.Contains(t, fin.Note, "dispatched elsewhere")
}

// Finding 2 of issue 8: a cron job edited or disabled within the fire lead
// of a fire (its record prepared, WAITING_WORKER_RECEIVE) must not leave
// that record waiting forever. An edit of an enabled job lets the prepared
// fire run and applies from the next one; a disable cancels it with a
// note; with max_instances 1 the job runs again once re-enabled.
func TestCronEditWithinFireLead(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)
	s, clock := cronStack(t, t0, okProc("ok"))
	j := cronJob("edited", "ok", "* * * * * *")
	j.MaxInstances, j.Params = 1, "before"
	j = saveJob(t, s, j)
	fireOf := func(sec int) string {
		return j.ID + "-" + strconv.FormatInt(t0.Add(time.Duration(sec)*time.Second).Unix(), 10)
	}
	// sentinel saves a job after a change and waits for its timer: the
	// scheduler has then seen the change (its watch keeps store order).
	sentinels := 0
	sentinel := func() {
		t.Helper()
		sentinels++
		saveJob(t, s, cronJob("sentinel-"+strconv.Itoa(sentinels), "ok", "0 0 0 1 1 *")) // once a year
	}
	waitArmed(t, clock, t0.Add(time.Second))

	// Edit within the lead of second 1.
	clock.Advance(time.Second - scheduler.DefaultFireLead)
	waitFor(t, s, fireOf(1), "prepared", func(in *jetstream.Instance) bool { return in.State == subjects.InstanceWaitingWorker })
	cur, err := s.Client.Job(testCtx(t), testkit.App, j.ID)
	require.NoError(t, err)
	cur.Params = "after"
	_, err = s.Client.SaveJob(testCtx(t), cur)
	require.NoError(t, err)
	sentinel()
	newYear := time.Date(2032, 1, 1, 0, 0, 0, 0, time.UTC)
	waitArmed(t, clock, t0.Add(time.Second), newYear)
	clock.Advance(scheduler.DefaultFireLead)
	in := wait(t, s, fireOf(1))
	require.Equal(t, subjects.InstanceSucceeded, in.State, in.Result)
	require.Equal(t, "before", in.Params, "the prepared fire runs as prepared")
	testkit.Eventually(t, within, func() bool { return s.Scheduler.RunningOf(j.ID) == 0 }, "the fire ends")
	waitArmed(t, clock, t0.Add(2*time.Second), newYear)
	clock.Advance(time.Second)
	in = wait(t, s, fireOf(2))
	require.Equal(t, subjects.InstanceSucceeded, in.State, in.Result)
	require.Equal(t, "after", in.Params, "the edit applies from the next fire")
	testkit.Eventually(t, within, func() bool { return s.Scheduler.RunningOf(j.ID) == 0 }, "the fire ends")

	// Disable within the lead of second 3: that fire is canceled, not left waiting.
	waitArmed(t, clock, t0.Add(3*time.Second), newYear)
	clock.Advance(time.Second - scheduler.DefaultFireLead)
	waitFor(t, s, fireOf(3), "prepared", func(in *jetstream.Instance) bool { return in.State == subjects.InstanceWaitingWorker })
	_, err = s.Client.EnableJob(testCtx(t), testkit.App, j.ID, false)
	require.NoError(t, err)
	in = waitFor(t, s, fireOf(3), "canceled", func(in *jetstream.Instance) bool { return in.State.Final() })
	require.Equal(t, subjects.InstanceCanceled, in.State)
	require.Contains(t, in.Note, "disabled")
	require.Zero(t, s.Scheduler.RunningOf(j.ID), "a canceled fire does not count against max_instances")
	waitArmed(t, clock, newYear)

	// Enabled again, it runs (max_instances 1 is not held by a stuck fire).
	clock.Advance(scheduler.DefaultFireLead + time.Second) // second 4 passes while disabled
	_, err = s.Client.EnableJob(testCtx(t), testkit.App, j.ID, true)
	require.NoError(t, err)
	waitArmed(t, clock, t0.Add(5*time.Second), newYear)
	clock.Advance(time.Second)
	in = wait(t, s, fireOf(5))
	require.Equal(t, subjects.InstanceSucceeded, in.State, in.Result)
}
