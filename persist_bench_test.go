package gridmap

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/mapstore/pebblestore"
)

// socorroReports returns n crash reports with the Socorro size mix, deterministically: a JSON
// document of 256 B to 20 KB and a dump of 200 KB to 20 MB, both log-uniform (the dump's mean is
// about 4.3 MB). Values are windows of one pseudo-random buffer, so generating them costs
// nothing per report and compression could not help a store.
func socorroReports(n int) (keys []string, values [][]byte, total int64) {
	r := rand.New(rand.NewPCG(42, 7))
	pool := make([]byte, 24<<20)
	for i := 0; i < len(pool); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			pool[i+j] = byte(v >> (8 * j))
		}
	}
	logUniform := func(lo, hi float64) int {
		return int(math.Exp(math.Log(lo) + r.Float64()*(math.Log(hi)-math.Log(lo))))
	}
	for i := range n {
		for j, size := range []int{logUniform(256, 20<<10), logUniform(200<<10, 20<<20)} {
			off := r.IntN(len(pool) - size + 1)
			keys = append(keys, fmt.Sprintf("report-%05d.%s", i, []string{"json", "dump"}[j]))
			values = append(values, pool[off:off+size:off+size])
			total += int64(size)
		}
	}
	return keys, values, total
}

// BenchmarkWriteBehindDrain measures how fast write-behind drains a map of Socorro crash
// reports (JSON + dump, 4.3 MB per report on average) into the embedded pebble store through
// the whole system: each iteration puts 48 reports (about 200 MB) with a write delay of an hour,
// so nothing is stored yet, then times Flush, which makes the owners' flushers store every
// dirty entry. The same keys are written each iteration, so memory stays flat. MB/s is the
// drain rate; the target is 340 MB/s (5,000 reports a minute).
//
//	go test -run '^$' -bench WriteBehindDrain -benchtime 5x .
func BenchmarkWriteBehindDrain(b *testing.B) {
	keys, values, total := socorroReports(48)
	for _, members := range []int{1, 3} {
		for _, sync := range []bool{true, false} {
			b.Run(fmt.Sprintf("members=%d/sync=%v", members, sync), func(b *testing.B) {
				st, err := pebblestore.Open(b.TempDir(), pebblestore.Options{NoSync: !sync})
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				ms := startCluster(b, members, func(c *Config) {
					c.Maps = map[string]dmap.MapConfig{"reports": {Store: st, Persistence: mapstore.Config{WriteDelay: time.Hour}}}
				})
				mp, err := GetMap[string, []byte](ms[0], "reports")
				if err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				b.SetBytes(total)
				b.ResetTimer()
				for range b.N {
					b.StopTimer()
					for i, k := range keys {
						if err := mp.Put(ctx, k, values[i]); err != nil {
							b.Fatal(err)
						}
					}
					b.StartTimer()
					if err := mp.Flush(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(total)/float64(len(keys)/2)/1e6, "MB/report")
				var calls uint64
				for _, m := range ms {
					calls += m.Maps().PersistenceStats("reports").StoreCalls
				}
				b.ReportMetric(float64(calls)/float64(b.N), "storecalls/op")
			})
		}
	}
}
