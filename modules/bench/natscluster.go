package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/jetworker/jetworker/jetstream"
)

// natsClusterName is the NATS cluster name of a multi-node bench cluster.
const natsClusterName = "jwbench"

// clusterFormTimeout bounds the wait for a multi-node NATS cluster to
// place a replicated stream, and CheckReplicas's wait for leaders.
const clusterFormTimeout = time.Minute

// Replicas is the replica count the server chooses on this cluster's NATS
// (replicas 0 = automatic: 3 on a cluster of 3 or more servers, else 1).
func (c *Cluster) Replicas() int {
	if c.cfg.NATSNodes >= 3 {
		return 3
	}
	return 1
}

// NATSNodes is how many NATS processes the cluster runs.
func (c *Cluster) NATSNodes() int { return max(c.cfg.NATSNodes, 1) }

// startNATS starts the NATS node or nodes and, for a cluster, waits until
// JetStream can place a stream on Replicas() of them.
func (c *Cluster) startNATS(ctx context.Context) error {
	n := c.NATSNodes()
	c.cfg.NATSNodes = n
	ports, err := freePorts(n * 2) // client ports, then route ports
	if err != nil {
		return err
	}
	var urls []string
	for i := range n {
		urls = append(urls, "nats://127.0.0.1:"+strconv.Itoa(ports[i]))
	}
	c.URL = strings.Join(urls, ",")
	for i := range n {
		name, store := "nats", "nats-store"
		args := []string{"nats", "--host", "127.0.0.1", "--port", strconv.Itoa(ports[i])}
		if n > 1 {
			name, store = fmt.Sprintf("nats-%d", i), fmt.Sprintf("nats-%d-store", i)
			var routes []string
			for j := range n {
				if j != i {
					routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(ports[n+j]))
				}
			}
			args = append(args, "--name", fmt.Sprintf("n%d", i), "--cluster-name", natsClusterName,
				"--cluster-port", strconv.Itoa(ports[n+i]), "--routes", strings.Join(routes, ","))
		}
		args = append(args, "--store-dir", filepath.Join(c.cfg.Dir, store))
		p, err := startProc(c.cfg.Dir, name, c.cfg.Bin, nil, "nats listening on", args...)
		if err != nil {
			return err
		}
		c.nats = append(c.nats, p)
	}
	for _, p := range c.nats {
		if err := p.waitReady(ctx); err != nil {
			return err
		}
	}
	if n == 1 {
		return nil
	}
	return c.waitPlacement(ctx)
}

// probeStream is the stream waitPlacement creates and deletes.
const probeStream = "BENCH_PROBE"

// waitPlacement waits until the NATS cluster has a JetStream meta leader
// that knows enough peers to place a stream of Replicas() replicas (a
// freshly started cluster refuses one for a moment: no leader yet, or
// "insufficient resources"), by creating one in memory and deleting it.
// The server would otherwise fail creating its stores.
func (c *Cluster) waitPlacement(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, clusterFormTimeout)
	defer cancel()
	nc, err := nats.Connect(c.URL, nats.Name("jetworker-bench-probe"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := njs.New(nc)
	if err != nil {
		return err
	}
	want := c.Replicas()
	for {
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := js.CreateStream(actx, njs.StreamConfig{Name: probeStream, Subjects: []string{"bench.probe"},
			Storage: njs.MemoryStorage, Replicas: want})
		acancel()
		if err == nil {
			return js.DeleteStream(ctx, probeStream)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: a NATS cluster of %d nodes did not place a stream of %d replicas within %s: %v",
				errNotReady, c.NATSNodes(), want, clusterFormTimeout, err)
		case <-time.After(100 * time.Millisecond): // the meta group is forming
		}
	}
}

// ReplicaCheck is what CheckReplicas found.
type ReplicaCheck struct {
	// Replicas is the replica count of every stream checked.
	Replicas int `json:"replicas"`
	// Streams is how many streams were checked (the instance bucket's
	// among them).
	Streams int `json:"streams"`
	// Nodes are the distinct NATS servers that hold a replica of the
	// instance bucket (its leader first).
	Nodes []string `json:"nodes,omitempty"`
}

// CheckReplicas verifies that every stream the server created (the
// benchmark's own BENCH_* are left out), the instance bucket
// KV_jw_instances among them, has Replicas() replicas, and on a NATS
// cluster that each has a leader and its followers on other, online
// nodes. A stream of another replica count fails at once; the leaders
// and followers are waited for (bounded) since a stream created a moment
// ago may still be electing.
func (c *Cluster) CheckReplicas(ctx context.Context, js njs.JetStream) (*ReplicaCheck, error) {
	ctx, cancel := context.WithTimeout(ctx, clusterFormTimeout)
	defer cancel()
	want := c.Replicas()
	for {
		rc, wait, err := c.checkReplicas(ctx, js, want)
		if err != nil {
			return nil, err
		}
		if wait == nil {
			return rc, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("bench: replicas not in place within %s: %w", clusterFormTimeout, wait)
		case <-time.After(100 * time.Millisecond): // a leader is being elected
		}
	}
}

// checkReplicas is one look: err is a wrong configuration (final), wait
// what is not in place yet.
func (c *Cluster) checkReplicas(ctx context.Context, js njs.JetStream, want int) (rc *ReplicaCheck, wait, err error) {
	instances := jetstream.InstancesKV.Stream()
	rc = &ReplicaCheck{Replicas: want}
	l := js.ListStreams(ctx)
	var infos []*njs.StreamInfo
	for info := range l.Info() {
		infos = append(infos, info)
	}
	if err := l.Err(); err != nil {
		return nil, nil, fmt.Errorf("bench: list streams: %w", err)
	}
	slices.SortFunc(infos, func(a, b *njs.StreamInfo) int { return strings.Compare(a.Config.Name, b.Config.Name) })
	for _, info := range infos {
		name := info.Config.Name
		if strings.HasPrefix(name, "BENCH_") {
			continue
		}
		rc.Streams++
		if info.Config.Replicas != want {
			return nil, nil, fmt.Errorf("bench: stream %s has %d replicas, want %d (NATS nodes: %d)", name, info.Config.Replicas, want, c.NATSNodes())
		}
		if name == instances {
			rc.Nodes = []string{}
		}
		if want == 1 {
			continue
		}
		ci := info.Cluster
		if ci == nil || ci.Leader == "" {
			wait = errors.Join(wait, fmt.Errorf("stream %s has no leader", name))
			continue
		}
		nodes := []string{ci.Leader}
		for _, p := range ci.Replicas {
			if !p.Offline && !p.Pending && !slices.Contains(nodes, p.Name) {
				nodes = append(nodes, p.Name)
			}
		}
		if len(nodes) != want {
			wait = errors.Join(wait, fmt.Errorf("stream %s is on %d online nodes (%s), want %d", name, len(nodes), strings.Join(nodes, " "), want))
			continue
		}
		if name == instances {
			rc.Nodes = nodes
		}
	}
	if rc.Nodes == nil {
		return nil, nil, fmt.Errorf("bench: no stream %s", instances)
	}
	if wait != nil {
		return nil, wait, nil
	}
	return rc, nil, nil
}

// freePorts returns n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var out []int
	for len(out) < n {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}
