package hbase

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// regionServersEnv tells the tests how many region servers the test cluster runs
// (.ci/hbase.sh's GRIDMAP_HBASE_REGIONSERVERS, which .ci/run exports): with two or more,
// TestRegionMove must really move regions between servers.
const regionServersEnv = "GRIDMAP_HBASE_REGIONSERVERS"

// TestRegionMove moves every region of a table to another region server and back (the
// master's MoveRegion: closed on one server, opened on the other) while writers, a reader and
// a scanner keep going; on a cluster of one region server it closes and reopens each region in
// place instead (UnassignRegion, AssignRegion). Writes go on throughout (the client's cached
// locations answer NotServingRegionException or RegionMovedException and it looks the regions
// up again), every scan returns rows in order, none twice, none acknowledged before it started
// missing, and at the end every acknowledged write is in HBase with its last value.
func TestRegionMove(t *testing.T) {
	var logBuf syncBuffer
	c, err := NewClient(Config{Addrs: []string{serverAddr(t)}, Logger: slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	splits := [][]byte{rowKey(2500), rowKey(5000), rowKey(7500)}
	table := testTable(t, c, splits...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	needMove := false
	if n, _ := strconv.Atoi(os.Getenv(regionServersEnv)); n >= 2 {
		needMove = true
	}

	// Writers: writer w owns the rows i with i%4 == w, so each row's last acknowledged value is
	// the value it must end with.
	const writers, rows, batch = 4, 10000, 40
	var mu sync.Mutex
	acked := map[int]string{}
	var ackedWrites atomic.Int64
	stop := make(chan struct{})
	errs := make(chan error, writers+2)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 77))
			for round := 0; ; round++ {
				select {
				case <-stop:
					return
				default:
				}
				picked := map[int]bool{}
				var ms []Mutation
				for len(ms) < batch {
					i := r.IntN(rows/writers)*writers + w
					if picked[i] {
						continue
					}
					picked[i] = true
					ms = append(ms, putOf(i, fmt.Appendf(nil, "w%d round %d", w, round)))
				}
				if err := c.ApplyAll(ctx, table, ms); err != nil {
					errs <- fmt.Errorf("writer %d round %d: %w", w, round, err)
					return
				}
				mu.Lock()
				for i := range picked {
					acked[i] = fmt.Sprintf("w%d round %d", w, round)
				}
				mu.Unlock()
				ackedWrites.Add(int64(len(ms)))
			}
		}()
	}
	// A scanner: in order, no row twice, every row acknowledged before the scan began present.
	var scans atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			before := make(map[string]bool, len(acked))
			for i := range acked {
				before[string(rowKey(i))] = true
			}
			mu.Unlock()
			var last []byte
			seen := 0
			err := c.Scan(ctx, table, ScanOptions{Family: "f", Caching: 300}, func(row Row) error {
				if last != nil && bytes.Compare(row.Key, last) <= 0 {
					return fmt.Errorf("scan returned %q after %q", row.Key, last)
				}
				last = row.Key
				if before[string(row.Key)] {
					seen++
				}
				return nil
			})
			if err == nil && seen != len(before) {
				err = fmt.Errorf("scan saw %d of the %d rows acknowledged before it began", seen, len(before))
			}
			if err != nil {
				errs <- fmt.Errorf("scan: %w", err)
				return
			}
			scans.Add(1)
		}
	}()
	// A reader: every acknowledged row is found.
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(5, 5))
		for {
			select {
			case <-stop:
				return
			default:
			}
			i := r.IntN(rows)
			mu.Lock()
			_, ok := acked[i]
			mu.Unlock()
			if !ok {
				continue
			}
			if _, found, err := c.Get(ctx, table, rowKey(i), "f"); err != nil || !found {
				errs <- fmt.Errorf("get row %d: found %v, %v", i, found, err)
				return
			}
		}
	}()
	failed := func() bool {
		select {
		case err := <-errs:
			t.Error(err)
			return true
		default:
			return false
		}
	}
	// progress waits until the writers acknowledged another round each.
	progress := func(what string) {
		t.Helper()
		from := ackedWrites.Load()
		deadline := time.Now().Add(2 * time.Minute)
		for ackedWrites.Load() < from+writers*batch {
			if failed() {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("no writes acknowledged within 2 minutes after %s", what)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	progress("the start")
	starts := append([][]byte{rowKey(0)}, splits...)
	moved := 0
	mode := "move"
	for pass := range 2 {
		for _, start := range starts {
			if t.Failed() {
				break
			}
			before := c.regions.lookup(table, start)
			var to string
			var err error
			if mode == "move" {
				to, err = c.MoveRegion(ctx, table, start)
				if errors.Is(err, ErrNoOtherServer) && !needMove && moved == 0 {
					t.Logf("one region server: closing and reopening regions in place instead (%v)", err)
					mode = "reopen"
				}
			}
			if mode == "reopen" {
				to, err = c.ReopenRegion(ctx, table, start)
			}
			if err != nil {
				t.Errorf("pass %d, region of %q: %v", pass, start, err)
				break
			}
			from := "?"
			if before != nil {
				from = before.addr
			}
			moved++
			t.Logf("pass %d: %s region of %q from %s to %s", pass, mode, start, from, to)
			progress(fmt.Sprintf("the %s of the region of %q", mode, start))
		}
	}
	close(stop)
	wg.Wait()
	for len(errs) > 0 {
		t.Error(<-errs)
	}
	if t.Failed() {
		t.Logf("client log (tail):\n%s", tail(logBuf.String(), 4000))
		return
	}
	if moved != 2*len(starts) {
		t.Fatalf("%d of %d region moves done", moved, 2*len(starts))
	}
	// The client did run into the closed regions and found them again.
	log := logBuf.String()
	relocations := strings.Count(log, "NotServingRegionException") + strings.Count(log, "RegionMovedException") + strings.Count(log, "is not open")
	if relocations == 0 {
		t.Fatalf("no call met a moved or closed region: the test did not exercise re-location")
	}

	mu.Lock()
	defer mu.Unlock()
	keys := make([][]byte, 0, len(acked))
	var idx []int
	for i := range acked {
		keys = append(keys, rowKey(i))
		idx = append(idx, i)
	}
	got, err := c.GetMany(ctx, table, keys, "f")
	if err != nil {
		t.Fatal(err)
	}
	for k, i := range idx {
		if v, _ := got[k].Value("f", "q"); string(v) != acked[i] {
			t.Fatalf("row %d holds %q, want %q (its last acknowledged write)", i, v, acked[i])
		}
	}
	t.Logf("%d %ss; %d writes acknowledged over %d rows, %d full scans, %d calls re-located", moved, mode, ackedWrites.Load(), len(acked), scans.Load(), relocations)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
