package dmap

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/engine"
)

// An operation that ends with its context (or its own deadline) returns ErrTimeout that also
// matches the context's error, whether the key's owner is this member or another one, and
// whether the caller or the owner noticed the end first.
func TestContextEndMatchesContextError(t *testing.T) {
	c := newCluster(t, 2, 1, func(cfg *engine.Config) { cfg.OperationTimeout = 300 * time.Millisecond })
	ctx := context.Background()
	self := c.Svc(0)
	m := mustMap[string, string](t, self, "ctx")
	// A key this member owns and one the other member owns, each also locked by the other member
	// so that writes to it wait.
	keys := map[bool]string{}
	for i := 0; len(keys) < 2; i++ {
		k := fmt.Sprintf("k%d", i)
		p, err := m.Partition(k)
		if err != nil {
			t.Fatal(err)
		}
		local := c.Coord.Table.Owner(p) == c.id(self)
		if _, ok := keys[local]; !ok {
			keys[local] = k
		}
	}
	locker := mustMap[string, string](t, c.Svc(1), "ctx")
	for _, k := range keys {
		if err := m.Put(ctx, k, "v"); err != nil {
			t.Fatal(err)
		}
		if _, err := locker.Lock(ctx, "locked-"+k, 0); err != nil {
			t.Fatal(err)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	expired, cancel2 := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel2()
	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 100*time.Millisecond) }

	type op func(ctx context.Context, key string) error
	get := func(ctx context.Context, k string) error { _, err := m.Get(ctx, k); return err }
	put := func(ctx context.Context, k string) error { return m.Put(ctx, k, "w") }
	putLocked := func(ctx context.Context, k string) error { return m.Put(ctx, "locked-"+k, "w") }
	for _, tc := range []struct {
		name string
		op   op
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"get/cancelled", get, func() (context.Context, context.CancelFunc) { return cancelled, func() {} }, context.Canceled},
		{"put/cancelled", put, func() (context.Context, context.CancelFunc) { return cancelled, func() {} }, context.Canceled},
		{"get/expired", get, func() (context.Context, context.CancelFunc) { return expired, func() {} }, context.DeadlineExceeded},
		{"put/expired", put, func() (context.Context, context.CancelFunc) { return expired, func() {} }, context.DeadlineExceeded},
		// The write waits for the lock: the deadline passes while the owner refuses it.
		{"put-locked/deadline", putLocked, short, context.DeadlineExceeded},
		// No deadline of the caller's: Config.OperationTimeout ends the wait.
		{"put-locked/operation-timeout", putLocked, func() (context.Context, context.CancelFunc) { return ctx, func() {} }, context.DeadlineExceeded},
	} {
		for _, local := range []bool{true, false} {
			name := tc.name + "/remote"
			if local {
				name = tc.name + "/local"
			}
			t.Run(name, func(t *testing.T) {
				octx, cancel := tc.ctx()
				defer cancel()
				err := tc.op(octx, keys[local])
				if !errors.Is(err, ErrTimeout) || !errors.Is(err, tc.want) {
					t.Fatalf("error = %v; want one that matches ErrTimeout and %v", err, tc.want)
				}
			})
		}
	}
}
