package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap/discovery"
	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// testCluster starts members in one process over real loopback sockets.
// Discovery yields the gossip addresses of every member opened so far.
type testCluster struct {
	t       *testing.T
	partCnt int
	backups int
	voters  int
	tune    func(*Config) // if set, adjusts every member's config before Open
	timings Timings       // zero: LocalTimings

	mu    sync.Mutex
	seeds []string
	nodes []*testNode
	seq   int
}

// testNode is a member: its transport, its control Node, and a driver that
// plays the map service's role (reporting every pending copy as synced).
type testNode struct {
	*Node
	srv      *transport.Server
	cli      *transport.Client
	served   chan struct{}
	stopOnce sync.Once
	drvStop  chan struct{}
	drvDone  chan struct{}
	drvOnce  sync.Once
	down     bool // closed, left or cut off (test goroutine only)
}

func newTestCluster(t *testing.T) *testCluster {
	c := &testCluster{t: t, partCnt: 64, backups: 1, voters: 3}
	t.Cleanup(c.closeAll)
	return c
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("CONTROL_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}

func (c *testCluster) discovery() discovery.Discovery {
	return discovery.Func(func(context.Context) ([]string, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return slices.Clone(c.seeds), nil
	})
}

// open starts a member (without waiting for the cluster).
func (c *testCluster) open(expect int) (*testNode, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv, err := transport.NewServer(transport.Config{})
	if err != nil {
		return nil, err
	}
	cli, err := transport.NewClient(transport.Config{DialTimeout: time.Second})
	if err != nil {
		return nil, err
	}
	tn := &testNode{srv: srv, cli: cli, served: make(chan struct{}), drvStop: make(chan struct{}), drvDone: make(chan struct{})}
	go func() { defer close(tn.served); srv.Serve(ln) }()
	c.mu.Lock()
	c.seq++
	id := partition.MemberID(fmt.Sprintf("m%02d-%04x", c.seq, rand.IntN(1<<16)))
	c.mu.Unlock()
	timings := c.timings
	if timings == (Timings{}) {
		timings = LocalTimings()
	}
	cfg := Config{
		ID:             id,
		TransportAddr:  ln.Addr().String(),
		Discovery:      c.discovery(),
		ExpectMembers:  expect,
		MaxVoters:      c.voters,
		PartitionCount: c.partCnt,
		Plan:           partition.PlanConfig{Backups: c.backups},
		Timings:        timings,
		Logger:         testLogger(c.t),
	}
	if c.tune != nil {
		c.tune(&cfg)
	}
	n, err := Open(cfg, Deps{Server: srv, Client: cli})
	if err != nil {
		srv.Close()
		cli.Close()
		<-tn.served
		return nil, err
	}
	tn.Node = n
	c.mu.Lock()
	c.seeds = append(c.seeds, n.GossipAddr())
	c.nodes = append(c.nodes, tn)
	c.mu.Unlock()
	go tn.drive()
	return tn, nil
}

// startN opens n members concurrently, each after a random jitter of up to
// 300ms, with ExpectMembers n, and waits until all are ready.
func (c *testCluster) startN(n int) []*testNode {
	c.t.Helper()
	out := make([]*testNode, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
			out[i], errs[i] = c.open(n)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.t.Fatal(err)
	}
	c.waitReady(out...)
	return out
}

// add opens one more member and waits until it is ready.
func (c *testCluster) add() *testNode {
	c.t.Helper()
	tn, err := c.open(1)
	if err != nil {
		c.t.Fatal(err)
	}
	c.waitReady(tn)
	return tn
}

func (c *testCluster) waitReady(ns ...*testNode) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tn := range ns {
		if err := tn.WaitReady(ctx); err != nil {
			c.t.Fatalf("%s: %v", tn.LocalID(), err)
		}
	}
}

// live returns the members not taken down by the test.
func (c *testCluster) live() []*testNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*testNode
	for _, tn := range c.nodes {
		if !tn.down {
			out = append(out, tn)
		}
	}
	return out
}

func (c *testCluster) leader() *testNode {
	for _, tn := range c.live() {
		if tn.IsLeader() {
			return tn
		}
	}
	return nil
}

func (c *testCluster) follower() *testNode {
	for _, tn := range c.live() {
		if !tn.IsLeader() {
			return tn
		}
	}
	return nil
}

// crash stops a member abruptly.
func (c *testCluster) crash(tn *testNode) {
	c.mu.Lock()
	tn.down = true
	c.mu.Unlock()
	tn.shutdown(false)
}

func (tn *testNode) shutdown(leave bool) error {
	var err error
	tn.stopOnce.Do(func() {
		tn.stopDriving()
		if leave {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			err = tn.Leave(ctx)
			cancel()
		}
		tn.Close()
		tn.srv.Close()
		tn.cli.Close()
		<-tn.served
	})
	return err
}

func (c *testCluster) closeAll() {
	c.mu.Lock()
	nodes := slices.Clone(c.nodes)
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, tn := range nodes {
		wg.Go(func() { tn.shutdown(false) })
	}
	wg.Wait()
}

// stopDriving stops the member's driver: the pending copies of its partitions stay pending
// until the test reports them.
func (tn *testNode) stopDriving() {
	tn.drvOnce.Do(func() { close(tn.drvStop) })
	<-tn.drvDone
}

// drive plays the map service: whenever this member owns a partition with
// pending members it reports them synced at once (concurrently, bounded).
func (tn *testNode) drive() {
	defer close(tn.drvDone)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-tn.drvStop
		cancel()
	}()
	type key struct {
		p partition.ID
		m partition.MemberID
	}
	var mu sync.Mutex
	inflight := map[key]bool{}
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	defer wg.Wait()
	self := tn.LocalID()
	for {
		t, ch := tn.Watch()
		for p := range t.Count() {
			pid := partition.ID(p)
			if t.Owner(pid) != self {
				continue
			}
			for _, pe := range t.Partitions[p].Pending {
				k := key{pid, pe.Member}
				mu.Lock()
				busy := inflight[k]
				inflight[k] = true
				mu.Unlock()
				if busy {
					continue
				}
				wg.Go(func() {
					defer func() { mu.Lock(); delete(inflight, k); mu.Unlock() }()
					select {
					case sem <- struct{}{}:
					case <-ctx.Done():
						return
					}
					defer func() { <-sem }()
					tn.ReportSynced(ctx, k.p, k.m, t.Epoch)
				})
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond): // retry reports that failed
		}
	}
}

// eventually polls cond every 20ms until it returns nil or d passes.
func eventually(t *testing.T, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// converged checks that every live member has the same committed table, that
// it has no pending copies, names exactly the live members, has backups+1
// replicas on distinct members per partition, and is balanced (owned
// partitions per member within one of each other).
func (c *testCluster) converged() error {
	live := c.live()
	if len(live) == 0 {
		return errors.New("no live member")
	}
	want := make([]partition.MemberID, len(live))
	for i, tn := range live {
		want[i] = tn.LocalID()
	}
	slices.Sort(want)
	t := live[0].Table()
	for _, tn := range live[1:] {
		if e := tn.Table().Epoch; e != t.Epoch {
			return fmt.Errorf("epochs differ: %s has %d, %s has %d", live[0].LocalID(), t.Epoch, tn.LocalID(), e)
		}
	}
	if t.Epoch == 0 {
		return errors.New("table not assigned")
	}
	if err := t.Validate(); err != nil {
		return err
	}
	if got := t.Members(); !slices.Equal(got, want) {
		return fmt.Errorf("epoch %d names %v, live members are %v", t.Epoch, got, want)
	}
	owned := map[partition.MemberID]int{}
	replicas := min(c.backups+1, len(live))
	for p, a := range t.Partitions {
		if len(a.Pending) > 0 {
			return fmt.Errorf("epoch %d: partition %d has pending %v", t.Epoch, p, a.Pending)
		}
		if len(a.Replicas) != replicas {
			return fmt.Errorf("epoch %d: partition %d has replicas %v, want %d", t.Epoch, p, a.Replicas, replicas)
		}
		owned[a.Replicas[0]]++
	}
	lo, hi := c.partCnt, 0
	for _, id := range want {
		lo, hi = min(lo, owned[id]), max(hi, owned[id])
	}
	if hi-lo > 1 {
		return fmt.Errorf("epoch %d unbalanced: %v", t.Epoch, owned)
	}
	for _, tn := range live {
		for _, id := range want {
			if _, ok := tn.MemberAddr(id); !ok {
				return fmt.Errorf("%s cannot resolve %s", tn.LocalID(), id)
			}
		}
	}
	return nil
}

// oneLeader checks that exactly one live member leads and every live member
// knows it.
func (c *testCluster) oneLeader() error {
	var leaders []partition.MemberID
	live := c.live()
	for _, tn := range live {
		if tn.IsLeader() {
			leaders = append(leaders, tn.LocalID())
		}
	}
	if len(leaders) != 1 {
		return fmt.Errorf("leaders: %v", leaders)
	}
	for _, tn := range live {
		if _, id := tn.raft.LeaderWithID(); string(id) != string(leaders[0]) {
			return fmt.Errorf("%s thinks the leader is %q, not %s", tn.LocalID(), id, leaders[0])
		}
	}
	return nil
}
