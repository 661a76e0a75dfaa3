package gridmap

import (
	"bufio"
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gridmap/gridmap/dmap"
)

// dataDirEnv gives a child member its data folder (Config.DataDir): its map "crash" then
// persists there.
const dataDirEnv = "GRIDMAP_DATADIR"

// partialRestoreEnv starts a child with Config.RestorePolicy RestorePartialMostRecent and a
// RestoreTimeout of a second.
const partialRestoreEnv = "GRIDMAP_PARTIAL_RESTORE"

// restartCommand runs a child's command on map "crash" for the restart tests and reports
// whether f was one:
//
//	mput K V K V ... -> ok | err N MSG   (puts in order; N were acknowledged)
//	mdel K K ...     -> ok | err N MSG   (deletes in order; N were acknowledged)
//	dump             -> dump N, then N lines "K V": every entry of the map
//	flush            -> ok | err MSG     (Flush: the data folders are synced)
func restartCommand(ctx context.Context, mp *dmap.Map[string, string], f []string, out *bufio.Writer) bool {
	if len(f) == 0 {
		return false
	}
	switch {
	case f[0] == "mput" && len(f)%2 == 1:
		for i := 1; i < len(f); i += 2 {
			if err := mp.Put(ctx, f[i], f[i+1]); err != nil {
				fmt.Fprintln(out, "err", (i-1)/2, err)
				return true
			}
		}
		fmt.Fprintln(out, "ok")
	case f[0] == "mdel":
		for i, k := range f[1:] {
			if _, err := mp.Delete(ctx, k); err != nil {
				fmt.Fprintln(out, "err", i, err)
				return true
			}
		}
		fmt.Fprintln(out, "ok")
	case f[0] == "dump" && len(f) == 1:
		var lines []string
		for e, err := range mp.Entries(ctx) {
			if err != nil {
				fmt.Fprintln(out, "err", err)
				return true
			}
			lines = append(lines, e.Key+" "+e.Value)
		}
		fmt.Fprintln(out, "dump", len(lines))
		for _, l := range lines {
			fmt.Fprintln(out, l)
		}
	case f[0] == "flush" && len(f) == 1:
		answerPut(out, mp.Flush(ctx))
	default:
		return false
	}
	return true
}

// restartRun drives a cluster of member processes with data folders and keeps the model of
// acknowledged writes: every key's last acknowledged value, deleted keys absent.
type restartRun struct {
	t     *testing.T
	dirs  []string
	model map[string]string
	// partial starts the members with partialRestoreEnv.
	partial bool
}

// start starts one member process per folder index, as a new cluster (seeds nil: they find
// each other, ExpectMembers = len(idx)) or joining the members at seeds.
func (r *restartRun) start(idx []int, seeds []string) []*child {
	r.t.Helper()
	gossip := make([]string, len(idx))
	for i := range gossip {
		gossip[i] = freeGossipAddr(r.t)
	}
	return startChildrenWith(r.t, gossip, func(i int) []string {
		env := []string{dataDirEnv + "=" + r.dirs[idx[i]]}
		if r.partial {
			env = append(env, partialRestoreEnv+"=1")
		}
		if seeds != nil {
			// Later variables win (os/exec keeps the last of duplicates): join the cluster.
			env = append(env, "GRIDMAP_SEEDS="+strings.Join(seeds, ","), "GRIDMAP_EXPECT=1")
		}
		return env
	}, nil)
}

// put writes keys[i] = value(i) through the children in turn, 100 keys a command.
func (r *restartRun) put(children []*child, keys []string, value func(i int) string) {
	r.t.Helper()
	for at, n := 0, 0; at < len(keys); n++ {
		end := min(at+100, len(keys))
		cmd := []string{"mput"}
		for i := at; i < end; i++ {
			cmd = append(cmd, keys[i], value(i))
		}
		if got := children[n%len(children)].do(strings.Join(cmd, " ")); got != "ok" {
			r.t.Fatalf("mput: %s", got)
		}
		for i := at; i < end; i++ {
			r.model[keys[i]] = value(i)
		}
		at = end
	}
}

// del deletes keys through the children in turn.
func (r *restartRun) del(children []*child, keys []string) {
	r.t.Helper()
	for at, n := 0, 0; at < len(keys); n++ {
		end := min(at+100, len(keys))
		if got := children[n%len(children)].do("mdel " + strings.Join(keys[at:end], " ")); got != "ok" {
			r.t.Fatalf("mdel: %s", got)
		}
		for _, k := range keys[at:end] {
			delete(r.model, k)
		}
		at = end
	}
}

// verify compares the whole map, read through each child, with the model.
func (r *restartRun) verify(children []*child, when string) {
	r.t.Helper()
	for _, c := range children {
		head := c.do("dump")
		f := strings.Fields(head)
		if len(f) != 2 || f[0] != "dump" {
			r.t.Fatalf("%s: dump via %s: %s", when, c.id, head)
		}
		n, _ := strconv.Atoi(f[1])
		got := make(map[string]string, n)
		for range n {
			k, v, _ := strings.Cut(c.read(), " ")
			got[k] = v
		}
		if d := diff(got, r.model); d != "" {
			r.t.Fatalf("%s: via %s (%d entries, model %d): %s", when, c.id, len(got), len(r.model), d)
		}
	}
}

// stop stops the whole cluster: every member closed in turn (graceful), or, with kill, the
// map flushed (the data folders synced) and every member SIGKILLed.
func (r *restartRun) stop(children []*child, kill bool) {
	r.t.Helper()
	if kill {
		if got := children[0].do("flush"); got != "ok" {
			r.t.Fatalf("flush: %s", got)
		}
		for _, c := range children {
			c.kill()
		}
		return
	}
	for _, c := range children {
		if got := c.do("close"); got != "closed" {
			r.t.Fatalf("close %s: %s", c.id, got)
		}
		c.kill() // reaps the exited process
	}
}

func settledWith(n int) func(childState) bool {
	return func(s childState) bool { return s.epoch > 0 && s.pending == 0 && s.minReplicas == 2 && s.mem == n }
}

// TestFullRestart (issue 17): 10,000 keys are written, overwritten and deleted on a cluster of
// member processes with data folders while a member joins, one leaves and one is SIGKILLed and
// replaced on its folder; the whole cluster is stopped (every member closed in turn, or every
// member SIGKILLed after a flush) and started again on the folders with 3, then 2, then 4
// members (the 4th on the folder of the member that left): each time the map holds exactly
// the acknowledged writes. The start on 2 folders after the kill is a partial restore (the
// third folder, absent, is remembered); after the graceful stop it is not.
func TestFullRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts member processes")
	}
	for _, mode := range []string{"graceful", "killed"} {
		t.Run(mode, func(t *testing.T) { fullRestart(t, mode == "killed") })
	}
}

func fullRestart(t *testing.T, kill bool) {
	root := t.TempDir()
	r := &restartRun{t: t, model: map[string]string{}}
	for _, name := range []string{"a", "b", "c", "d"} {
		r.dirs = append(r.dirs, filepath.Join(root, name))
	}
	keys := make([]string, 10000)
	for i := range keys {
		keys[i] = fmt.Sprint("key", i)
	}
	every := func(from, to, step int) []string {
		var out []string
		for i := from; i < to; i += step {
			out = append(out, keys[i])
		}
		return out
	}
	round := func(name string) func(int) string { return func(i int) string { return fmt.Sprint(name, i) } }

	// Life 1: members a, b, c.
	abc := r.start([]int{0, 1, 2}, nil)
	waitChildren(t, abc, settledWith(3))
	r.put(abc, keys[:4000], round("a"))
	// d joins while keys are written, overwritten and deleted.
	d := r.start([]int{3}, []string{abc[0].gossip, abc[1].gossip, abc[2].gossip})[0]
	r.put(abc, keys[4000:7000], round("b"))
	r.del(abc, every(0, 7000, 7))
	r.put(abc, every(0, 4000, 5), round("c"))
	all := append(abc, d)
	waitChildren(t, all, settledWith(4))
	// a leaves gracefully.
	if got := abc[0].do("close"); got != "closed" {
		t.Fatalf("close: %s", got)
	}
	abc[0].kill()
	bcd := []*child{abc[1], abc[2], d}
	r.put(bcd, keys[7000:8500], round("d"))
	r.del(bcd, every(1, 8500, 11))
	// b is SIGKILLed and replaced by a new process on its folder, while writes go on.
	bcd[0].kill()
	cd := bcd[1:]
	r.put(cd, keys[8500:10000], round("e"))
	b2 := r.start([]int{1}, []string{cd[0].gossip, cd[1].gossip})[0]
	r.put(cd, every(2, 10000, 3), round("f"))
	r.del(cd, every(3, 10000, 13))
	live := []*child{b2, cd[0], cd[1]}
	waitChildren(t, live, settledWith(3))
	r.verify(live[:1], "before the stop")
	r.stop(live, kill)

	// Life 2: 3 members on the folders b, c, d.
	live = r.start([]int{1, 2, 3}, nil)
	r.verify(live, "restarted with 3 members")
	r.put(live, every(4, 10000, 17), round("g"))
	r.del(live, every(5, 10000, 19))
	waitChildren(t, live, settledWith(3))
	r.stop(live, kill)

	// Life 3: 2 members on the folders c and d. After a graceful stop of b, c and d in turn,
	// c remembers only c and d, d only itself: they hold the newest copies and the restore
	// sees it. Killed at once, they remember b too, which as far as they can tell may hold
	// newer copies: the start says it will not come back (partial restore). With one backup
	// and every member killed at once, c and d hold in-sync copies of every partition.
	r.partial = kill
	live = r.start([]int{2, 3}, nil)
	r.partial = false
	r.verify(live, "restarted with 2 members")
	waitChildren(t, live, settledWith(2))
	r.stop(live, kill)

	// Life 4: 4 members, the 4th on the folder of the member that left in life 1.
	live = r.start([]int{0, 1, 2, 3}, nil)
	r.verify(live, "restarted with 4 members")
}
