package hbase

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/mapstore"
)

// ctlEnv names the script that stops and starts the test server (.ci/hbase.sh); CI sets it.
const ctlEnv = "GRIDMAP_HBASE_CTL"

func hbaseCtl(t *testing.T, cmd string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, os.Getenv(ctlEnv), cmd).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", os.Getenv(ctlEnv), cmd, err, out)
	}
	t.Logf("%s %s: %s", os.Getenv(ctlEnv), cmd, out)
}

// TestWriteBehindServerRestart stops HBase while a write-behind map keeps taking writes
// (overwrites, new keys, deletes), then starts it again: every acknowledged write must end up
// in HBase with its last value, and deleted keys must be gone.
func TestWriteBehindServerRestart(t *testing.T) {
	c := testClient(t)
	if os.Getenv(ctlEnv) == "" {
		msg := ctlEnv + " is not set: cannot stop and start the server (set it to .ci/hbase.sh)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	st := testStore(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	member, err := gridmap.Start(ctx, gridmap.Config{Maps: map[string]dmap.MapConfig{"raw": {
		Store: st,
		Persistence: mapstore.Config{
			WriteDelay:   50 * time.Millisecond,
			RetryInitial: 100 * time.Millisecond,
			RetryMax:     time.Second,
		},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close(context.Background())
	m, err := gridmap.GetMap[string, []byte](member, "raw")
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	day := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	want := map[string]string{} // key -> last value; "" means deleted
	var keys []string
	put := func(k, v string) {
		t.Helper()
		if err := m.Put(ctx, k, []byte(v)); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
		want[k] = v
	}
	for i := range 200 {
		k := crashID(r, day)
		keys = append(keys, k)
		put(k, fmt.Sprintf("before %d", i))
	}
	waitStored(t, ctx, st, want, time.Minute)

	hbaseCtl(t, "stop")
	stopped := true
	defer func() {
		if stopped {
			hbaseCtl(t, "start")
		}
	}()
	// Writes while HBase is down are acknowledged by the map and stay dirty.
	for round := range 3 {
		for i, k := range keys {
			if i%3 == round {
				put(k, fmt.Sprintf("down round %d key %d", round, i))
			}
		}
	}
	for i := range 100 {
		k := crashID(r, day)
		keys = append(keys, k)
		put(k, fmt.Sprintf("new while down %d", i))
	}
	for _, k := range keys[:20] {
		if _, err := m.Delete(ctx, k); err != nil {
			t.Fatalf("delete %s: %v", k, err)
		}
		want[k] = ""
	}
	hbaseCtl(t, "start")
	stopped = false
	waitStored(t, ctx, st, want, 3*time.Minute)
}

// waitStored polls HBase until it holds want (a value per key, "" for absent) or d passes.
func waitStored(t *testing.T, ctx context.Context, st *Store, want map[string]string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	keys := make([][]byte, 0, len(want))
	for k := range want {
		keys = append(keys, []byte(k))
	}
	for {
		got := map[string]string{}
		err := st.LoadAll(ctx, keys, func(k, v []byte) error {
			got[string(k)] = string(v)
			return nil
		})
		bad := ""
		if err != nil {
			bad = err.Error()
		} else {
			for k, v := range want {
				if got[k] != v {
					bad = fmt.Sprintf("%s holds %q, want %q", k, got[k], v)
					break
				}
			}
		}
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("HBase did not converge within %v: %s", d, bad)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
