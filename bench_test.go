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
			b.SetBytes(int64(len(value)))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if err := mp.Put(ctx, keys[i%len(keys)], value); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
		b.Run("get-"+where, func(b *testing.B) {
			b.SetBytes(int64(len(value)))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, err := mp.Get(ctx, keys[i%len(keys)]); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
	}
}

// BenchmarkPutDataDir measures what Config.DataDir costs a put: on a 3-member cluster with one
// synchronous backup, puts of keys another member owns (so the owner's and the backup's folder
// commits are both on the write's path), with the data folder off and on, for small and large
// values. docs/restart.md has the figures.
func BenchmarkPutDataDir(b *testing.B) {
	for _, folder := range []bool{false, true} {
		for _, size := range []int{256, 64 << 10, 1 << 20} {
			name := fmt.Sprintf("datadir=%v/value=%d", folder, size)
			b.Run(name, func(b *testing.B) {
				members := startCluster(b, 3, func(cfg *Config) {
					if folder {
						cfg.DataDir = b.TempDir()
					}
				})
				m := members[0]
				mp := getMap[string, []byte](b, m, "bench")
				keys := keysOwnedBy(b, m, false, 256)
				value := make([]byte, size)
				ctx := context.Background()
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						if err := mp.Put(ctx, keys[i%len(keys)], value); err != nil {
							b.Error(err)
							return
						}
						i++
					}
				})
			})
		}
	}
}
