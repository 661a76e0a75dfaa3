package gridmap

import (
	"bufio"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/internal/storetest"
	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/mapstore/memstore"
)

// storeURLEnv gives a child member the URL of the test's store server (internal/storetest).
const storeURLEnv = "GRIDMAP_STORE_URL"

// childWriteBehind is the configuration of the children's "wb" map: a short delay and quick
// retries, so that a store coming back is used at once.
var childWriteBehind = mapstore.Config{WriteDelay: 50 * time.Millisecond, RetryInitial: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond}

// childStoreMaps configures a child's map "wb" as write-behind over the store server named by
// GRIDMAP_STORE_URL; nil when it is not set.
func childStoreMaps() map[string]dmap.MapConfig {
	url := os.Getenv(storeURLEnv)
	if url == "" {
		return nil
	}
	return map[string]dmap.MapConfig{"wb": {Store: storetest.NewClient(url), Persistence: childWriteBehind}}
}

// persistCommand runs a child's write-behind command and reports whether f was one:
//
//	wput KEY VALUE -> ok | err MSG      (map "wb")
//	wget KEY       -> val VALUE | missing | err MSG
//	close          -> closed | err MSG  (graceful Close; the process exits after answering)
func persistCommand(ctx context.Context, m *Member, f []string, out *bufio.Writer) bool {
	if len(f) == 0 || (f[0] != "wput" && f[0] != "wget" && f[0] != "close") {
		return false
	}
	mp, err := GetMap[string, string](m, "wb")
	if err != nil {
		fmt.Fprintln(out, "err", err)
		return true
	}
	switch {
	case len(f) == 3 && f[0] == "wput":
		answerPut(out, mp.Put(ctx, f[1], f[2]))
	case len(f) == 2 && f[0] == "wget":
		v, err := mp.Get(ctx, f[1])
		answerGet(out, v, err)
	case len(f) == 1 && f[0] == "close":
		if err := m.Close(ctx); err != nil {
			fmt.Fprintln(out, "err", err)
		} else {
			fmt.Fprintln(out, "closed")
		}
		out.Flush()
		os.Exit(0)
	default:
		fmt.Fprintln(out, "err bad write-behind command")
	}
	return true
}

// downStore starts a store server whose store is down.
func downStore(t *testing.T) (*memstore.Store, string) {
	t.Helper()
	st := memstore.New()
	st.Down()
	srv := httptest.NewServer(storetest.NewServer(st))
	t.Cleanup(srv.Close)
	return st, srv.URL
}

// startStoreChildren starts 3 member processes whose map "wb" writes behind to the store at url,
// and waits until their table is settled.
func startStoreChildren(t *testing.T, url string) []*child {
	t.Helper()
	gossip := make([]string, 3)
	for i := range gossip {
		gossip[i] = freeGossipAddr(t)
	}
	children := startChildrenWith(t, gossip, func(int) []string { return []string{storeURLEnv + "=" + url} }, nil)
	waitChildren(t, children, func(s childState) bool { return s.epoch > 0 && s.pending == 0 && s.minReplicas == 2 && s.mem == 3 })
	return children
}

// wput writes n keys (key0..) through the children round-robin, each acknowledged, and records
// them in acked.
func wput(t *testing.T, children []*child, acked map[string]string, n int, round string) {
	t.Helper()
	for i := range n {
		k, v := fmt.Sprint("key", i), fmt.Sprint(round, i)
		if got := children[i%len(children)].do("wput " + k + " " + v); got != "ok" {
			t.Fatalf("wput %s (%s): %s", k, round, got)
		}
		acked[k] = v
	}
}

func pickChild(t *testing.T, children []*child, leader bool) (victim *child, others []*child) {
	t.Helper()
	victim = findChild(t, children, leader)
	for _, c := range children {
		if c != victim {
			others = append(others, c)
		}
	}
	return victim, others
}

// TestWriteBehindStoreDownKillMember: the store is down for the whole write phase; writes are
// acknowledged, a member process is killed with SIGKILL while every write is still dirty, and
// writes go on through the others during the failover. When the store comes back, every
// acknowledged write reaches it with its last value: the killed member's queues lived on in
// its backups.
func TestWriteBehindStoreDownKillMember(t *testing.T) {
	if testing.Short() {
		t.Skip("starts member processes")
	}
	for _, victim := range []string{"follower", "leader"} {
		t.Run(victim, func(t *testing.T) {
			st, url := downStore(t)
			children := startStoreChildren(t, url)
			acked := map[string]string{}
			wput(t, children, acked, 600, "a")
			wput(t, children, acked, 200, "b") // overwrites: the last value must win
			kill, alive := pickChild(t, children, victim == "leader")
			kill.kill()
			wput(t, alive, acked, 300, "c") // during the failover
			waitChildren(t, alive, func(s childState) bool { return s.pending == 0 && s.minReplicas == 2 && s.mem == 2 })
			wput(t, alive, acked, 50, "d")
			if st.Len() != 0 {
				t.Fatalf("the store holds %d keys while down", st.Len())
			}
			if st.Count(memstore.OpStoreAll) == 0 {
				t.Fatal("no member tried to store while the store was down")
			}
			st.Up()
			waitStoreHas(t, st, acked, 30*time.Second)
			for k, v := range acked { // and the map still serves them
				if got := alive[0].do("wget " + k); got != "val "+v {
					t.Fatalf("wget %s = %q, want %q", k, got, v)
				}
				break
			}
		})
	}
}

// TestWriteBehindStoreDownCloseMember: with the store down, a member leaves gracefully (Close
// hands its partitions and their write-behind queues to the others, it cannot flush); when the
// store comes back the remaining members store every acknowledged write.
func TestWriteBehindStoreDownCloseMember(t *testing.T) {
	if testing.Short() {
		t.Skip("starts member processes")
	}
	for _, who := range []string{"follower", "leader"} {
		t.Run(who, func(t *testing.T) {
			st, url := downStore(t)
			children := startStoreChildren(t, url)
			acked := map[string]string{}
			wput(t, children, acked, 600, "a")
			wput(t, children, acked, 200, "b")
			leaving, rest := pickChild(t, children, who == "leader")
			if got := leaving.do("close"); got != "closed" {
				t.Fatalf("close: %s", got)
			}
			leaving.kill() // reaps the exited process
			waitChildren(t, rest, func(s childState) bool { return s.pending == 0 && s.minReplicas == 2 && s.mem == 2 })
			wput(t, rest, acked, 100, "c")
			if st.Len() != 0 {
				t.Fatalf("the store holds %d keys while down", st.Len())
			}
			st.Up()
			waitStoreHas(t, st, acked, 30*time.Second)
		})
	}
}
