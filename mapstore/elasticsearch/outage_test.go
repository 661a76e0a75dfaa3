package elasticsearch

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/mapstore"
)

var outageTest = flag.Bool("es.outage", false, "run TestOutage, which starts, stops and restarts a second Elasticsearch (1-2 minutes); CI=true runs it too")

// outagePort is the port of TestOutage's own server, so that the shared one stays up.
func outagePort() string {
	if p := os.Getenv("GRIDMAP_ES_OUTAGE_PORT"); p != "" {
		return p
	}
	return "9201"
}

// esScript runs .ci/elasticsearch.sh cmd for the server on port, bounded in time.
func esScript(t testing.TB, port, cmd string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "bash", filepath.Join("..", "..", ".ci", "elasticsearch.sh"), cmd)
	c.Env = append(os.Environ(), "GRIDMAP_ES_PORT="+port)
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("elasticsearch.sh %s (port %s): %v\n%s", cmd, port, err, out)
	}
	t.Logf("elasticsearch.sh %s: %s", cmd, out)
}

// TestOutage: the server is stopped while a write-behind map keeps taking writes, then started
// again. Every write is acknowledged during the outage, the queue holds the dirty entries, and
// once the server is back it drains: every key's last acknowledged value is in the index.
func TestOutage(t *testing.T) {
	if !*outageTest && os.Getenv("CI") != "true" {
		t.Skip("TestOutage starts, stops and restarts an Elasticsearch of its own (1-2 minutes): run it with -es.outage (CI=true runs it)")
	}
	port := outagePort()
	esScript(t, port, "start")
	t.Cleanup(func() { esScript(t, port, "wipe") })
	url := "http://127.0.0.1:" + port
	s, err := New(Config{Addresses: []string{url}, Index: testIndex(t, url), RequestTimeout: 5 * time.Second,
		Settings: []byte(`{"number_of_shards":1,"number_of_replicas":0}`)})
	if err != nil {
		t.Fatal(err)
	}
	m := startMember(t, s, mapstore.Config{WriteDelay: 50 * time.Millisecond, RetryInitial: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond})
	mp, err := gridmap.GetMap[string, []byte](m, "crashes")
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 8*time.Minute)

	// The writer: 1,000 keys rewritten over and over; acked holds each key's last acknowledged value.
	const keys = 1000
	var mu sync.Mutex
	acked := map[string][]byte{}
	var writes atomic.Int64
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for n := 0; ; n++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			k := fmt.Sprintf("key-%04d", n%keys)
			v := fmt.Appendf(nil, `{"key":%q,"write":%d}`, k, n)
			if err := mp.Put(ctx, k, v); err != nil {
				done <- fmt.Errorf("Put %s during the test: %w", k, err)
				return
			}
			mu.Lock()
			acked[k] = v
			mu.Unlock()
			writes.Add(1)
			if n%64 == 0 {
				time.Sleep(time.Millisecond) // leave the flushers some CPU
			}
		}
	}()
	waitFor := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !cond() {
			select {
			case err := <-done:
				t.Fatalf("writer stopped: %v", err)
			default:
			}
			if time.Now().After(deadline) {
				ps := m.Maps().PersistenceStats("crashes")
				t.Fatalf("%s: not within %v (writes %d, stats %+v)", what, d, writes.Load(), ps)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	stats := func() dmap.PersistenceStats { return m.Maps().PersistenceStats("crashes") }
	waitFor("first batches stored", time.Minute, func() bool { return stats().StoreCalls > 5 && writes.Load() > 2*keys })

	esScript(t, port, "stop")
	before, errsBefore := writes.Load(), stats().StoreErrors
	waitFor("writes acknowledged and store calls failing during the outage", 2*time.Minute, func() bool {
		st := stats()
		return writes.Load() > before+5*keys && st.StoreErrors > errsBefore+2 && st.DirtyEntries > 0
	})
	st := stats()
	t.Logf("outage: %d writes acknowledged while stopped, %d dirty entries held, %d failed store calls, last error %v",
		writes.Load()-before, st.DirtyEntries, st.StoreErrors-errsBefore, st.LastError)

	esScript(t, port, "start")
	restarted := writes.Load()
	waitFor("writes after the restart", time.Minute, func() bool { return writes.Load() > restarted+keys })
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := mp.Flush(fctx); err != nil {
		t.Fatalf("Flush after the restart: %v", err)
	}
	if st := stats(); st.DirtyEntries != 0 || st.Rejected != 0 {
		t.Fatalf("after the flush: %+v", st)
	}
	var all [][]byte
	for k := range acked {
		all = append(all, []byte(k))
	}
	got := loadAll(t, ctx, s, all)
	for k, v := range acked {
		if string(got[k]) != string(v) {
			t.Fatalf("%s: the index holds %s, the last acknowledged write was %s", k, got[k], v)
		}
	}
	t.Logf("%d writes in all, every key's last acknowledged value stored", writes.Load())
}
