package soak

import (
	"context"
	"strings"
	"time"

	jwjs "github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/demo"
	"github.com/jetworker/jetworker/subjects"
)

// checkMarks counts the demo.mark log lines of every acknowledged mark
// instance: a run leaves one, so more lines than the instance's retries
// allow means it ran too often. (Lines of a SIGKILLed worker may be
// lost; that only undercounts.)
func (c *checker) checkMarks(ctx context.Context, logs *jwjs.Logs, w *workload, recs map[string]*jwjs.Instance) (counted int) {
	for id, kind := range w.acked {
		if kind != "mark" {
			continue
		}
		marks := 0
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := logs.Read(rctx, id, false, func(b *subjects.LogBatch) error {
			for _, l := range b.Lines {
				if strings.HasPrefix(l.Message, demo.MarkLine+" ") || l.Message == demo.MarkLine {
					marks++
				}
			}
			return nil
		})
		cancel()
		if err != nil {
			c.add("marks", id, "read logs: %v", err)
			continue
		}
		counted += marks
		allowed, state, note := 1, "no record", ""
		if in := recs[id]; in != nil {
			allowed, state, note = in.InstanceRetries+1, in.State.String(), in.Note
		}
		if marks > allowed {
			c.add("marks", id, "processor ran %d times, retries allow %d (record %s, note %q)", marks, allowed, state, note)
		}
	}
	return counted
}
