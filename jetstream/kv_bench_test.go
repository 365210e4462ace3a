package jetstream_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/jetworker/jetworker/modules/natsconn/natstest"
)

// BenchmarkRawKVPut is the yardstick for the stores: asynchronous puts of
// 300-byte values to a file-backed KV bucket on an embedded server, all
// acknowledged, in batches of 1,000.
//
//	go test -run '^$' -bench RawKVPut -benchtime 100000x ./jetstream
func BenchmarkRawKVPut(b *testing.B) {
	ns := natstest.Server(b)
	conn := natstest.Conn(b, ns)
	ctx := context.Background()
	kv, err := conn.JS().CreateKeyValue(ctx, njs.KeyValueConfig{Bucket: "bench", History: 1})
	if err != nil {
		b.Fatal(err)
	}
	_ = kv
	val := make([]byte, 300)
	b.ResetTimer()
	t0 := time.Now()
	futs := make([]njs.PubAckFuture, 0, 1000)
	for i := 0; i < b.N; i++ {
		f, err := conn.JS().PublishAsync(fmt.Sprintf("$KV.bench.k%d", i), val)
		if err != nil {
			b.Fatal(err)
		}
		futs = append(futs, f)
		if len(futs) == cap(futs) || i == b.N-1 {
			for _, f := range futs {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					b.Fatal(err)
				}
			}
			futs = futs[:0]
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "puts/s")
}
