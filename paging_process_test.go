package gridmap

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// pagingChildEnv makes the test binary run runPagingChild: one member process with a data
// folder (the variable's value) that writes a store-less map to many times its memory budget and
// reports what happened on stdout.
const pagingChildEnv = "GRIDMAP_PAGING_CHILD"

const (
	pagingBudget    = 32 << 20
	pagingValueSize = 64 << 10
	pagingKeys      = 8 * pagingBudget / pagingValueSize // 8 × the budget of values
	// pagingHeapGrowth bounds the live heap's growth while writing (docs/operations.md): the
	// budget, plus the entry tables' overhead and dead chunks (up to 0.7 × the budget) and the
	// runtime's, plus room for the data folder's Go-side buffers (its two pebble memtables of
	// 32 MiB are allocated outside the Go heap when cgo is on, inside it when not).
	pagingHeapGrowth = pagingBudget + pagingBudget + 64<<20
)

// pagingReport is what the child prints (one JSON line).
type pagingReport struct {
	Acked     int    // puts acknowledged (all must be)
	Err       string // the first error of a put or a read
	Used      int64  // Member.MemoryUsed after the writes
	HeapStart uint64 // HeapAlloc after a collection, before the writes
	HeapLive  uint64 // HeapAlloc after a collection, after the writes (the least of the readings)
	HeapFirst uint64 // the first such reading
	Read      int    // keys read back with their value
	Seconds   float64
}

// pagingProcValue is key k's value: every 8 bytes hold k, so a value read for another key shows.
func pagingProcValue(k int) []byte {
	v := make([]byte, pagingValueSize)
	for i := 0; i+8 <= len(v); i += 8 {
		binary.LittleEndian.PutUint64(v[i:], uint64(k))
	}
	return v
}

func runPagingChild() int {
	cfg := testConfig(os.Getenv("GRIDMAP_GOSSIP"), nil, 1)
	cfg.MemoryBudget = pagingBudget
	cfg.DataDir = os.Getenv(pagingChildEnv)
	ctx := context.Background()
	fail := func(err error) int {
		fmt.Println(`{"Err":` + strconv.Quote(err.Error()) + `}`)
		return 1
	}
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	m, err := Start(sctx, cfg)
	cancel()
	if err != nil {
		return fail(err)
	}
	defer m.Close(ctx)
	mp, err := GetMap[int, []byte](m, "crashes")
	if err != nil {
		return fail(err)
	}
	var rep pagingReport
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rep.HeapStart = ms.HeapAlloc
	start := time.Now()
	var next, acked atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				k := int(next.Add(1) - 1)
				if k >= pagingKeys {
					return
				}
				c, cancel := context.WithTimeout(ctx, 30*time.Second)
				err := mp.Put(c, k, pagingProcValue(k))
				cancel()
				if err != nil {
					mu.Lock()
					if rep.Err == "" {
						rep.Err = fmt.Sprintf("put %d: %v", k, err)
					}
					mu.Unlock()
					return
				}
				acked.Add(1)
			}
		})
	}
	wg.Wait()
	rep.Acked = int(acked.Load())
	rep.Seconds = time.Since(start).Seconds()
	rep.Used, _ = m.MemoryUsed()
	// The live heap, read after a collection until it is within pagingHeapGrowth of the start
	// (or 15 s have passed): on a loaded machine one reading may catch the buffers of a folder
	// flush or compaction still running, which are gone a moment later; what the member keeps
	// stays in every reading.
	for deadline := time.Now().Add(15 * time.Second); ; {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if rep.HeapFirst == 0 {
			rep.HeapFirst, rep.HeapLive = ms.HeapAlloc, ms.HeapAlloc
		}
		rep.HeapLive = min(rep.HeapLive, ms.HeapAlloc)
		if int64(rep.HeapLive)-int64(rep.HeapStart) <= pagingHeapGrowth || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for k := range pagingKeys {
		v, err := mp.Get(ctx, k)
		if err != nil || !bytes.Equal(v, pagingProcValue(k)) {
			if rep.Err == "" {
				rep.Err = fmt.Sprintf("get %d: %d bytes, %v", k, len(v), err)
			}
			break
		}
		rep.Read++
	}
	b, _ := json.Marshal(rep)
	fmt.Println(string(b))
	return 0
}

// A member process with a data folder whose store-less map is written to 8 × its memory budget
// (issue 17: a data folder lets a map hold more than memory): every write is acknowledged, the
// budget's count stays within the budget, the live heap within the budget plus a stated overhead
// (docs/operations.md), and every key reads its value back (from the folder).
func TestPagingMemberProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a member process")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), pagingChildEnv+"="+t.TempDir(), "GRIDMAP_GOSSIP="+freeGossipAddr(t))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("member process: %v; output %s", err, out)
	}
	var rep pagingReport
	if err := json.Unmarshal(lastLine(out), &rep); err != nil {
		t.Fatalf("report %q: %v", out, err)
	}
	t.Logf("child: %+v (heap growth %d MiB)", rep, (int64(rep.HeapLive)-int64(rep.HeapStart))>>20)
	growth := int64(rep.HeapLive) - int64(rep.HeapStart)
	switch {
	case rep.Err != "":
		t.Fatalf("%d of %d puts acknowledged, %d read back: %s", rep.Acked, pagingKeys, rep.Read, rep.Err)
	case rep.Acked != pagingKeys || rep.Read != pagingKeys:
		t.Fatalf("%d of %d puts acknowledged, %d read back", rep.Acked, pagingKeys, rep.Read)
	case rep.Used > pagingBudget:
		t.Fatalf("%d bytes counted, over the budget %d", rep.Used, pagingBudget)
	case growth > pagingHeapGrowth:
		t.Fatalf("live heap grew by %d MiB (%d MiB at the first reading) writing %d MiB, over the budget of %d MiB + %d MiB", growth>>20, (int64(rep.HeapFirst)-int64(rep.HeapStart))>>20, pagingKeys*pagingValueSize>>20, pagingBudget>>20, (pagingHeapGrowth-pagingBudget)>>20)
	}
}
