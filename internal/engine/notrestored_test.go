package engine

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/enginetest"
	"github.com/gridmap/gridmap/internal/replicadisk"
	"github.com/gridmap/gridmap/partition"
)

// diskCluster starts a cluster of len(dirs) members with one backup, member i (m0i) on the data
// folder dirs[i]; start, if not nil, runs on each member's service before the member is in a
// table. The test's cleanup closes the services, then the folders.
func diskCluster(t *testing.T, dirs []string, start func(m enginetest.Member, s *Service)) *enginetest.Cluster[*Service] {
	t.Helper()
	disks := make([]*replicadisk.Disk, len(dirs))
	for i, dir := range dirs {
		d, err := replicadisk.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		disks[i] = d
		t.Cleanup(func() { d.Close() }) // after the services' (registered later, run first)
	}
	var started int
	return enginetest.NewCluster(t, len(dirs), enginetest.Config[*Service]{
		Partitions: testPartitions,
		Plan:       partition.PlanConfig{Backups: 1, RecreateLost: true},
		Start: func(m enginetest.Member) (*Service, error) {
			s, err := NewService(Config{OperationTimeout: diskTestTimeout, Disk: disks[started]}, m.Node, m.Caller, m.Server)
			started++
			if err == nil && start != nil {
				start(m, s)
			}
			return s, err
		},
		Stop: func(s *Service) { s.Close() },
	})
}

// diskTestTimeout bounds the operations of the data folder tests.
const diskTestTimeout = 20 * time.Second

// stopDiskCluster closes every member's service and folder (a cluster stopped at once).
func stopDiskCluster(t *testing.T, c *enginetest.Cluster[*Service]) {
	t.Helper()
	for _, s := range c.Svcs {
		s.Close()
		if err := s.cfg.Disk.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNotRestoredOwnerRefuses stages, deterministically, the race the notRestored guard
// answers (owner.go). A cluster of 2 members on data folders holds map "m"; it is stopped and
// started again on the same folders. Member A (m00) sees no table at first, so nothing of it
// is restored, while the coordinator's table makes it the owner of key k's partition. Member B
// sends an operation on k to A: A's ensureRestored finds (in A's old view) that A does not own
// the partition and returns; then (the test hook) A sees the new table, and its ownership
// check passes, on a partition not restored from its folder. The hook holds the partition's
// restore back until that attempt is answered, so that A's background restorer, which starts
// as A sees the table, cannot restore the partition first.
//
// A write served there would be acknowledged and then overwritten by the restore of the
// folder's older value; a read would miss the folder's value. A must refuse the attempt
// (statusWrongOwner): B routes it again, and that attempt restores the partition first.
// Without the guard, "write" fails with k = "old" after "new" was acknowledged, "read" with
// ErrNotFound.
func TestNotRestoredOwnerRefuses(t *testing.T) {
	for _, write := range []bool{true, false} {
		t.Run(map[bool]string{true: "write", false: "read"}[write], func(t *testing.T) {
			root := t.TempDir()
			dirs := []string{filepath.Join(root, "a"), filepath.Join(root, "b")}
			ctx, cancel := context.WithTimeout(context.Background(), diskTestTimeout)
			defer cancel()

			first := diskCluster(t, dirs, nil)
			fm := mustMap[string, string](t, first.Svc(0), "m")
			const n = 200 // keys in every partition
			for i := range n {
				if err := fm.Put(ctx, fmt.Sprint("k", i), "old"); err != nil {
					t.Fatal(err)
				}
			}
			stopDiskCluster(t, first)

			// A (m00) starts seeing an empty table: nothing is restored on it. The hook lets it
			// see the coordinator's table at the first operation on k's partition, after
			// ensureRestored, and holds that partition's restore until the attempt is answered.
			var (
				a      *Service
				target atomic.Int32
				staged atomic.Bool
			)
			target.Store(-1)
			c := diskCluster(t, dirs, func(m enginetest.Member, s *Service) {
				if m.ID != "m00" {
					return
				}
				a = s
				m.Node.Freeze(partition.NewTable(testPartitions))
				s.testRestoreChecked = func(p partition.ID) func() {
					if int32(p) != target.Load() {
						return func() {}
					}
					if !staged.CompareAndSwap(false, true) {
						return func() {}
					}
					pt := s.parts[p]
					pt.restoreMu.Lock()
					m.Node.Thaw()
					return pt.restoreMu.Unlock
				}
			})
			tab, _ := c.Coord.Watch()
			bm := mustMap[string, string](t, c.Svcs["m01"], "m")
			var k string
			for i := range n {
				if p, _ := bm.Partition(fmt.Sprint("k", i)); tab.Owner(p) == "m00" && slices.Contains(tab.Partitions[p].Replicas, "m01") {
					k = fmt.Sprint("k", i)
					target.Store(int32(p))
					break
				}
			}
			if k == "" {
				t.Fatal("no key owned by m00 with m01 its backup")
			}
			p := partition.ID(target.Load())
			if a.parts[p].isRestored() {
				t.Fatalf("partition %d is restored on m00 before the staged operation", p)
			}
			want := "old"
			if write {
				if err := bm.Put(ctx, k, "new"); err != nil {
					t.Fatal(err)
				}
				want = "new"
			} else {
				v, err := bm.Get(ctx, k)
				if err != nil || v != "old" {
					t.Fatalf("Get(%s) on the owner of a partition not yet restored = %q, %v; want \"old\" (its folder's value)", k, v, err)
				}
			}
			// Every member answers the acknowledged value, and the partition is restored (the
			// reads would have restored it).
			for id, s := range c.Svcs {
				v, err := mustMap[string, string](t, s, "m").Get(ctx, k)
				if err != nil || v != want {
					t.Fatalf("Get(%s) via %s after the restore = %q, %v; want %q", k, id, v, err, want)
				}
			}
			if !a.parts[p].isRestored() {
				t.Fatalf("partition %d read but not restored on m00", p)
			}
			// The retry may pass the hook again, or take the non-blocking path (tryServeOp) once
			// the background restorer restored the partition: only the staging is certain.
			if !staged.Load() {
				t.Fatalf("no operation on partition %d passed the hook: the race was not staged", p)
			}
		})
	}
}
