package gridmap

import (
	"context"
	"fmt"
	"testing"
)

// keysOwnedBy returns n keys whose partition owner is (local) or is not (remote) member m.
func keysOwnedBy(b *testing.B, m *Member, local bool, n int) []string {
	mp := getMap[string, []byte](b, m, "bench")
	tab := m.node.Table()
	var keys []string
	for i := 0; len(keys) < n; i++ {
		k := fmt.Sprint("key-", i)
		p, err := mp.Partition(k)
		if err != nil {
			b.Fatal(err)
		}
		if (tab.Owner(p) == m.id) == local {
			keys = append(keys, k)
		}
	}
	return keys
}

// BenchmarkMap measures 256-byte puts and gets on a 3-member cluster with one synchronous
// backup, for keys this member owns (local) and keys another member owns (remote).
func BenchmarkMap(b *testing.B) {
	members := startCluster(b, 3, nil)
	m := members[0]
	mp := getMap[string, []byte](b, m, "bench")
	ctx := context.Background()
	value := make([]byte, 256)
	for _, where := range []string{"local", "remote"} {
		keys := keysOwnedBy(b, m, where == "local", 1024)
		for _, k := range keys {
			if err := mp.Put(ctx, k, value); err != nil {
				b.Fatal(err)
			}
		}
		b.Run("put-"+where, func(b *testing.B) {
			parallelOps(b, len(value), keys, func(k string) error { return mp.Put(ctx, k, value) })
		})
		b.Run("get-"+where, func(b *testing.B) {
			parallelOps(b, len(value), keys, func(k string) error {
				_, err := mp.Get(ctx, k)
				return err
			})
		})
	}
}

// BenchmarkPutDataDir measures what Config.DataDir costs a put: on a 3-member cluster with one
// synchronous backup, with the data folder off and on, for small and large values, puts of keys
// the calling member owns (local: the owner's folder commit and the backup's round trip, with
// its folder commit, are on the write's path) and of keys another member owns (remote: a round
// trip to the owner more). docs/restart.md has the figures.
func BenchmarkPutDataDir(b *testing.B) {
	for _, where := range []string{"local", "remote"} {
		for _, size := range []int{256, 64 << 10, 1 << 20} {
			for _, folder := range []bool{false, true} {
				name := fmt.Sprintf("keys=%s/value=%d/datadir=%v", where, size, folder)
				b.Run(name, func(b *testing.B) {
					members := startCluster(b, 3, func(cfg *Config) {
						if folder {
							cfg.DataDir = b.TempDir()
						}
					})
					m := members[0]
					mp := getMap[string, []byte](b, m, "bench")
					keys := keysOwnedBy(b, m, where == "local", 256)
					value := make([]byte, size)
					ctx := context.Background()
					parallelOps(b, size, keys, func(k string) error { return mp.Put(ctx, k, value) })
				})
			}
		}
	}
}

// parallelOps runs op on keys in turn from b's parallel goroutines, each op counting bytes.
func parallelOps(b *testing.B, bytes int, keys []string, op func(key string) error) {
	b.SetBytes(int64(bytes))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if err := op(keys[i%len(keys)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
