package gridmap

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gridmap/gridmap/dmap"
)

// fillRestartMap writes, overwrites and deletes keys of map "restart" through m and returns
// what the map then holds.
func fillRestartMap(t *testing.T, m *Member, n int) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mp, err := GetMap[string, string](m, "restart")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := range n {
		k := fmt.Sprint("k", i)
		if err := mp.Put(ctx, k, fmt.Sprint("v", i)); err != nil {
			t.Fatal(err)
		}
		want[k] = fmt.Sprint("v", i)
	}
	for i := 0; i < n; i += 3 {
		k := fmt.Sprint("k", i)
		if _, err := mp.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
		delete(want, k)
	}
	for i := 1; i < n; i += 3 {
		k := fmt.Sprint("k", i)
		if err := mp.Put(ctx, k, "again"); err != nil {
			t.Fatal(err)
		}
		want[k] = "again"
	}
	return want
}

// onFolder gives a member the data folder dir, a restore timeout and a logger.
func onFolder(dir string, timeout time.Duration, sink *logSink, mods ...func(*Config)) func(*Config) {
	return func(c *Config) {
		c.DataDir = dir
		c.RestoreTimeout = timeout
		if sink != nil {
			c.Logger = sink.logger()
		}
		for _, mod := range mods {
			mod(c)
		}
	}
}

// stoppedFolders starts a cluster of 3 members on data folders, fills map "restart" with n keys
// (fillRestartMap) and ends every member with stop (kill, or a graceful Close); it returns the
// 3 folders, member mI's at dirs[i], and what the map held.
func stoppedFolders(t *testing.T, n int, stop func(*Member)) (dirs []string, want map[string]string) {
	t.Helper()
	root := t.TempDir()
	dirs = []string{filepath.Join(root, "a"), filepath.Join(root, "b"), filepath.Join(root, "c")}
	members := startCluster(t, 3, withDataDirs(dirs))
	want = fillRestartMap(t, members[0], n)
	for _, m := range members {
		stop(m)
	}
	return dirs, want
}

// restartOnLastTwo starts a cluster of 2 members again on dirs[1] and dirs[2] (member mI on
// dirs[1+i]), the first folder absent, with the restore timeout, logging to sink and the
// further settings mods (a RestorePolicy).
func restartOnLastTwo(t *testing.T, dirs []string, timeout time.Duration, sink *logSink, mods ...func(*Config)) []*Member {
	t.Helper()
	return startCluster(t, 2, func(c *Config) {
		var i int
		if _, err := fmt.Sscanf(c.Name, "m%d", &i); err != nil {
			t.Fatalf("member name %q: %v", c.Name, err)
		}
		onFolder(dirs[1+i], timeout, sink, mods...)(c)
	})
}

// TestRestartWaitsForAbsentFolders: a cluster of 3 members with data folders is killed at once
// and one member starts again alone (ExpectMembers 1) on its folder, which holds the newest
// copies of only some partitions: it serves none of them, from a stale copy or empty, but
// refuses them with ErrRestoreIncomplete naming the absent folders, once its restore timeout
// passed. The two other members then start one after the other, each with ExpectMembers 1,
// and the map is back exactly.
func TestRestartWaitsForAbsentFolders(t *testing.T) {
	dirs, want := stoppedFolders(t, 600, (*Member).kill)

	sink := &logSink{}
	alone := startMembers(t, 1, onFolder(dirs[0], time.Second, sink))[0]
	mp, err := GetMap[string, string](alone, "restart")
	if err != nil {
		t.Fatal(err)
	}
	// Before the restore timeout, operations wait for the absent folders; after it, every key
	// is refused (none is served from the lone folder's copies, which lack the writes of the
	// partitions it backed up or did not hold).
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < 600; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		v, err := mp.Get(ctx, fmt.Sprint("k", i))
		cancel()
		switch {
		case errors.Is(err, dmap.ErrRestoreIncomplete):
			if !strings.Contains(err.Error(), "absent data folders") {
				t.Fatalf("k%d: the error does not name the absent folders: %v", i, err)
			}
		case errors.Is(err, dmap.ErrTimeout) && time.Now().Before(deadline):
			i-- // still waiting for the folders: ask again
		default:
			t.Fatalf("k%d on a lone folder of 3: got %q, %v; want dmap.ErrRestoreIncomplete", i, v, err)
		}
	}
	if !strings.Contains(sink.String(), "restore refused") {
		t.Fatalf("no error log names the absent folders:\n%s", sink.String())
	}

	b := join(t, []*Member{alone}, onFolder(dirs[1], time.Second, nil, func(c *Config) { c.Name = "m1" }))
	c := join(t, []*Member{alone, b}, onFolder(dirs[2], time.Second, nil, func(c *Config) { c.Name = "m2" }))
	waitSettled(t, alone, b, c)
	for _, m := range []*Member{alone, b, c} {
		if d := diff(mapContents(t, m, "restart"), want); d != "" {
			t.Fatalf("once every folder is back, via %s: %s", m.cfg.Name, d)
		}
	}
}

// TestRestartPartialPolicy: a cluster of 3 members killed at once starts again on 2 of its
// folders with RestorePartialMostRecent: after the restore timeout the partitions are restored
// from the newest copies present and a warning says so. With one backup every partition had an
// in-sync copy on 2 of the 3 folders, so the map is back exactly; and at the next restart on
// all 3 folders the absent folder's older copies do not come back.
func TestRestartPartialPolicy(t *testing.T) {
	dirs, want := stoppedFolders(t, 600, (*Member).kill)

	sink := &logSink{}
	members := restartOnLastTwo(t, dirs, time.Second, sink, func(c *Config) { c.RestorePolicy = RestorePartialMostRecent })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mp, err := GetMap[string, string](members[0], "restart")
	if err != nil {
		t.Fatal(err)
	}
	// Change the map after the partial restore: the absent folder's copies must not win later.
	if err := mp.Put(ctx, "k1", "after the partial restore"); err != nil {
		t.Fatal(err)
	}
	want["k1"] = "after the partial restore"
	if !strings.Contains(sink.String(), "partial restore") {
		t.Fatalf("no warning says the restore was partial:\n%s", sink.String())
	}
	for _, m := range members {
		if d := diff(mapContents(t, m, "restart"), want); d != "" {
			t.Fatalf("after the partial restore, via %s: %s", m.cfg.Name, d)
		}
	}
	for _, m := range members {
		if err := m.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	members = startCluster(t, 3, withDataDirs(dirs))
	for _, m := range members {
		if d := diff(mapContents(t, m, "restart"), want); d != "" {
			t.Fatalf("restarted on all 3 folders after the partial restore, via %s: %s", m.cfg.Name, d)
		}
	}
}

// TestAllowPartialRestore: a cluster of 3 members killed at once starts again on 2 of its
// folders with the default policy and a long restore timeout: operations wait for the absent
// folder (and end with ErrTimeout; a warning names it) until the operator allows a partial
// restore on every member, which then restores the map at once.
func TestAllowPartialRestore(t *testing.T) {
	dirs, want := stoppedFolders(t, 300, (*Member).kill)

	sink := &logSink{}
	members := restartOnLastTwo(t, dirs, 10*time.Minute, sink)
	mp, err := GetMap[string, string](members[0], "restart")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	v, err := mp.Get(ctx, "k1")
	cancel()
	if !errors.Is(err, dmap.ErrTimeout) {
		t.Fatalf("Get while a remembered folder is absent: %q, %v; want dmap.ErrTimeout", v, err)
	}
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(sink.String(), "restore waits for absent data folders"); {
		if time.Now().After(deadline) {
			t.Fatalf("no warning names the absent folder:\n%s", sink.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, m := range members {
		m.Cluster().AllowPartialRestore()
	}
	for _, m := range members {
		if d := diff(mapContents(t, m, "restart"), want); d != "" {
			t.Fatalf("after AllowPartialRestore, via %s: %s", m.cfg.Name, d)
		}
	}
}

// TestRestartOnLastFolderAfterGracefulStop: members closed one after another hand their
// partitions to those still running, so the last one to stop holds the newest copy of every
// partition, and its folder remembers only itself: started again alone (ExpectMembers 1, the
// default policy and a restore timeout far beyond the test's), it restores everything at once.
// The first to stop, started alone, waits instead: its folder remembers the others.
func TestRestartOnLastFolderAfterGracefulStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dirs, want := stoppedFolders(t, 600, func(m *Member) {
		if err := m.Close(ctx); err != nil {
			t.Fatal(err)
		}
	})

	first := startMembers(t, 1, onFolder(dirs[0], time.Hour, nil))[0]
	mp, err := GetMap[string, string](first, "restart")
	if err != nil {
		t.Fatal(err)
	}
	getCtx, getCancel := context.WithTimeout(ctx, 500*time.Millisecond)
	v, err := mp.Get(getCtx, "k1")
	getCancel()
	if !errors.Is(err, dmap.ErrTimeout) {
		t.Fatalf("the first folder to stop, alone: Get = %q, %v; want dmap.ErrTimeout (waiting for the others)", v, err)
	}
	first.kill()

	last := startMembers(t, 1, onFolder(dirs[2], time.Hour, nil))[0]
	if d := diff(mapContents(t, last, "restart"), want); d != "" {
		t.Fatalf("the last folder to stop, alone: %s", d)
	}
}
