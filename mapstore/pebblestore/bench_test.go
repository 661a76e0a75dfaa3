package pebblestore

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/gridmap/gridmap/mapstore"
)

// socorroCycle is a deterministic sequence of write-behind batches with the Socorro size mix:
// per crash report a JSON document of 256 B to 20 KB and a dump of 200 KB to 20 MB, both
// log-uniform (the dump's mean is 4.3 MB), grouped into batches as Queue.Ready would
// (mapstore.DefaultBatchSize entries, mapstore.DefaultBatchBytes bytes).
type socorroCycle struct {
	batches [][]int // each batch: sizes of its entries; even index JSON, odd index dump
	bytes   int64
	reports int
}

func logUniform(r *rand.Rand, lo, hi float64) int {
	return int(math.Exp(math.Log(lo) + r.Float64()*(math.Log(hi)-math.Log(lo))))
}

func newSocorroCycle(reports int) socorroCycle {
	r := rand.New(rand.NewPCG(42, 7))
	c := socorroCycle{reports: reports}
	var cur []int
	var curBytes int64
	for range reports {
		for _, n := range []int{logUniform(r, 256, 20<<10), logUniform(r, 200<<10, 20<<20)} {
			if len(cur) > 0 && (len(cur) == mapstore.DefaultBatchSize || curBytes+int64(n) > mapstore.DefaultBatchBytes) {
				c.batches = append(c.batches, cur)
				cur, curBytes = nil, 0
			}
			cur = append(cur, n)
			curBytes += int64(n)
			c.bytes += int64(n)
		}
	}
	c.batches = append(c.batches, cur)
	return c
}

// BenchmarkDrain stores a cycle of Socorro reports (about 280 MB) per iteration through StoreAll
// and reports the drain rate as MB/s. "writers" is the number of partitions flushing at once.
//
//	go test -run '^$' -bench Drain -benchtime 5x ./mapstore/pebblestore
func BenchmarkDrain(b *testing.B) {
	cycle := newSocorroCycle(64)
	pool := value(1, 24<<20) // values are windows of one random buffer: generation stays out of the loop
	for _, bc := range []struct {
		name string
		opts Options
	}{
		{"blobs/sync", Options{}},
		{"blobs/nosync", Options{NoSync: true}},
		{"inline/sync", Options{BlobThreshold: -1}},
	} {
		for _, writers := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/writers=%d", bc.name, writers), func(b *testing.B) {
				s := open(b, b.TempDir(), bc.opts)
				ctx := context.Background()
				b.SetBytes(cycle.bytes)
				b.ResetTimer()
				for it := range b.N {
					var wg sync.WaitGroup
					work := make(chan int)
					for range writers {
						wg.Go(func() {
							for bi := range work {
								batch := cycle.batches[bi]
								keys := make([][]byte, len(batch))
								vals := make([][]byte, len(batch))
								for i, n := range batch {
									keys[i] = fmt.Appendf(nil, "r%d-%d-%d", it, bi, i)
									off := (bi*7919 + i*104729) % (len(pool) - n + 1)
									vals[i] = pool[off : off+n]
								}
								if err := s.StoreAll(ctx, keys, vals); err != nil {
									b.Error(err)
								}
							}
						})
					}
					for bi := range cycle.batches {
						work <- bi
					}
					close(work)
					wg.Wait()
				}
				b.ReportMetric(float64(cycle.bytes)/float64(cycle.reports)/1e6, "MB/report")
			})
		}
	}
}
