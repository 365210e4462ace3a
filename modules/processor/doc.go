// Package processor is jetworker's processor SDK: what a job runs.
//
// A Processor handles one task: Process(ctx, tc) returns a Result. The job's
// execute type decides how tasks come about (PowerJob's model):
//
//   - standalone: one task on one worker.
//   - broadcast: one task on every allowed worker; a processor that also
//     implements PreProcessor runs PreProcess once on the tracker's worker
//     first, and one that implements PostProcessor gets every result after.
//   - map: the root task (tc.IsRoot()) emits sub-tasks with tc.Map; those
//     run anywhere and may map further.
//   - map_reduce: map, then Reduce (Reducer) runs once when every task is
//     final, and always runs, even when some tasks failed.
//
// Processors must honour ctx.Done(): it is cancelled when the instance is
// stopped, times out, or the worker drains. A panic in a processor is
// recovered and fails the task with the panic text. A zero Result with a nil
// error is a failure ("no result"), never a success.
package processor
