package engine

import (
	"context"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/replicadisk"
)

// folderEntries counts the entries of map mapName that member s's data folder holds in the
// copies of the partitions it holds, and how many of them have an expiry.
func folderEntries(t *testing.T, s *Service, mapName string) (all, withTTL int) {
	t.Helper()
	for _, p := range s.parts {
		p.mu.RLock()
		life := p.diskLife
		var err error
		if life != 0 {
			var cursor []byte
			for more := true; more && err == nil; {
				cursor, more, err = p.disk.Entries(uint32(p.id), life, cursor, 1<<20, func(e replicadisk.Entry) {
					if e.Map != mapName {
						return
					}
					all++
					if e.ExpireAt != 0 {
						withTTL++
					}
				})
			}
		}
		p.mu.RUnlock()
		if err != nil {
			t.Fatalf("reading partition %d of %s's folder: %v", p.id, s.self, err)
		}
	}
	return all, withTTL
}

// Entries of an embedded map that expire leave the data folders of their owner and backups too,
// so that a map written with TTLs does not fill the disk with dead entries; entries without a
// TTL stay.
func TestExpiredEntriesLeaveTheFolder(t *testing.T) {
	c := newDiskCluster(t, t.TempDir(), 3, 1, nil)
	ctx := context.Background()
	m := mustMap[int, []byte](t, c.Svc(0), "crashes")
	const lasting, expiring = 50, 200
	for i := range lasting + expiring {
		var opts []putOpt
		if i >= lasting {
			opts = append(opts, WithTTL(300*time.Millisecond))
		}
		if err := m.Put(ctx, i, pagingValue(i, 0), opts...); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		all, withTTL := 0, 0
		for _, id := range c.Active {
			a, w := folderEntries(t, c.Svcs[id], "crashes")
			all, withTTL = all+a, withTTL+w
		}
		if withTTL == 0 {
			if all != 2*lasting { // an owner's copy and a backup's of each lasting entry
				t.Fatalf("the folders hold %d entries of the map, want %d (owner and backup of %d)", all, 2*lasting, lasting)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the folders still hold %d expired entries (of %d entries)", withTTL, all)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range lasting {
		if ok, err := m.ContainsKey(ctx, i); err != nil || !ok {
			t.Fatalf("ContainsKey %d of an entry without TTL = %v, %v", i, ok, err)
		}
	}
}
