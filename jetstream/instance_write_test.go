package jetstream_test

import (
	"fmt"
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	jwjs "github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// TestBatchWrites: a batch of records (more than the flow window, so the
// server's flow acknowledgements are waited for) is stored whole, in
// order with the writes sent around it, each final record with its TTL;
// Commit returns only once all are stored. The owner turns batches on;
// a server without them (before 2.14) gets the same records one acknowledgement each.
func TestBatchWrites(t *testing.T) {
	t.Parallel()
	for _, batched := range []bool{true, false} {
		t.Run(fmt.Sprintf("batched=%v", batched), func(t *testing.T) {
			t.Parallel()
			js := setupJS(t)
			ctx := testCtx(t)
			s, err := jwjs.OpenInstances(ctx, js, 1)
			require.NoError(t, err)
			require.NoError(t, s.EnableRetention(ctx, func(*jwjs.Instance) time.Duration { return time.Hour }))
			st, err := js.Stream(ctx, "KV_"+jwjs.BucketInstances)
			require.NoError(t, err)
			require.True(t, st.CachedInfo().Config.AllowBatchPublish, "the owner turns batch writes on")
			if !batched {
				jwjs.WithoutBatches(s)
			}

			// A running record written on its own first, then its final
			// record in the batch: the batch's write is the one that stays.
			_, err = s.Create(ctx, &jwjs.Instance{ID: "i-0", App: "a", State: subjects.InstanceRunning})
			require.NoError(t, err)
			b := s.Batch()
			const n = 300
			for i := range n {
				state := subjects.InstanceSucceeded
				if i%7 == 3 {
					state = subjects.InstanceRunning
				}
				require.NoError(t, b.Put(&jwjs.Instance{ID: fmt.Sprintf("i-%d", i), App: "a", JobID: "j", State: state, Result: "r"}))
			}
			require.NoError(t, b.Commit(ctx))
			for i := range n {
				got, _, err := s.Get(ctx, fmt.Sprintf("i-%d", i))
				require.NoError(t, err, "i-%d is stored once Commit returns", i)
				m, err := st.GetLastMsgForSubject(ctx, "$KV."+jwjs.BucketInstances+"."+got.ID)
				require.NoError(t, err)
				if i%7 == 3 {
					require.Equal(t, subjects.InstanceRunning, got.State)
					require.Empty(t, m.Header.Get(njs.MsgTTLHeader), "a record that is not final never expires")
				} else {
					require.Equal(t, subjects.InstanceSucceeded, got.State, "i-%d", i)
					require.Equal(t, "1h0m0s", m.Header.Get(njs.MsgTTLHeader))
				}
			}
			require.NoError(t, s.Batch().Commit(ctx), "an empty batch commits")
		})
	}
}
