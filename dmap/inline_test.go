package dmap

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// Writes served inline are recycled once they answered (inlineWrites). If anything touched a
// write after that (a second backup callback, the retry path, a caller that gave up), another
// caller's write would get its answer or its mutation. Here 16 callers on every member write
// their own keys with operations whose answers depend on the request (conditional writes), two
// backups per partition, while every seventh backup call fails, sending writes down the retry
// path. Every answer must be the one its own operation calls for, and every value the last
// one written.
func TestRecycledWritesAnswerTheirOwnCallers(t *testing.T) {
	c := newCluster(t, 3, 2, nil)
	var calls atomic.Int64
	c.net.setDrop(func(from, to string, mt transport.MsgType) bool {
		return mt == msgBackup && calls.Add(1)%7 == 0
	})
	defer c.net.setDrop(nil)

	ctx := context.Background()
	const workers, rounds = 16, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		m := mustMap[string, string](t, c.svc(w%3), "recycled")
		wg.Go(func() {
			fail := func(format string, args ...any) {
				errs <- fmt.Errorf("worker %d: "+format, append([]any{w}, args...)...)
			}
			for i := range rounds {
				k := fmt.Sprintf("w%02d-k%03d", w, i)
				v1, v2 := k+"/one", k+"/two"
				if ok, err := m.PutIfAbsent(ctx, k, v1); err != nil || !ok {
					fail("first PutIfAbsent(%s) = %v, %v; want true", k, ok, err)
					return
				}
				if ok, err := m.PutIfAbsent(ctx, k, v2); err != nil || ok {
					fail("second PutIfAbsent(%s) = %v, %v; want false", k, ok, err)
					return
				}
				if ok, err := m.ReplaceIfSame(ctx, k, v2, "wrong"); err != nil || ok {
					fail("ReplaceIfSame(%s) with a stale value = %v, %v; want false", k, ok, err)
					return
				}
				if ok, err := m.ReplaceIfSame(ctx, k, v1, v2); err != nil || !ok {
					fail("ReplaceIfSame(%s) = %v, %v; want true", k, ok, err)
					return
				}
				if got, err := m.Get(ctx, k); err != nil || got != v2 {
					fail("Get(%s) = %q, %v; want %q", k, got, err, v2)
					return
				}
				if i%2 == 0 {
					if ok, err := m.Delete(ctx, k); err != nil || !ok {
						fail("Delete(%s) = %v, %v; want true", k, ok, err)
						return
					}
					if ok, err := m.Delete(ctx, k); err != nil || ok {
						fail("second Delete(%s) = %v, %v; want false", k, ok, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if calls.Load() < 7 {
		t.Fatalf("only %d backup calls: the retry path was not exercised", calls.Load())
	}
	// Every replica holds exactly what was acknowledged: what the owners applied is what their
	// backups applied.
	c.net.setDrop(nil)
	all := map[string]string{}
	for p := range c.cfg.PartitionCount {
		maps.Copy(all, waitReplicasAgree(t, c, partition.ID(p), "recycled"))
	}
	want := map[string]string{}
	for w := range workers {
		for r := 1; r < rounds; r += 2 {
			k := fmt.Sprintf("w%02d-k%03d", w, r)
			want[k] = k + "/two"
		}
	}
	for k, v := range want {
		if all[k] != v {
			t.Errorf("replicas hold %q for %s, want %q", all[k], k, v)
		}
	}
	for k, v := range all {
		if _, ok := want[k]; !ok {
			t.Errorf("replicas hold deleted %s = %q", k, v)
		}
	}
}
