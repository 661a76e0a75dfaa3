package gridmap

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap/dmap"
)

// reportKey is co-keyed with the plain string key of the same report: both live in one
// partition, so a transaction may write both.
type reportKey struct {
	Report string
	Stage  string
}

func (k reportKey) PartitionKey() string { return k.Report }

// txCommand serves the transaction commands of a member child:
//
//	tx KEY VALUE -> ok | err MSG   (one transaction: raw[KEY]=VALUE and todo[{KEY,process}]=VALUE)
//	pair KEY     -> pair RAW TODO  (each value or "-" when absent)
//	lock KEY     -> ok | err MSG   (takes the lock of raw[KEY] without a lease and keeps it)
func txCommand(ctx context.Context, m *Member, f []string, out *bufio.Writer) bool {
	if len(f) == 0 || (f[0] != "tx" && f[0] != "pair" && f[0] != "lock") {
		return false
	}
	raw, err1 := GetMap[string, string](m, "raw")
	todo, err2 := GetMap[reportKey, string](m, "todo")
	if err := errors.Join(err1, err2); err != nil {
		fmt.Fprintln(out, "err", err)
		return true
	}
	switch {
	case f[0] == "tx" && len(f) == 3:
		tx, err := m.Maps().Begin(ctx)
		if err == nil {
			err = dmap.InTx(tx, raw).Put(ctx, f[1], f[2])
		}
		if err == nil {
			err = dmap.InTx(tx, todo).Put(ctx, reportKey{f[1], "process"}, f[2])
		}
		if err == nil {
			err = tx.Commit(ctx)
		}
		if err != nil {
			fmt.Fprintln(out, "err", strings.ReplaceAll(err.Error(), "\n", " "))
		} else {
			fmt.Fprintln(out, "ok")
		}
	case f[0] == "pair" && len(f) == 2:
		a, errA := raw.Get(ctx, f[1])
		b, errB := todo.Get(ctx, reportKey{f[1], "process"})
		show := func(v string, err error) string {
			if errors.Is(err, dmap.ErrNotFound) {
				return "-"
			}
			if err != nil {
				return "ERR"
			}
			return v
		}
		fmt.Fprintln(out, "pair", show(a, errA), show(b, errB))
	case f[0] == "lock" && len(f) == 2:
		if _, err := raw.Lock(ctx, f[1], 0); err != nil {
			fmt.Fprintln(out, "err", err)
		} else {
			fmt.Fprintln(out, "ok")
		}
	default:
		fmt.Fprintln(out, "err usage")
	}
	return true
}

// A lock held by a member process that is killed with SIGKILL is released: another member
// gets it once the cluster has declared the holder dead.
func TestLockOfKilledMemberIsReleased(t *testing.T) {
	if testing.Short() {
		t.Skip("starts member processes")
	}
	children := startChildren(t, 3)
	waitChildren(t, children, func(s childState) bool { return s.epoch > 0 && s.pending == 0 && s.minReplicas == 2 && s.mem == 3 })
	holder, waiter := children[0], children[1]
	if got := holder.do("lock resource"); got != "ok" {
		t.Fatalf("lock: %s", got)
	}
	holder.kill()
	start := time.Now()
	if got := waiter.do("lock resource"); got != "ok" {
		t.Fatalf("lock after the holder was killed: %s", got)
	}
	t.Logf("lock of the killed member released after %v", time.Since(start).Round(time.Millisecond))
}

// A member process killed with SIGKILL in the middle of commits leaves, for every transaction,
// both writes or neither on the new owners; every acknowledged transaction is there whole.
func TestKillDuringTransactions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts member processes")
	}
	children := startChildren(t, 3)
	waitChildren(t, children, func(s childState) bool { return s.epoch > 0 && s.pending == 0 && s.minReplicas == 2 && s.mem == 3 })
	victim := children[2]
	var mu sync.Mutex
	acked := map[string]string{}
	attempted := map[string]bool{}
	commits := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w, c := range children {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key, val := fmt.Sprintf("report-%d", (i*3+w)%90), fmt.Sprintf("w%d-%d", w, i)
				mu.Lock()
				attempted[key] = true
				mu.Unlock()
				got, ok := c.tryDo(fmt.Sprintf("tx %s %s", key, val))
				if !ok {
					return // this member was killed
				}
				if got == "ok" {
					mu.Lock()
					acked[key] = val
					commits++
					mu.Unlock()
				}
			}
		})
	}
	commitsSoFar := func() int { mu.Lock(); defer mu.Unlock(); return commits }
	waitFor(t, func() bool { return commitsSoFar() >= 150 })
	victim.kill()
	alive := children[:2]
	// Commits go on through the survivors across the failover.
	after := commitsSoFar()
	waitFor(t, func() bool { return commitsSoFar() >= after+150 })
	close(stop)
	wg.Wait()
	waitChildren(t, alive, func(s childState) bool { return s.pending == 0 && s.minReplicas == 2 && s.mem == 2 })

	mu.Lock()
	defer mu.Unlock()
	for key := range attempted {
		f := strings.Fields(alive[0].do("pair " + key))
		if len(f) != 3 || f[1] == "ERR" || f[1] != f[2] {
			t.Fatalf("%s: the two writes of a transaction disagree: %v", key, f)
		}
	}
	for key, val := range acked {
		// A later transaction on the key may have committed without its answer arriving; the
		// pair must still agree and exist.
		f := strings.Fields(alive[1].do("pair " + key))
		if f[1] == "-" {
			t.Fatalf("%s: acknowledged transaction (%s) lost", key, val)
		}
	}
	t.Logf("%d keys, %d acknowledged transactions", len(attempted), commits)
}

// tryDo sends a command and reports false when the child is gone.
func (c *child) tryDo(cmd string) (string, bool) {
	c.mu.Lock()
	dead := c.dead
	c.mu.Unlock()
	if dead {
		return "", false
	}
	if _, err := fmt.Fprintln(c.in, cmd); err != nil {
		return "", false
	}
	if !c.out.Scan() {
		return "", false
	}
	return c.out.Text(), true
}

// waitFor polls cond until it holds, failing the test after a minute.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
