package hbase

import (
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/mapstore"
)

var pressureMB = flag.Int("hbase.pressure-mb", 600, "megabytes of dumps TestWriteBehindDumpPressure writes behind")

// TestWriteBehindDumpPressure writes a few hundred megabytes of Socorro-sized dumps (1-10 MB
// each, log-uniform) into a write-behind map as fast as the map takes them: every partition's
// queue flushes at once, which is what ran the 1 GB-heap test server out of memory under the
// Socorro demo (issue 19) before the client bounded its bytes in flight per region server
// (Config.MaxInFlightBytes) and .ci/hbase.sh sized the server's memstores and call queue for its
// heap. The run must end with the server serving and every dump in HBase, byte for byte.
func TestWriteBehindDumpPressure(t *testing.T) {
	c := testClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	table := fmt.Sprintf("gridmap_pressure_%d_%d", time.Now().UnixNano()%1e9, tableSeq.Add(1))
	// The demo's table: pre-split on the salts, dumps in MOB files.
	st, err := NewStore(ctx, c, StoreConfig{Table: table, Family: "raw_data", Keys: SocorroKeys{}, CreateTable: true,
		TableOptions: TableOptions{SplitKeys: SocorroKeys{}.SplitKeys(), MOBThreshold: 100 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := c.DeleteTable(ctx, table); err != nil {
			t.Logf("delete table %s: %v", table, err)
		}
	})
	member, err := gridmap.Start(ctx, gridmap.Config{Maps: map[string]dmap.MapConfig{"raw": {
		Store:       st,
		Persistence: mapstore.Config{WriteDelay: 100 * time.Millisecond, RetryInitial: 100 * time.Millisecond, RetryMax: time.Second},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close(context.Background())
	m, err := gridmap.GetMap[string, []byte](member, "raw")
	if err != nil {
		t.Fatal(err)
	}

	// Dumps are windows of one random buffer (the generation stays out of the way), each with
	// its index in front so no two are alike.
	pool := randomBytes(11, 10<<20+4096)
	r := rand.New(rand.NewPCG(8, 9))
	day := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	type dump struct {
		key      string
		off, n   int
		checksum [32]byte
	}
	var dumps []dump
	var total int64
	for total < int64(*pressureMB)<<20 {
		n := int(math.Exp(math.Log(1<<20) + r.Float64()*(math.Log(10<<20)-math.Log(1<<20))))
		d := dump{key: crashID(r, day), off: r.IntN(4096), n: n}
		dumps = append(dumps, d)
		total += int64(n)
	}
	value := func(i int) []byte {
		d := dumps[i]
		v := append(fmt.Appendf(nil, "dump %d ", i), pool[d.off:d.off+d.n]...)
		return v[:d.n]
	}
	for i := range dumps {
		dumps[i].checksum = sha256.Sum256(value(i))
	}

	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := m.Put(ctx, dumps[i].key, value(i)); err != nil {
					t.Errorf("put %s: %v", dumps[i].key, err)
				}
			}
		}()
	}
	for i := range dumps {
		work <- i
	}
	close(work)
	wg.Wait()
	if t.Failed() {
		return
	}
	acked := time.Since(start)

	// Every dump reaches HBase: poll the keys (a keys-only scan) until all are there.
	want := map[string]bool{}
	for _, d := range dumps {
		want[d.key] = true
	}
	deadline := time.Now().Add(8 * time.Minute)
	for {
		n := 0
		err := st.LoadAllKeys(ctx, func(k []byte) error {
			if want[string(k)] {
				n++
			}
			return nil
		})
		if err == nil && n == len(dumps) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, %d of %d dumps in HBase (last error: %v): is the server still up?", time.Since(start), n, len(dumps), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	stored := time.Since(start)
	t.Logf("%d dumps, %.0f MB: acknowledged by the map after %v, all in HBase after %v (%.1f MB/s)",
		len(dumps), float64(total)/(1<<20), acked.Round(time.Millisecond), stored.Round(time.Millisecond), float64(total)/(1<<20)/stored.Seconds())

	// Byte for byte, read one at a time (the server answers each read from its MOB files).
	for i, d := range dumps {
		v, ok, err := st.Load(ctx, []byte(d.key))
		if err != nil || !ok {
			t.Fatalf("load %s: found %v, %v", d.key, ok, err)
		}
		if len(v) != d.n || sha256.Sum256(v) != d.checksum {
			t.Fatalf("dump %d (%s): %d bytes that differ from the %d written", i, d.key, len(v), d.n)
		}
		if !bytes.HasPrefix(v, fmt.Appendf(nil, "dump %d ", i)) {
			t.Fatalf("dump %d (%s) holds another dump", i, d.key)
		}
	}
}
