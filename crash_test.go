package gridmap

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gridmap/gridmap/dmap"
)

// The crash tests run members as separate processes (this test binary re-executed in member
// mode) so that a member can be killed with SIGKILL. A child reads one command per line on
// stdin and answers one line on stdout:
//
//	put KEY VALUE -> ok | err MSG
//	get KEY       -> val VALUE | missing | err MSG
//	owns KEY      -> true | false (this member owns KEY's partition in its table)
//	state         -> state LEADER EPOCH MIN_REPLICAS PENDING HOLDERS
//
// and, with a store URL, the write-behind commands of persistCommand.
const childEnv = "GRIDMAP_TEST_CHILD"

// maxChildLine bounds one line a child writes (one answer).
const maxChildLine = 256 << 20

func TestMain(m *testing.M) {
	if os.Getenv(faultMemberEnv) != "" {
		os.Exit(runFaultMember()) // faults_harness_test.go
	}
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	if os.Getenv(memLimitChildEnv) != "" {
		os.Exit(runMemLimitChild()) // memlimit_process_test.go
	}
	if os.Getenv(pagingChildEnv) != "" {
		os.Exit(runPagingChild()) // paging_process_test.go
	}
	os.Exit(m.Run())
}

func runChild() int {
	cfg := testConfig(os.Getenv("GRIDMAP_GOSSIP"), strings.Split(os.Getenv("GRIDMAP_SEEDS"), ","), 0)
	cfg.ExpectMembers, _ = strconv.Atoi(os.Getenv("GRIDMAP_EXPECT"))
	if bind := os.Getenv("GRIDMAP_BIND"); bind != "" {
		cfg.BindAddr = bind
	}
	cfg.AsyncBackups = os.Getenv("GRIDMAP_ASYNC") != ""
	cfg.Console.Addr = os.Getenv("GRIDMAP_CONSOLE") // console_kill_test.go
	cfg.OperationTimeout = 30 * time.Second
	if d, err := time.ParseDuration(os.Getenv("GRIDMAP_OPTIMEOUT")); err == nil {
		cfg.OperationTimeout = d
	}
	cfg.Maps = childStoreMaps()         // write-behind map "wb" when GRIDMAP_STORE_URL is set (persist_crash_test.go)
	cfg.DataDir = os.Getenv(dataDirEnv) // restart_crash_test.go
	if os.Getenv(partialRestoreEnv) != "" {
		cfg.RestorePolicy, cfg.RestoreTimeout = RestorePartialMostRecent, time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	m, err := Start(ctx, cfg)
	cancel()
	if err != nil {
		fmt.Println("err", err)
		return 1
	}
	mp, err := GetMap[string, string](m, "crash")
	if err != nil {
		fmt.Println("err", err)
		return 1
	}
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(out, "ready", m.ID())
	out.Flush()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		ctx, cancel := context.WithTimeout(context.Background(), cfg.OperationTimeout)
		switch {
		case len(f) == 3 && f[0] == "put":
			answerPut(out, mp.Put(ctx, f[1], f[2]))
		case len(f) == 2 && f[0] == "get":
			v, err := mp.Get(ctx, f[1])
			answerGet(out, v, err)
		case len(f) == 2 && f[0] == "owns":
			p, _ := mp.Partition(f[1])
			fmt.Fprintln(out, m.node.Table().Owner(p) == m.id)
		case len(f) == 1 && f[0] == "state":
			t := m.node.Table()
			minReplicas, pending := len(t.Members())+1, 0
			for _, a := range t.Partitions {
				minReplicas = min(minReplicas, len(a.Replicas))
				pending += len(a.Pending)
			}
			leader := 0
			if m.node.IsLeader() {
				leader = 1
			}
			fmt.Fprintln(out, "state", leader, t.Epoch, minReplicas, pending, len(t.Members()))
		case txCommand(ctx, m, f, out): // tx, pair (txcrash_test.go)
		case persistCommand(ctx, m, f, out): // wput, wget, close (persist_crash_test.go)
		case restartCommand(ctx, mp, f, out): // mput, mdel, dump, flush (restart_crash_test.go)
		case topicCommand(ctx, m, f, out): // tsub, tpub, tread (topic_crash_test.go)
		default:
			fmt.Fprintln(out, "err unknown command")
		}
		cancel()
		out.Flush()
	}
	m.kill()
	return 0
}

// answerPut writes a child's answer to a put: ok | err MSG.
func answerPut(out *bufio.Writer, err error) {
	if err != nil {
		fmt.Fprintln(out, "err", err)
		return
	}
	fmt.Fprintln(out, "ok")
}

// answerGet writes a child's answer to a get: val VALUE | missing | err MSG.
func answerGet(out *bufio.Writer, v string, err error) {
	switch {
	case errors.Is(err, dmap.ErrNotFound):
		fmt.Fprintln(out, "missing")
	case err != nil:
		fmt.Fprintln(out, "err", err)
	default:
		fmt.Fprintln(out, "val", v)
	}
}

// child is a member process driven by the test.
type child struct {
	t      *testing.T
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Scanner // lines of up to maxChildLine bytes
	id     string
	gossip string // its gossip address, a seed for members joining it
	mu     sync.Mutex
	dead   bool
}

func startChildren(t *testing.T, n int) []*child {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = freeGossipAddr(t)
	}
	return startChildrenWith(t, addrs, func(int) []string { return nil }, nil)
}

// startChildrenWith starts one member process per gossip address. env adds variables for child
// i; wrap, if not nil, returns the command line prefix that runs child i (for example inside a
// network namespace).
func startChildrenWith(t *testing.T, gossip []string, env func(i int) []string, wrap func(i int) []string) []*child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	n := len(gossip)
	children := make([]*child, n)
	for i := range n {
		args := []string{exe, "-test.run=^$"}
		if wrap != nil {
			args = append(wrap(i), args...)
		}
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), childEnv+"=1", "GRIDMAP_GOSSIP="+gossip[i],
			"GRIDMAP_SEEDS="+strings.Join(gossip, ","), "GRIDMAP_EXPECT="+strconv.Itoa(n))
		cmd.Env = append(cmd.Env, env(i)...)
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		// A line is one answer, and a queue drain's answer holds every item drained: far more
		// than the scanner's default 64 KiB (a longer line would end the scan, and with it
		// every answer of this child).
		sc.Buffer(make([]byte, 64<<10), maxChildLine)
		c := &child{t: t, cmd: cmd, in: in, out: sc, gossip: gossip[i]}
		children[i] = c
		t.Cleanup(c.kill)
	}
	for i, c := range children {
		line := c.read()
		f := strings.Fields(line)
		if len(f) != 2 || f[0] != "ready" {
			t.Fatalf("child %d: %q", i, line)
		}
		c.id = f[1]
	}
	return children
}

func (c *child) read() string {
	if !c.out.Scan() {
		c.t.Fatalf("child %s: no answer: %v", c.id, c.out.Err())
	}
	return c.out.Text()
}

func (c *child) do(cmd string) string {
	c.t.Helper()
	if _, err := fmt.Fprintln(c.in, cmd); err != nil {
		c.t.Fatalf("child %s: %v", c.id, err)
	}
	return c.read()
}

func (c *child) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return
	}
	c.dead = true
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.cmd.Wait()
}

type childState struct {
	leader                           bool
	epoch, minReplicas, pending, mem int
}

func (c *child) state() childState {
	f := strings.Fields(c.do("state"))
	if len(f) != 6 || f[0] != "state" {
		c.t.Fatalf("child %s: bad state %v", c.id, f)
	}
	n := make([]int, 5)
	for i := range n {
		n[i], _ = strconv.Atoi(f[i+1])
	}
	return childState{leader: n[0] == 1, epoch: n[1], minReplicas: n[2], pending: n[3], mem: n[4]}
}

func TestKillMemberProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts member processes")
	}
	for _, victim := range []string{"follower", "leader"} {
		t.Run(victim, func(t *testing.T) {
			children := startChildren(t, 3)
			waitChildren(t, children, func(s childState) bool { return s.epoch > 0 && s.pending == 0 && s.minReplicas == 2 && s.mem == 3 })
			acked := map[string]string{}
			for i := range 600 {
				k, v := fmt.Sprint("key", i), crashValue("v", i)
				if got := children[i%3].do("put " + k + " " + v); got != "ok" {
					t.Fatalf("put %s: %s", k, got)
				}
				acked[k] = v
			}
			kill := findChild(t, children, victim == "leader")
			kill.kill()
			var alive []*child
			for _, c := range children {
				if c != kill {
					alive = append(alive, c)
				}
			}
			// Writes go on during the failover; every one of them must be acknowledged.
			for i := range 200 {
				k, v := fmt.Sprint("key", i), crashValue("after", i)
				if got := alive[i%2].do("put " + k + " " + v); got != "ok" {
					t.Fatalf("put %s after kill: %s", k, got)
				}
				acked[k] = v
			}
			waitChildren(t, alive, func(s childState) bool { return s.pending == 0 && s.minReplicas == 2 && s.mem == 2 })
			for k, v := range acked {
				for _, c := range alive {
					if got := c.do("get " + k); got != "val "+v {
						t.Fatalf("get %s via %s = %q, want %q", k, c.id, got, v)
					}
				}
			}
		})
	}
}

// crashValue is the value of key i written in a phase of TestKillMemberProcess: every fifth is
// 20 KiB, large enough for a backup to take it from its own member's copy when that member wrote
// it (dmap's stash), so that the promoted backups' copies of those are checked too.
func crashValue(phase string, i int) string {
	v := fmt.Sprint(phase, i)
	if i%5 == 0 {
		v = strings.Repeat(v+".", 20<<10/(len(v)+1))
	}
	return v
}

// findChild returns a child that is the raft leader (leader true) or is not, waiting for a
// leader to be elected if there is none at the moment.
func findChild(t *testing.T, children []*child, leader bool) *child {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		for _, c := range children {
			if c.state().leader == leader {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no child with leader=%v after 60 s", leader)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitChildren(t *testing.T, children []*child, ok func(childState) bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		all := true
		for _, c := range children {
			if !ok(c.state()) {
				all = false
			}
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("children did not reach the expected state: %+v", children[0].state())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
