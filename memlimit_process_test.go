package gridmap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap/dmap"
)

// memLimitChildEnv makes the test binary run runMemLimitChild: one member process that fills a
// store-less map past its memory budget and reports what happened on stdout.
const memLimitChildEnv = "GRIDMAP_MEMLIMIT_CHILD"

// memLimitBudget is the child's Config.MemoryBudget.
const memLimitBudget = 32 << 20

// memLimitReport is what the child prints (one JSON line).
type memLimitReport struct {
	Acked, Refused   int    // puts acknowledged, writers that got ErrMemoryLimit
	OtherErr         string // any other error
	Used             int64  // Member.MemoryUsed at the limit
	HeapLive         uint64 // HeapAlloc after a collection, at the limit
	ReadsOK          bool   // every acknowledged key read back
	RefusedAgain     bool   // a new key is still refused at the limit
	WriteAfterDelete bool   // after deleting keys, new writes pass
}

// runMemLimitChild is the child: a member with a 32 MiB budget and 4 writers putting 4 KiB values
// under new keys until each is refused.
func runMemLimitChild() int {
	cfg := testConfig(os.Getenv("GRIDMAP_GOSSIP"), nil, 1)
	cfg.MemoryBudget = memLimitBudget
	ctx := context.Background()
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	m, err := Start(sctx, cfg)
	cancel()
	if err != nil {
		fmt.Println(`{"OtherErr":` + strconv.Quote(err.Error()) + `}`)
		return 1
	}
	mp, err := GetMap[int, []byte](m, "plain")
	if err != nil {
		fmt.Println(`{"OtherErr":` + strconv.Quote(err.Error()) + `}`)
		return 1
	}
	put := func(k int) error {
		c, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		return mp.Put(c, k, make([]byte, 4096)) // a fresh value: the member keeps it
	}
	var rep memLimitReport
	var mu sync.Mutex
	var wg sync.WaitGroup
	const writers = 4
	for w := range writers {
		wg.Go(func() {
			for k := w; ; k += writers {
				err := put(k)
				mu.Lock()
				switch {
				case err == nil:
					rep.Acked++
				case errors.Is(err, dmap.ErrMemoryLimit):
					rep.Refused++
				case errors.Is(err, dmap.ErrTimeout):
					mu.Unlock()
					continue // not admitted in time for another reason: try the next key
				default:
					rep.OtherErr = err.Error()
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	rep.Used, _ = m.MemoryUsed()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rep.HeapLive = ms.HeapAlloc
	rep.ReadsOK = true
	n := 0
	for k := 0; n < rep.Acked && k < 4*rep.Acked+writers*4; k++ {
		v, err := mp.Get(ctx, k)
		if errors.Is(err, dmap.ErrNotFound) {
			continue
		}
		if err != nil || len(v) != 4096 {
			rep.ReadsOK = false
			break
		}
		n++
	}
	rep.ReadsOK = rep.ReadsOK && n == rep.Acked
	rep.RefusedAgain = errors.Is(put(1<<30), dmap.ErrMemoryLimit)
	for k := range 200 {
		if _, err := mp.Delete(ctx, k); err != nil {
			rep.OtherErr = err.Error()
		}
	}
	rep.WriteAfterDelete = put(1<<30) == nil && put(1<<30+1) == nil
	b, _ := json.Marshal(rep)
	fmt.Println(string(b))
	_ = m.Close(ctx)
	return 0
}

// A member process whose store-less map is written past its memory budget: writers get
// ErrMemoryLimit, the count stays within the budget, the process's live heap within
// 2 × budget + 64 MiB (docs/operations.md: table overhead up to 0.7 × the budget, the runtime's
// own), reads keep working, and deletes make room for new writes.
func TestMemoryLimitMemberProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a member process")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), memLimitChildEnv+"=1", "GRIDMAP_GOSSIP="+freeGossipAddr(t))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("member process: %v; output %s", err, out)
	}
	var rep memLimitReport
	if err := json.Unmarshal(lastLine(out), &rep); err != nil {
		t.Fatalf("report %q: %v", out, err)
	}
	t.Logf("child: %+v", rep)
	switch {
	case rep.OtherErr != "":
		t.Fatalf("a write failed otherwise: %s", rep.OtherErr)
	case rep.Refused != 4:
		t.Fatalf("%d of 4 writers got ErrMemoryLimit", rep.Refused)
	case rep.Used > memLimitBudget:
		t.Fatalf("%d bytes counted, over the budget %d", rep.Used, memLimitBudget)
	case int64(rep.Acked)*4096 < memLimitBudget*3/4:
		t.Fatalf("refused after %d puts of 4 KiB, far below the budget", rep.Acked)
	case rep.HeapLive > 2*memLimitBudget+64<<20:
		t.Fatalf("live heap %d MiB at the limit, over 2 × %d MiB + 64 MiB", rep.HeapLive>>20, memLimitBudget>>20)
	case !rep.ReadsOK:
		t.Fatal("reads at the limit failed")
	case !rep.RefusedAgain:
		t.Fatal("a new key was accepted at the limit")
	case !rep.WriteAfterDelete:
		t.Fatal("writes still refused after deletes freed memory")
	}
}

// lastLine returns the last non-empty line of b.
func lastLine(b []byte) []byte {
	end := len(b)
	for end > 0 && (b[end-1] == '\n' || b[end-1] == '\r') {
		end--
	}
	start := end
	for start > 0 && b[start-1] != '\n' {
		start--
	}
	return b[start:end]
}
