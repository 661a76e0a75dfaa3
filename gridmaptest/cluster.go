package gridmaptest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/internal/freeport"
	"github.com/gridmap/gridmap/internal/memberhook"
	"github.com/gridmap/gridmap/partition"
)

// Cluster is a cluster of members running in the test's process. Its methods are meant for the
// test's goroutine (they call t.Fatal); the members themselves are safe for concurrent use.
type Cluster struct {
	t    testing.TB
	opts options
	nets *memberhook.Networks // nil: sockets

	mu      sync.Mutex
	members []*gridmap.Member // by index, in start order; stopped ones stay
	stopped []bool
}

// pollInterval is how often WaitSafe re-checks the members' views.
const pollInterval = 20 * time.Millisecond

// NewCluster starts n members in the test's process and returns once the cluster is ready: every
// member sees all of them and the same partition table, every partition has an owner and its
// backups (gridmap.Cluster.Safe holds on every member). The members start together (each with
// ExpectMembers n), use gridmap.LocalTimings and DefaultPartitionCount partitions unless
// options say otherwise, and are killed by t.Cleanup: a test that wants a graceful leave, or
// its write-behind stored, calls Leave or the maps' Flush itself. NewCluster fails the test if
// the cluster is not ready within the timeout (WithTimeout).
//
// The members of a cluster talk through in-memory networks of their own, which open no port:
// the member-to-member protocol, raft and gossip are the real ones, only their bytes go
// through socket pairs and in-process queues instead of TCP and UDP (so clusters of parallel
// tests never compete for ports). A killed member's addresses refuse connections and drop
// gossip, as a stopped process's ports do. WithSockets uses loopback instead.
func NewCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("gridmaptest: a cluster needs at least one member, got %d", n)
	}
	c := &Cluster{t: t, opts: newOptions(opts)}
	if !c.opts.sockets {
		c.nets = memberhook.NewNetworks()
	}
	t.Cleanup(c.killAll)

	gossip := make([]string, n)
	for i := range gossip {
		gossip[i] = c.gossipAddr(i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.timeout)
	defer cancel()
	members := make([]*gridmap.Member, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { members[i], errs[i] = c.start(ctx, c.opts.config(i, gossip[i], gossip, n)) })
	}
	wg.Wait()
	c.mu.Lock()
	for _, m := range members {
		if m != nil {
			c.members = append(c.members, m)
			c.stopped = append(c.stopped, false)
		}
	}
	c.mu.Unlock()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("gridmaptest: start member %d: %v", i, err)
		}
	}
	c.WaitSafe()
	return c
}

// gossipAddr returns the gossip address of member i: a free loopback port with sockets, an
// address of its own in the cluster's gossip network otherwise.
func (c *Cluster) gossipAddr(i int) string {
	if c.nets != nil {
		return "127.0.0.1:" + strconv.Itoa(7000+i)
	}
	addr, err := freeport.Addr("127.0.0.1")
	if err != nil {
		c.t.Fatalf("gridmaptest: %v", err)
	}
	return addr
}

// start starts a member with cfg on the cluster's networks.
func (c *Cluster) start(ctx context.Context, cfg gridmap.Config) (*gridmap.Member, error) {
	if c.nets == nil {
		return gridmap.Start(ctx, cfg)
	}
	m, err := memberhook.Start(ctx, cfg, c.nets)
	if err != nil {
		return nil, err
	}
	return m.(*gridmap.Member), nil
}

// Member returns member i, in start order (members added by Join come after the first n). A
// member stopped by Kill or Leave is still returned; its operations fail with
// gridmap.ErrClosed.
func (c *Cluster) Member(i int) *gridmap.Member {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i >= len(c.members) {
		c.t.Fatalf("gridmaptest: no member %d (the cluster has had %d)", i, len(c.members))
	}
	return c.members[i]
}

// Members returns the members that were neither killed nor left, in start order.
func (c *Cluster) Members() []*gridmap.Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	var live []*gridmap.Member
	for i, m := range c.members {
		if !c.stopped[i] {
			live = append(live, m)
		}
	}
	return live
}

// Kill stops member i at once, as kill -9 would: it hands nothing off and tells nobody. The
// others notice its death within a few seconds (LocalTimings) and promote its partitions'
// backups; acknowledged writes are not lost as long as each partition had a backup elsewhere.
// Call WaitSafe to wait for that.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	m := c.Member(i)
	c.mu.Lock()
	c.stopped[i] = true
	c.mu.Unlock()
	memberhook.Kill(m)
}

// Leave stops member i gracefully (gridmap.Member.Close): its partitions are handed off first.
// It fails the test if the hand-off does not complete within the timeout.
func (c *Cluster) Leave(i int) {
	c.t.Helper()
	m := c.Member(i)
	c.mu.Lock()
	c.stopped[i] = true
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.timeout)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		c.t.Fatalf("gridmaptest: member %d left with an error: %v", i, err)
	}
}

// Join starts one more member, which joins the cluster through the live members, waits until
// the cluster is safe again (its share of partitions moved to it), and returns its index.
func (c *Cluster) Join() int {
	c.t.Helper()
	var seeds []string
	for _, m := range c.Members() {
		seeds = append(seeds, m.GossipAddr())
	}
	c.mu.Lock()
	i := len(c.members)
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.timeout)
	defer cancel()
	m, err := c.start(ctx, c.opts.config(i, c.gossipAddr(i), seeds, 1))
	if err != nil {
		c.t.Fatalf("gridmaptest: member %d could not join: %v", i, err)
	}
	c.mu.Lock()
	c.members = append(c.members, m)
	c.stopped = append(c.stopped, false)
	c.mu.Unlock()
	c.WaitSafe()
	return i
}

// Partition splits the network: each group of member indexes is cut off from every member
// outside it (members named in no group stay connected to each other), as a network partition
// would: messages and gossip between them are lost and their connections break, while each
// side keeps running. The side with a majority of the raft voters reassigns the partitions of
// the members it lost; the other side's owners stop serving once their lease ends (see
// gridmap.Timings.LeaseDuration). Heal ends it. Partition needs the in-memory networks (it
// fails the test with WithSockets) and replaces any earlier partition.
func (c *Cluster) Partition(groups ...[]int) {
	c.t.Helper()
	if c.nets == nil {
		c.t.Fatal("gridmaptest: Partition needs the in-memory networks (the cluster uses WithSockets)")
	}
	group := map[int]int{}
	for g, members := range groups {
		for _, i := range members {
			c.Member(i) // fails the test for an unknown index
			group[i] = g + 1
		}
	}
	c.Heal()
	type addrs struct{ transport, gossip string }
	c.mu.Lock()
	all := make([]addrs, len(c.members))
	for i, m := range c.members {
		if c.stopped[i] {
			continue
		}
		for _, mi := range m.Cluster().Members() {
			if mi.Local {
				all[i] = addrs{mi.Addr, mi.GossipAddr}
			}
		}
	}
	c.mu.Unlock()
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			if group[i] != group[j] {
				c.nets.Transport.Cut(all[i].transport, all[j].transport)
				c.nets.Gossip.Cut(all[i].gossip, all[j].gossip)
			}
		}
	}
}

// Heal ends a Partition: every member can reach every other again, and the cluster merges
// back (WaitSafe waits for it).
func (c *Cluster) Heal() {
	if c.nets != nil {
		c.nets.Transport.MendAll()
		c.nets.Gossip.MendAll()
	}
}

// WaitSafe waits until the cluster is safe again: every live member holds the same partition
// table and finds it safe (gridmap.Cluster.Safe: every partition owned and backed up by live
// members, nothing moving), and no live member still counts a killed or departed member as
// alive or names it in the table. It fails the test after the timeout, saying what was missing.
func (c *Cluster) WaitSafe() {
	c.t.Helper()
	deadline := time.Now().Add(c.opts.timeout)
	for {
		problem := c.unsafe()
		if problem == "" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("gridmaptest: cluster not safe after %v: %s", c.opts.timeout, problem)
		}
		time.Sleep(pollInterval)
	}
}

// unsafe returns why the cluster is not safe yet, or "".
func (c *Cluster) unsafe() string {
	c.mu.Lock()
	gone := map[partition.MemberID]bool{}
	var live []*gridmap.Member
	var names []int
	for i, m := range c.members {
		if c.stopped[i] {
			gone[m.ID()] = true
		} else {
			live = append(live, m)
			names = append(names, i)
		}
	}
	c.mu.Unlock()
	if len(live) == 0 {
		return "no member is running"
	}
	first := live[0].Cluster().Partitions()
	for k, m := range live {
		view := m.Cluster()
		if !view.Safe() {
			return fmt.Sprintf("member %d does not find the cluster safe", names[k])
		}
		for _, mi := range view.Members() {
			if gone[mi.ID] && mi.Alive {
				return fmt.Sprintf("member %d still counts stopped member %s alive", names[k], mi.ID)
			}
		}
		parts := view.Partitions()
		if k > 0 && !reflect.DeepEqual(parts, first) {
			return fmt.Sprintf("members %d and %d see different partition tables", names[0], names[k])
		}
		for _, p := range parts {
			if gone[p.Owner] || slices.ContainsFunc(p.Backups, func(b partition.MemberID) bool { return gone[b] }) {
				return fmt.Sprintf("partition %d still lives on a stopped member (owner %s, backups %v)",
					p.ID, p.Owner, p.Backups)
			}
		}
	}
	return ""
}

// killAll kills every member still running, at the end of the test.
func (c *Cluster) killAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	var wg sync.WaitGroup
	for i, m := range c.members {
		if !c.stopped[i] {
			c.stopped[i] = true
			wg.Go(func() { memberhook.Kill(m) })
		}
	}
	wg.Wait()
}
