package gridmap

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// withDataDirs gives member i of startMembers the data folder dirs[i] (by its Name, m<i>).
func withDataDirs(dirs []string) func(*Config) {
	return func(c *Config) {
		var i int
		fmt.Sscanf(c.Name, "m%d", &i)
		c.DataDir = dirs[i]
	}
}

// TestRestartInProcess: a cluster of 3 members with data folders writes, overwrites and deletes
// keys, is closed member by member, and starts again on the same folders with 3 members, then,
// killed at once, with 2 (every partition had an in-sync copy on 2 of the 3 folders): every key
// is back with its last value and no deleted key is.
func TestRestartInProcess(t *testing.T) {
	root := t.TempDir()
	dirs := []string{filepath.Join(root, "a"), filepath.Join(root, "b"), filepath.Join(root, "c")}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	want := map[string]string{}
	members := startCluster(t, 3, withDataDirs(dirs))
	mp, err := GetMap[string, string](members[0], "restart")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		k := fmt.Sprint("k", i)
		if err := mp.Put(ctx, k, fmt.Sprint("v", i)); err != nil {
			t.Fatal(err)
		}
		want[k] = fmt.Sprint("v", i)
	}
	for i := 0; i < 1000; i += 3 {
		k := fmt.Sprint("k", i)
		if _, err := mp.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
		delete(want, k)
	}
	for i := 1; i < 1000; i += 3 {
		k := fmt.Sprint("k", i)
		if err := mp.Put(ctx, k, "again"); err != nil {
			t.Fatal(err)
		}
		want[k] = "again"
	}
	for _, m := range members {
		if err := m.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	check := func(members []*Member) {
		t.Helper()
		for _, m := range members {
			if d := diff(mapContents(t, m, "restart"), want); d != "" {
				t.Fatalf("after restart, via %s: %s", m.cfg.Name, d)
			}
		}
	}
	members = startCluster(t, 3, withDataDirs(dirs))
	check(members)
	for _, m := range members {
		m.kill()
	}
	// The 2 folders remember the third, which may hold newer copies than theirs as far as they
	// can tell (a crash stops nobody in order): the restore waits for it, so this start says
	// that it will not come back (RestorePartialMostRecent). With one backup and every member
	// killed at once, the 2 folders hold in-sync copies of every partition.
	members = startCluster(t, 2, func(c *Config) {
		withDataDirs(dirs[1:])(c)
		c.RestorePolicy = RestorePartialMostRecent
		c.RestoreTimeout = time.Second
	})
	check(members)
}

// TestRestartRacingJoinAndLeave: a cluster of 3 members with data folders is closed and started
// again on its folders, and at once, while the partitions are restored (each on its first
// operation, docs/restart.md), a fourth member with an empty folder joins and one of the three
// leaves gracefully, with readers and writers running: afterwards every key has its last
// acknowledged value on every member. Every partition had a copy on 2 of the 3 folders, so the
// leaver's folder is never the only copy; the leaver must hand off what it restored or owned.
func TestRestartRacingJoinAndLeave(t *testing.T) {
	root := t.TempDir()
	dirs := []string{filepath.Join(root, "a"), filepath.Join(root, "b"), filepath.Join(root, "c"), filepath.Join(root, "d")}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const name, keys = "restart", 600
	want := map[string]string{}
	members := startCluster(t, 3, withDataDirs(dirs))
	mp, err := GetMap[string, string](members[0], name)
	if err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		k, v := fmt.Sprint("k", i), fmt.Sprint("v", i)
		if err := mp.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
		want[k] = v
	}
	for _, m := range members {
		if err := m.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}

	members = startMembers(t, 3, withDataDirs(dirs))
	var wg sync.WaitGroup
	var joiner *Member
	errs := make(chan error, 4)
	wg.Go(func() {
		cfg := testConfig(freeGossipAddr(t), []string{members[0].GossipAddr(), members[1].GossipAddr()}, 1)
		cfg.Name = "m3"
		withDataDirs(dirs)(&cfg)
		jctx, jcancel := context.WithTimeout(ctx, 60*time.Second)
		defer jcancel()
		m, err := Start(jctx, cfg)
		if err != nil {
			errs <- fmt.Errorf("join: %w", err)
			return
		}
		joiner = m
	})
	wg.Go(func() {
		if err := members[2].Close(ctx); err != nil {
			errs <- fmt.Errorf("leave: %w", err)
		}
	})
	// Writers and readers on the two that stay: the first operation on a partition restores it.
	var mu sync.Mutex
	for w := range 2 {
		wg.Go(func() {
			m, err := GetMap[string, string](members[w], name)
			if err != nil {
				errs <- err
				return
			}
			for i := w; i < keys; i += 2 {
				k := fmt.Sprint("k", i)
				if i%5 == 0 {
					v := fmt.Sprint("w", i)
					if err := m.Put(ctx, k, v); err != nil {
						errs <- fmt.Errorf("put %s: %w", k, err)
						return
					}
					mu.Lock()
					want[k] = v
					mu.Unlock()
					continue
				}
				got, err := m.Get(ctx, k)
				if err != nil {
					errs <- fmt.Errorf("get %s: %w", k, err)
					return
				}
				mu.Lock()
				exp := want[k]
				mu.Unlock()
				if got != exp {
					errs <- fmt.Errorf("during the restore, join and leave: %s = %q, want %q", k, got, exp)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if joiner == nil {
		t.FailNow()
	}
	t.Cleanup(joiner.kill)
	stay := []*Member{members[0], members[1], joiner}
	waitSettled(t, stay...)
	for _, m := range stay {
		if d := diff(mapContents(t, m, name), want); d != "" {
			t.Fatalf("after the restore, join and leave, via %s: %s", m.cfg.Name, d)
		}
	}
}
