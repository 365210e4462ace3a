package scheduler

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"

	"github.com/jetworker/jetworker/jetstream"
)

// checkpoints writes the adoption checkpoints of the apps this server
// owns (jetstream.Checkpoint) so that the next owner finds their
// unfinished instances without reading every record: every
// checkpointEvery, the instance bucket's last sequence S is read, every
// creation begun before that is waited for (creating), and then each
// app's unfinished instances are taken from the instance tracker. An
// instance unfinished at a takeover is then in the set or written after
// S. An app's checkpoint is written when its set changed, or when S moved
// on by checkpointLag (so that the next owner's read of the records since
// S stays short however busy the other apps are). An app is checkpointed
// only once its adoption is done (a set taken before would miss what the
// adoption has not found yet).
type checkpoints struct {
	store *jetstream.Instances
	inst  *instanceTracker
	epoch func(app string) (uint64, bool) // the lease epoch while owned
	log   *slog.Logger

	// creating counts the creations of instance records in progress (from
	// the write until the instance tracker follows it), by generation: a
	// checkpoint starts a new generation and waits for the old one, so
	// creations never wait for a checkpoint.
	creatingMu sync.Mutex
	creating   *sync.WaitGroup

	mu   sync.Mutex
	apps map[string]*appCheckpoint
	seed maphash.Seed
}

// appCheckpoint is what was last written for an app.
type appCheckpoint struct {
	rev  uint64 // the checkpoint's revision (0: not written yet)
	seq  uint64
	sum  uint64 // order-free hash of the set
	n    int
	done bool // the app is no longer checkpointed here
}

const (
	checkpointEvery = 2 * time.Second
	checkpointLag   = 20_000
)

func newCheckpoints(store *jetstream.Instances, inst *instanceTracker, epoch func(string) (uint64, bool), log *slog.Logger) *checkpoints {
	return &checkpoints{store: store, inst: inst, epoch: epoch, log: log, apps: map[string]*appCheckpoint{}, seed: maphash.MakeSeed(),
		creating: &sync.WaitGroup{}}
}

// creation marks the creation of instance records until done is called
// (after they are followed, or failed).
func (c *checkpoints) creation() (done func()) {
	c.creatingMu.Lock()
	wg := c.creating
	wg.Add(1)
	c.creatingMu.Unlock()
	return wg.Done
}

// settle waits for every creation begun before it was called.
func (c *checkpoints) settle() {
	c.creatingMu.Lock()
	old := c.creating
	c.creating = &sync.WaitGroup{}
	c.creatingMu.Unlock()
	old.Wait()
}

// adopted starts checkpointing app (its adoption is complete); rev is the
// revision of the checkpoint the adoption read (0: none).
func (c *checkpoints) adopted(app string, rev uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.apps[app] = &appCheckpoint{rev: rev}
}

// lost stops checkpointing app.
func (c *checkpoints) lost(app string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a := c.apps[app]; a != nil {
		a.done = true
		delete(c.apps, app)
	}
}

func (c *checkpoints) run(ctx context.Context) {
	tick := time.NewTicker(checkpointEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			c.write(ctx)
		}
	}
}

// write takes and writes the checkpoints due.
func (c *checkpoints) write(ctx context.Context) {
	c.mu.Lock()
	apps := make(map[string]*appCheckpoint, len(c.apps))
	for app, a := range c.apps {
		apps[app] = a
	}
	c.mu.Unlock()
	if len(apps) == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	seq, err := c.store.LastSeq(wctx)
	if err != nil {
		c.log.Warn("adoption checkpoint: read the instance bucket's sequence", "err", err)
		return
	}
	// Every creation begun before seq was read has finished (and been
	// followed) once settle returns: its instance is in the set below; one
	// begun after writes after seq.
	c.settle()
	ids := map[string][]string{}
	c.inst.activeWhere(func(r *jetstream.Instance) bool {
		if _, ok := apps[r.App]; ok {
			ids[r.App] = append(ids[r.App], r.ID)
		}
		return false
	})
	for app, a := range apps {
		sum := uint64(0)
		for _, id := range ids[app] {
			sum ^= maphash.String(c.seed, id)
		}
		if a.rev != 0 && sum == a.sum && len(ids[app]) == a.n && seq-a.seq < checkpointLag {
			continue // nothing changed and the records since a.seq are few
		}
		epoch, ok := c.epoch(app)
		if !ok {
			continue
		}
		cp := jetstream.NewCheckpoint(seq, ids[app])
		cp.Epoch = epoch
		rev, err := c.store.PutCheckpoint(wctx, app, cp, a.rev)
		if errors.Is(err, jetstream.ErrStale) {
			c.log.Warn("adoption checkpoint: a later owner has written one; this server no longer owns the app", "app", app)
			c.lost(app)
			continue
		}
		if err != nil {
			c.log.Warn("adoption checkpoint", "app", app, "err", err)
			continue
		}
		c.mu.Lock()
		if !a.done {
			a.rev, a.seq, a.sum, a.n = rev, seq, sum, len(ids[app])
		}
		c.mu.Unlock()
	}
}
