package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
)

// TestCheckReplicas: on a 3-node NATS cluster, waitPlacement returns once
// an R3 stream can be placed (and leaves no probe stream); CheckReplicas
// fails a round whose instance bucket is R1, or that has none, and on R3
// names the bucket's three nodes; a single-node bench expects R1, so an
// R3 store fails it too.
func TestCheckReplicas(t *testing.T) {
	t.Parallel()
	tc := natstest.NewCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := &Cluster{cfg: ClusterConfig{NATSNodes: 3}, URL: strings.Join(tc.URLs(), ",")}
	require.Equal(t, 3, c.Replicas())
	require.NoError(t, c.waitPlacement(ctx))

	nc, err := nats.Connect(c.URL)
	require.NoError(t, err)
	defer nc.Close()
	js, err := njs.New(nc)
	require.NoError(t, err)
	_, err = js.Stream(ctx, probeStream)
	require.ErrorIs(t, err, njs.ErrStreamNotFound, "the probe stream is deleted")

	_, err = c.CheckReplicas(ctx, js)
	require.ErrorContains(t, err, "no stream KV_"+jetstream.BucketInstances)

	_, err = js.CreateKeyValue(ctx, njs.KeyValueConfig{Bucket: jetstream.BucketInstances, Replicas: 1})
	require.NoError(t, err)
	_, err = c.CheckReplicas(ctx, js)
	require.ErrorContains(t, err, "stream KV_"+jetstream.BucketInstances+" has 1 replicas, want 3 (NATS nodes: 3)")

	require.NoError(t, js.DeleteKeyValue(ctx, jetstream.BucketInstances))
	_, err = js.CreateKeyValue(ctx, njs.KeyValueConfig{Bucket: jetstream.BucketInstances, Replicas: 3})
	require.NoError(t, err)
	rc, err := c.CheckReplicas(ctx, js)
	require.NoError(t, err)
	require.Equal(t, 3, rc.Replicas)
	require.Equal(t, 1, rc.Streams)
	require.ElementsMatch(t, []string{"n0", "n1", "n2"}, rc.Nodes)

	single := &Cluster{cfg: ClusterConfig{NATSNodes: 1}}
	_, err = single.CheckReplicas(ctx, js)
	require.ErrorContains(t, err, "has 3 replicas, want 1 (NATS nodes: 1)")
}
