package gridmap

import (
	"fmt"
	"testing"
	"time"

	"github.com/gridmap/gridmap/mapstore/memstore"
)

// waitStoreHas waits (up to d) until the store holds exactly want[k] under every key k of want.
func waitStoreHas(t *testing.T, st *memstore.Store, want map[string]string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		bad, missing := "", 0
		for k, v := range want {
			got, ok := st.Get([]byte(k))
			if !ok || string(got) != v {
				missing++
				if bad == "" {
					bad = fmt.Sprintf("%s = %q (stored %v), want %q", k, got, ok, v)
				}
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("store did not converge within %v: %d of %d keys wrong, e.g. %s", d, missing, len(want), bad)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
