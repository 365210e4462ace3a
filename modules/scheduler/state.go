package scheduler

import (
	"errors"
	"fmt"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// ErrBackwards is returned (and logged) when a change would move an
// instance record backwards; the change is not written.
var ErrBackwards = errors.New("scheduler: instance state may only move forward")

// checkTransition is the one rule every write of an instance record obeys
// (instanceTracker.apply calls it for each):
//   - a final record keeps its state, result, finish time and run count;
//     only facts left blank may be filled in (who tracked it, when it was
//     triggered). Running a finished instance again is a new instance
//     (instance retry by request), never a change of this one;
//   - the epoch (tracker generation) never decreases;
//   - a non-final state moves forward (WAITING_DISPATCH → WAITING_WORKER_RECEIVE
//     → RUNNING → final), except back to WAITING_DISPATCH, which starts a
//     new attempt: an assignment taken back before its tracker received it,
//     an instance retry after a failed run, a failover retry from scratch.
func checkTransition(old, next *jetstream.Instance) error {
	if next.Epoch < old.Epoch {
		return fmt.Errorf("%w: epoch %d → %d", ErrBackwards, old.Epoch, next.Epoch)
	}
	if old.State.Final() {
		switch {
		case next.State != old.State:
			return fmt.Errorf("%w: %s is final, not %s", ErrBackwards, old.State, next.State)
		case next.Result != old.Result, next.FinishedMS != old.FinishedMS, next.RunCount != old.RunCount:
			return fmt.Errorf("%w: the outcome of a final instance (%s) does not change", ErrBackwards, old.State)
		case old.TrackerWorker != "" && next.TrackerWorker != old.TrackerWorker:
			return fmt.Errorf("%w: the tracker of a final instance does not change", ErrBackwards)
		case old.TriggerMS != 0 && next.TriggerMS != old.TriggerMS:
			return fmt.Errorf("%w: the trigger time of a final instance does not change", ErrBackwards)
		}
		return nil
	}
	if next.State < old.State && next.State != subjects.InstanceWaitingDispatch {
		return fmt.Errorf("%w: %s → %s", ErrBackwards, old.State, next.State)
	}
	return nil
}
