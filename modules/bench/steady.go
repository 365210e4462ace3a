package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// SteadyConfig is a run at a fixed rate, to see the store under
// retention: it should grow for one retention period and then stay flat.
type SteadyConfig struct {
	Rate     int           // instances per second (zero means 5,000)
	Duration time.Duration // zero means 10 minutes
	Every    time.Duration // sampling period (zero means 30 s)
}

// StoreSample is the store at one moment of a steady run.
type StoreSample struct {
	At             time.Duration `json:"at_ns"` // since the start
	Submitted      int           `json:"submitted"`
	RecordMsgs     uint64        `json:"record_msgs"`
	RecordBytes    uint64        `json:"record_bytes"`
	IndexBytes     uint64        `json:"index_bytes"`
	NATSRSSMiB     float64       `json:"nats_rss_mib"`
	SubmitFailures int           `json:"submit_failures"`
}

// RunSteady submits no-op runs at cfg.Rate (batches of rate/50 every 20
// ms) for cfg.Duration and samples the instance bucket, the index stream
// and NATS's RSS every cfg.Every; report is called with each sample.
func RunSteady(ctx context.Context, c *Cluster, cfg SteadyConfig, report func(StoreSample)) ([]StoreSample, error) {
	if cfg.Rate <= 0 {
		cfg.Rate = 5000
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Minute
	}
	if cfg.Every <= 0 {
		cfg.Every = 30 * time.Second
	}
	nc, js, cl, err := c.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	per := max(cfg.Rate/50, 1)
	job := subjects.JobSpec{JobID: benchJob, Processor: "demo.sleep", ExecuteType: subjects.ExecStandalone}
	runs := make([]subjects.RunJob, per)
	for i := range runs {
		runs[i] = subjects.RunJob{Job: job, Params: "0s"}
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	sample := time.NewTicker(cfg.Every)
	defer sample.Stop()
	start := time.Now()
	end := start.Add(cfg.Duration)
	submitted, failures := 0, 0
	var out []StoreSample
	take := func() error {
		s := StoreSample{At: time.Since(start), Submitted: submitted, SubmitFailures: failures}
		for _, name := range []string{jetstream.InstancesKV.Stream(), jetstream.StreamIndex} {
			st, err := js.Stream(ctx, name)
			if err != nil {
				return fmt.Errorf("stream %s: %w", name, err)
			}
			info, err := st.Info(ctx)
			if err != nil {
				return err
			}
			if name == jetstream.StreamIndex {
				s.IndexBytes = info.State.Bytes
			} else {
				s.RecordMsgs, s.RecordBytes = info.State.Msgs, info.State.Bytes
			}
		}
		c.nats[0].sampleRSS()
		s.NATSRSSMiB = c.nats[0].phase().PeakRSSMiB
		out = append(out, s)
		if report != nil {
			report(s)
		}
		return nil
	}
	c.markPhase()
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-sample.C:
			if err := take(); err != nil {
				return out, err
			}
		case <-tick.C:
			// One request at a time: a slow reply lowers the rate rather
			// than piling requests up (reported as the submitted count).
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := cl.RunMany(rctx, c.cfg.App, runs)
			cancel()
			if err != nil {
				failures++
				continue
			}
			submitted += per
		}
	}
	return out, take()
}
