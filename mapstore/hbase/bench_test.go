package hbase

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap/mapstore"
)

// socorroBatches groups Socorro-sized entries into write-behind batches as a mapstore queue
// would (at most mapstore.DefaultBatchSize entries and mapstore.DefaultBatchBytes bytes): per
// crash a 1 KB raw crash JSON and a dump of 200 KB to 20 MB, log-uniform (mean 4.3 MB).
func socorroBatches(reports int) (batches [][]int, total int64) {
	r := rand.New(rand.NewPCG(42, 7))
	var cur []int
	var curBytes int64
	for range reports {
		dump := int(math.Exp(math.Log(200<<10) + r.Float64()*(math.Log(20<<20)-math.Log(200<<10))))
		for _, n := range []int{1 << 10, dump} {
			if len(cur) > 0 && (len(cur) == mapstore.DefaultBatchSize || curBytes+int64(n) > mapstore.DefaultBatchBytes) {
				batches = append(batches, cur)
				cur, curBytes = nil, 0
			}
			cur = append(cur, n)
			curBytes += int64(n)
			total += int64(n)
		}
	}
	return append(batches, cur), total
}

// BenchmarkWriteBehind stores Socorro raw crashes and dumps (32 reports, about 140 MB, per
// iteration) through Store.StoreAll, as a write-behind map's flushes would, with 1 and 4
// partitions flushing at once, into a plain and a MOB column family, and reports MB/s.
//
//	GRIDMAP_HBASE_ADDR=$(.ci/hbase.sh addr) go test -run '^$' -bench WriteBehind -benchtime 3x ./mapstore/hbase
func BenchmarkWriteBehind(b *testing.B) {
	c := testClient(b)
	ctx := context.Background()
	batches, total := socorroBatches(32)
	pool := randomBytes(9, 24<<20) // values are windows of one buffer: generation stays out of the loop
	for _, bc := range []struct {
		mob     int64
		writers int
	}{{0, 1}, {0, 4}, {100 << 10, 1}, {100 << 10, 4}} {
		writers := bc.writers
		b.Run(fmt.Sprintf("mob=%v/writers=%d", bc.mob > 0, writers), func(b *testing.B) {
			table := fmt.Sprintf("gridmap_bench_%d_%d", time.Now().UnixNano()%1e9, tableSeq.Add(1))
			st, err := NewStore(ctx, c, StoreConfig{Table: table, Family: "raw_data", Keys: SocorroKeys{}, CreateTable: true,
				TableOptions: TableOptions{SplitKeys: SocorroKeys{}.SplitKeys(), MOBThreshold: bc.mob}})
			if err != nil {
				b.Fatal(err)
			}
			defer c.DeleteTable(ctx, table)
			r := rand.New(rand.NewPCG(5, 6))
			var rmu sync.Mutex
			newKey := func() []byte {
				rmu.Lock()
				defer rmu.Unlock()
				return []byte(crashID(r, time.Now().UTC()))
			}
			b.SetBytes(total)
			b.ResetTimer()
			for range b.N {
				work := make(chan []int)
				var wg sync.WaitGroup
				errs := make(chan error, writers)
				for range writers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for sizes := range work {
							keys := make([][]byte, len(sizes))
							values := make([][]byte, len(sizes))
							for i, n := range sizes {
								keys[i] = newKey()
								off := (i * 7919) % (len(pool) - n)
								values[i] = pool[off : off+n]
							}
							if err := st.StoreAll(ctx, keys, values); err != nil {
								errs <- err
								return
							}
						}
					}()
				}
				for _, bt := range batches {
					work <- bt
				}
				close(work)
				wg.Wait()
				select {
				case err := <-errs:
					b.Fatal(err)
				default:
				}
			}
		})
	}
}
