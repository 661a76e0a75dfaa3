package engine

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkOwnerPutGet measures 256-byte puts and gets served by the caller's own member, the
// owner of the keys: alone (no backups: the owner's own work) and with one backup on the
// in-memory network.
func BenchmarkOwnerPutGet(b *testing.B) {
	for _, setup := range []struct {
		name             string
		members, backups int
		budget           int64
	}{{"solo", 1, 0, 0}, {"backup", 2, 1, 0}, {"budget", 2, 1, 1 << 30}} {
		b.Run(setup.name, func(b *testing.B) {
			c := newCluster(b, setup.members, setup.backups, func(cfg *Config) { cfg.MemoryBudget = setup.budget })
			s := c.Svc(0)
			m, err := newTMap[string, []byte](s, "bench")
			if err != nil {
				b.Fatal(err)
			}
			tab := c.Coord.Table
			var keys []string
			for i := 0; len(keys) < 1024; i++ {
				k := fmt.Sprint("key-", i)
				if p, _ := m.Partition(k); tab.Owner(p) == s.self {
					keys = append(keys, k)
				}
			}
			ctx := context.Background()
			value := make([]byte, 256)
			for _, k := range keys {
				if err := m.Put(ctx, k, value); err != nil {
					b.Fatal(err)
				}
			}
			b.Run("put", func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					if err := m.Put(ctx, keys[i%len(keys)], value); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("get", func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					if _, err := m.Get(ctx, keys[i%len(keys)]); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
