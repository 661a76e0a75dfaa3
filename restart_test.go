package gridmap

import (
	"context"
	"fmt"
	"path/filepath"
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
