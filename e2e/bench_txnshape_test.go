//go:build bench

package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/e2e/harness"
	"github.com/etcdshim/etcdshim/rewrite/v2/v2store"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// txnShapeSection: what the parts of a v2 write's transaction cost the 3.7
// member. Each shape runs for benchDur from 50 concurrent callers on one
// clientv3 connection, alternating round by round; the table gives the
// member's CPU per operation. The last shape is the shim's own code
// (v2store's set), the others build it up from a plain put.
func txnShapeSection(t *testing.T, out *strings.Builder, member *harness.Member) {
	cli := newClient(t, member.ClientURL)
	ctx := context.Background()
	store := v2store.NewV3(cli.ActiveConnection(), "")
	const key, parent = "/bench-shape/k", "/bench-shape"
	absent := func(k string) clientv3.Cmp { return clientv3.Compare(clientv3.Version(k), "=", 0) }
	// The set transaction's compares: no file at the parent's path, no
	// directory (keys below) at the key's.
	checks := []clientv3.Cmp{absent(parent), absent(key + "/").WithRange(key + "0")}
	put := clientv3.OpPut(key, "x", clientv3.WithPrevKV())
	marker := clientv3.OpTxn([]clientv3.Cmp{absent(parent + "/")}, []clientv3.Op{clientv3.OpPut(parent+"/", "")}, nil)
	action := clientv3.OpPut(parent+"/.", v2store.ActionSet) // the directory record
	shapes := []struct {
		name string
		op   func() error
	}{
		{"plain put", func() error { _, err := cli.Put(ctx, key, "x"); return err }},
		{"put in a txn (with prevKv)", func() error { _, err := cli.Txn(ctx).Then(put).Commit(); return err }},
		{"+ the two precondition compares", func() error { _, err := cli.Txn(ctx).If(checks...).Then(put).Commit(); return err }},
		{"+ the parent directory's marker (nested txn)", func() error {
			_, err := cli.Txn(ctx).If(checks...).Then(marker, put).Commit()
			return err
		}},
		{"+ the action record", func() error {
			_, err := cli.Txn(ctx).If(checks...).Then(marker, put, action).Commit()
			return err
		}},
		{"the shim's v2 set (v2store.V3Store.Put)", func() error {
			_, _, err := store.Put(ctx, key, v2store.SetOptions{Value: "x"})
			return err
		}},
	}
	arms := make([]arm, len(shapes))
	order := make([]string, len(shapes))
	for i, s := range shapes {
		order[i] = s.name
		arms[i] = arm{name: s.name, procs: []proc{{"3.7 member", member.PID()}}, run: func() sample {
			var n atomic.Int64
			var failed atomic.Value
			start := time.Now()
			var wg sync.WaitGroup
			for range 50 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for time.Since(start) < benchDur() {
						if err := s.op(); err != nil {
							failed.Store(err)
							return
						}
						n.Add(1)
					}
				}()
			}
			wg.Wait()
			if err, _ := failed.Load().(error); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			elapsed := time.Since(start)
			return sample{ops: int(n.Load()), elapsed: elapsed}
		}}
	}
	res := alternate(arms)
	var b strings.Builder
	fmt.Fprintf(&b, "\n### What a v2 write's transaction costs the member, part by part\n\n`%s (clientv3, 50 concurrent callers on one connection, %s)`\n\n"+
		"| transaction | ops/s | 3.7 member µs/op |\n|---|---|---|\n", rerun("txnshape"), key)
	for _, name := range order {
		r := res[name]
		fmt.Fprintf(&b, "| %s | %.0f | %.0f |\n", name, median(r.qps), r.procCPU["3.7 member"]/float64(r.allOps)*1e6)
	}
	out.WriteString(b.String())
}
