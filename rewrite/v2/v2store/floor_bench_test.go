package v2store_test

import (
	"context"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
	"github.com/etcdshim/etcdshim/internal/etcdrpc"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// BenchmarkWriteFloor is what one v2 write costs the shim's process in its
// upstream call alone, against an etcd 3.7 member in another process, with
// 50 concurrent callers as in the live v2 PUT benchmark: a plain v3 Put (the
// least any gRPC write costs a client), the transaction a v2 set sends, and
// the store's whole Put (the transaction plus building its event). Besides
// ns/op it reports cpu-µs/op, this process's user+system CPU per call
// (getrusage; the member is not counted): the floor under the shim CPU per
// v2 PUT of BENCHMARKS.md, which adds HTTP and the watch events.
func BenchmarkWriteFloor(b *testing.B) {
	pool := harness.StartMemberPool(b, "3.7")
	kv := etcdrpc.NewKVClient(pool.ClientConn())
	store := v2store.NewV3(pool.ClientConn(), "")
	ctx := context.Background()
	if _, _, err := store.Put(ctx, "/bench/k", v2store.SetOptions{Value: "x"}); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"v3-put", func(ctx context.Context) error {
			_, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("/bench/k"), Value: []byte("x")})
			return err
		}},
		{"v2-set-store", func(ctx context.Context) error {
			_, _, err := store.Put(ctx, "/bench/k", v2store.SetOptions{Value: "x"})
			return err
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			parallel(b, 50, func() {
				if err := c.call(ctx); err != nil {
					b.Error(err)
				}
			})
		})
	}
}

// parallel runs f b.N times from n goroutines and reports cpu-µs/op.
func parallel(b *testing.B, n int, f func()) {
	b.SetParallelism((n + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	before := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			f()
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(processCPU()-before)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
}

// processCPU is this process's user+system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
