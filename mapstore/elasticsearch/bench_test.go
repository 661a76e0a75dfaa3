package elasticsearch

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/mapstore"
)

// BenchmarkWriteBehind writes processed-crash-like documents of 1 to 20 KB (and a 4 KB dump
// each, which the Document hook leaves out) through a write-behind map into the real server, in
// weekly indices, from 16 writers, and reports the documents stored per second, the final
// Flush included. The bulk settings are the Store's defaults (5 MiB requests, 4 in flight); the
// map's write-behind batches hold up to 500 entries.
//
//	GRIDMAP_ES_URL=http://127.0.0.1:9200 go test -run x -bench WriteBehind -benchtime 20000x ./mapstore/elasticsearch/
func BenchmarkWriteBehind(b *testing.B) {
	s, _ := newStore(b, func(c *Config) {
		c.Index += "-%Y%W"
		c.KeyTime = crashTime
		crashConfig(c)
	})
	m := startMember(b, s, mapstore.Config{WriteDelay: 100 * time.Millisecond, BatchSize: 500, BatchBytes: 8 << 20})
	mp, err := gridmap.GetMap[string, []byte](m, "crashes")
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	day := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	const pool = 256
	values := make([][]byte, pool)
	dump := make([]byte, 4096)
	for i := range dump {
		dump[i] = byte(r.Uint32())
	}
	var docBytes int
	for i := range values {
		crash := processedCrash(r, crashID(r, day), day, 1024+r.IntN(19*1024))
		docBytes += len(crash)
		values[i] = envelope(crash, dump)
	}
	keys := make([]string, b.N)
	for i := range keys {
		keys[i] = crashID(r, day.AddDate(0, 0, -r.IntN(14)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	b.SetBytes(int64(docBytes / pool))
	b.ResetTimer()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				if err := mp.Put(ctx, keys[i], values[i%pool]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := mp.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	ps := m.Maps().PersistenceStats("crashes")
	if ps.Rejected != 0 || ps.DirtyEntries != 0 {
		b.Fatalf("after the flush: %+v", ps)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "docs/s")
	b.ReportMetric(float64(ps.StoreCalls), "bulk-calls")
}
