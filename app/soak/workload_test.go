package soak

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jetworker/jetworker/modules/client"
	"github.com/jetworker/jetworker/subjects"
)

// primesN and primesWant are the map-reduce run and its known answer.
const (
	primesN    = "20000"
	primesWant = "2262 primes"
)

// jobEvent is a change the workload made to a scheduled job, on the
// test's clock.
type jobEvent struct {
	at time.Time
	// done is when the change was acknowledged: it took effect somewhere
	// between at and done (a request to a paused owner is answered by
	// the next owner seconds later).
	done    time.Time
	enabled bool // the state after the change
	edit    bool
	unknown bool // a change failed: it may or may not have been applied
}

// workload drives API runs, batches, map-reduce, broadcast and scheduled
// jobs through the client and remembers what was acknowledged.
type workload struct {
	c   *client.Client
	app string

	mu       sync.Mutex
	rng      *rand.Rand
	acked    map[string]string // instance id -> kind
	refused  map[string]int    // kind -> runs the client got no id for
	cron     *subjects.Job
	rate     *subjects.Job
	cronLog  []jobEvent
	cronOn   bool
	runsSent int
}

func newWorkload(c *client.Client, app string, seed uint64) *workload {
	return &workload{c: c, app: app, rng: rand.New(rand.NewPCG(seed, seed^0x50a4)), acked: map[string]string{}, refused: map[string]int{}}
}

func (w *workload) intN(n int) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rng.IntN(n)
}

func (w *workload) ack(kind, id string, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.runsSent++
	if err != nil || id == "" {
		w.refused[kind]++
		return
	}
	w.acked[id] = kind
}

// saveJobs creates the cron (every second) and fixed-rate jobs; it polls
// because jobs are validated against live workers.
func (w *workload) saveJobs(ctx context.Context) error {
	save := func(j *subjects.Job) (*subjects.Job, error) {
		var err error
		for ctx.Err() == nil {
			var out *subjects.Job
			if out, err = w.c.SaveJob(ctx, j); err == nil {
				return out, nil
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond): // poll interval
			}
		}
		return nil, fmt.Errorf("save job %s: %w", j.Name, err)
	}
	var err error
	if w.cron, err = save(&subjects.Job{App: w.app, Name: "cron", Processor: "demo.hello", ExecuteType: subjects.ExecStandalone,
		TimeType: subjects.TimeCron, TimeExpression: "* * * * * *", Enabled: true, MaxInstances: 1}); err != nil {
		return err
	}
	w.mu.Lock()
	w.cronOn = true
	w.cronLog = append(w.cronLog, jobEvent{at: time.Now(), enabled: true})
	w.mu.Unlock()
	w.rate, err = save(&subjects.Job{App: w.app, Name: "rate", Processor: "demo.sleep", Params: "100ms", ExecuteType: subjects.ExecStandalone,
		TimeType: subjects.TimeFixedRate, TimeExpression: "1500ms", Enabled: true})
	return err
}

// every calls fn every period (jittered) until ctx ends: the workload's
// own clock, not a wait for something to happen.
func (w *workload) every(ctx context.Context, wg *sync.WaitGroup, period time.Duration, fn func(context.Context)) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			d := period/2 + time.Duration(w.intN(int(period)))
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			fn(rctx)
			cancel()
		}
	}()
}

// run starts the workload's loops; they end with ctx.
func (w *workload) run(ctx context.Context, wg *sync.WaitGroup) {
	sleep := func() subjects.JobSpec {
		return subjects.JobSpec{Processor: "demo.sleep", ExecuteType: subjects.ExecStandalone}
	}
	w.every(ctx, wg, 150*time.Millisecond, func(ctx context.Context) {
		p := fmt.Sprintf("%dms", 20+w.intN(300))
		r, err := w.c.Run(ctx, w.app, sleep(), p)
		w.ack("short", idOf(r), err)
	})
	w.every(ctx, wg, time.Second, func(ctx context.Context) {
		p := fmt.Sprintf("%ds", 3+w.intN(10))
		r, err := w.c.Run(ctx, w.app, sleep(), p)
		w.ack("long", idOf(r), err)
	})
	w.every(ctx, wg, 2*time.Second, func(ctx context.Context) {
		runs := make([]subjects.RunJob, 20+w.intN(30))
		for i := range runs {
			runs[i] = subjects.RunJob{App: w.app, Job: sleep(), Params: fmt.Sprintf("%dms", 50+w.intN(900))}
		}
		res, err := w.c.RunMany(ctx, w.app, runs)
		for i := range runs {
			if i < len(res) && res[i].Error == nil {
				w.ack("batch", res[i].InstanceID, nil)
			} else {
				w.ack("batch", "", err)
			}
		}
	})
	// Bursts of 1 s runs: many progress reports racing final ones.
	w.every(ctx, wg, 8*time.Second, func(ctx context.Context) {
		runs := make([]subjects.RunJob, 150)
		for i := range runs {
			runs[i] = subjects.RunJob{App: w.app, Job: sleep(), Params: "1s"}
		}
		res, err := w.c.RunMany(ctx, w.app, runs)
		for i := range runs {
			if i < len(res) && res[i].Error == nil {
				w.ack("burst", res[i].InstanceID, nil)
			} else {
				w.ack("burst", "", err)
			}
		}
	})
	w.every(ctx, wg, 4*time.Second, func(ctx context.Context) {
		r, err := w.c.Run(ctx, w.app, subjects.JobSpec{Processor: "demo.primes", ExecuteType: subjects.ExecMapReduce}, primesN)
		w.ack("mapreduce", idOf(r), err)
	})
	w.every(ctx, wg, 3*time.Second, func(ctx context.Context) {
		r, err := w.c.Run(ctx, w.app, subjects.JobSpec{Processor: "demo.hello", ExecuteType: subjects.ExecBroadcast}, "soak")
		w.ack("broadcast", idOf(r), err)
	})
	w.every(ctx, wg, 500*time.Millisecond, func(ctx context.Context) {
		p := fmt.Sprintf("%dms", 50+w.intN(2000))
		r, err := w.c.Run(ctx, w.app, subjects.JobSpec{Processor: "demo.mark", ExecuteType: subjects.ExecStandalone}, p)
		w.ack("mark", idOf(r), err)
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.editCron(ctx)
	}()
}

func idOf(r *subjects.RunJobReply) string {
	if r == nil {
		return ""
	}
	return r.InstanceID
}

// editCron edits, disables or enables the cron job at random moments;
// half of them land 0-200 ms before a whole second (inside the fire lead).
func (w *workload) editCron(ctx context.Context) {
	for {
		d := time.Duration(1500+w.intN(3000)) * time.Millisecond
		if w.intN(2) == 0 {
			at := time.Now().Add(d).Truncate(time.Second).Add(time.Second)
			d = time.Until(at.Add(-time.Duration(w.intN(200)) * time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		w.changeCron(rctx)
		cancel()
	}
}

func (w *workload) changeCron(ctx context.Context) {
	w.mu.Lock()
	job, on := *w.cron, w.cronOn
	action := w.rng.IntN(3)
	w.mu.Unlock()
	ev := jobEvent{at: time.Now(), enabled: on}
	var err error
	var saved *subjects.Job
	switch {
	case action == 0 || !on: // toggle; a disabled job is always enabled again
		ev.enabled = !on
		saved, err = w.c.EnableJob(ctx, w.app, job.ID, !on)
	default: // edit the params of the enabled job
		ev.edit = true
		job.Params = fmt.Sprintf("edit-%d", time.Now().UnixMilli())
		saved, err = w.c.SaveJob(ctx, &job)
	}
	ev.done = time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if saved != nil {
		w.cron = saved
	}
	// A failed change may still have been applied: the state is unknown
	// (seconds are not checked) until the next change succeeds. The next
	// change enables the job, so it ends in a known state.
	if err != nil {
		w.cronLog = append(w.cronLog, jobEvent{at: ev.at, done: ev.done, unknown: true})
		w.cronOn = false
		return
	}
	w.cronOn = ev.enabled
	w.cronLog = append(w.cronLog, ev)
}

// stopJobs disables the scheduled jobs so the quiet period drains.
func (w *workload) stopJobs(ctx context.Context) {
	for _, j := range []*subjects.Job{w.cron, w.rate} {
		for ctx.Err() == nil {
			if _, err := w.c.EnableJob(ctx, w.app, j.ID, false); err == nil {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond): // poll interval
			}
		}
	}
	w.mu.Lock()
	w.cronLog = append(w.cronLog, jobEvent{at: time.Now(), done: time.Now(), enabled: false})
	w.cronOn = false
	w.mu.Unlock()
}
