package enginetest

import (
	"context"
	"slices"
	"sync"

	"github.com/gridmap/gridmap/partition"
)

// Coord plays the control plane of an in-process cluster: tests decide the membership (Plan), and
// it plans tables with the real planner and applies copy reports with partition.Complete, as the
// coordinator does. It holds the committed table every member's Node sees.
type Coord struct {
	Mu      sync.Mutex
	Table   *partition.Table
	Changed chan struct{}
	Members partition.Members
	Cfg     partition.PlanConfig
	NoLease map[partition.MemberID]bool
	Gone    map[partition.MemberID]bool // removed from the directory
	// Reports counts ReportUnreachable calls per reported member; with Demote set, a report
	// takes the member out of every partition's backups and pending copies at once (a table
	// commit), as the coordinator does.
	Reports map[partition.MemberID]int
	Demote  bool
}

// ReportsOf returns how many times m was reported unreachable.
func (c *Coord) ReportsOf(m partition.MemberID) int {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	return c.Reports[m]
}

// Commit commits a table derived from the current one by edit (which gets a copy), at the next
// epoch.
func (c *Coord) Commit(edit func(t *partition.Table)) *partition.Table {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	next := c.Table.Clone()
	next.Epoch++
	edit(next)
	c.CommitLocked(next)
	return next
}

// Watch returns the committed table and a channel closed at the next commit.
func (c *Coord) Watch() (*partition.Table, <-chan struct{}) {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	return c.Table, c.Changed
}

// CommitLocked installs t as the committed table; the caller holds Mu.
func (c *Coord) CommitLocked(t *partition.Table) {
	if err := t.Validate(); err != nil {
		panic(err)
	}
	c.Table = t
	close(c.Changed)
	c.Changed = make(chan struct{})
}

// Plan re-plans with the current membership.
func (c *Coord) Plan(members partition.Members) {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	c.Members = members
	if next, lost, changed := partition.Plan(c.Table, members, c.Cfg); changed {
		// As the coordinator's planner does: a partition that lost every replica is assigned
		// afresh with its loss recorded, and is not served until reset unless RecreateLost.
		for _, p := range lost {
			a := &next.Partitions[p]
			a.LostAt = next.Epoch
			a.Lost = !c.Cfg.RecreateLost
		}
		c.CommitLocked(next)
	}
}

// Node is one member's view of the control plane: it implements the engine's Cluster over a
// Coord.
type Node struct {
	ID    partition.MemberID
	Coord *Coord

	mu     sync.Mutex
	frozen *partition.Table // set: the table this member sees instead of the committed one
	thawed chan struct{}    // closed when the frozen view changes or ends
}

// Freeze makes the member see t as its latest table until Thaw (or the next Freeze), whatever
// the coordinator commits meanwhile: a member that was stopped (SIGSTOP) or cut off, or one
// whose raft log is catching up through older tables. Watchers of the member's table are woken.
func (n *Node) Freeze(t *partition.Table) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.frozen = t
	if n.thawed != nil {
		close(n.thawed)
	}
	n.thawed = make(chan struct{})
}

// Thaw ends Freeze: the member sees the committed table again.
func (n *Node) Thaw() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.frozen = nil
	if n.thawed != nil {
		close(n.thawed)
		n.thawed = nil
	}
}

// LocalID implements Cluster.
func (n *Node) LocalID() partition.MemberID { return n.ID }

// Table implements Cluster.
func (n *Node) Table() *partition.Table { t, _ := n.Watch(); return t }

// Watch implements Cluster.
func (n *Node) Watch() (*partition.Table, <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.frozen != nil {
		return n.frozen, n.thawed
	}
	return n.Coord.Watch()
}

// MemberAddr implements Cluster: a member's address is its ID, until Coord.Gone lists it.
func (n *Node) MemberAddr(id partition.MemberID) (string, bool) {
	n.Coord.Mu.Lock()
	defer n.Coord.Mu.Unlock()
	return string(id), !n.Coord.Gone[id]
}

// LeaseValid implements Cluster: valid unless Coord.NoLease lists the member.
func (n *Node) LeaseValid() bool {
	n.Coord.Mu.Lock()
	defer n.Coord.Mu.Unlock()
	return !n.Coord.NoLease[n.ID]
}

// ReportUnreachable implements Cluster: it counts the report and, with Coord.Demote, acts on it.
func (n *Node) ReportUnreachable(m partition.MemberID) {
	c := n.Coord
	c.Mu.Lock()
	defer c.Mu.Unlock()
	if c.Reports == nil {
		c.Reports = make(map[partition.MemberID]int)
	}
	c.Reports[m]++
	if !c.Demote {
		return
	}
	next := c.Table.Clone()
	changed := false
	for i := range next.Partitions {
		a := &next.Partitions[i]
		if len(a.Replicas) > 1 && slices.Contains(a.Replicas[1:], m) {
			a.Replicas = append(a.Replicas[:1:1], slices.DeleteFunc(slices.Clone(a.Replicas[1:]), func(r partition.MemberID) bool { return r == m })...)
			changed = true
		}
		if slices.ContainsFunc(a.Pending, func(pe partition.Pending) bool { return pe.Member == m }) {
			a.Pending = slices.DeleteFunc(a.Pending, func(pe partition.Pending) bool { return pe.Member == m })
			if len(a.Pending) == 0 {
				a.Pending = nil
			}
			changed = true
		}
	}
	if changed {
		next.Epoch++
		c.CommitLocked(next)
	}
}

// ReportSynced implements Cluster: it completes the copy and re-plans, as the coordinator does.
func (n *Node) ReportSynced(ctx context.Context, p partition.ID, m partition.MemberID, epoch uint64) error {
	c := n.Coord
	c.Mu.Lock()
	defer c.Mu.Unlock()
	if c.Table.Owner(p) != n.ID {
		return nil // a stale report (the coordinator refuses it): nothing changes
	}
	next, changed := partition.CompleteCopy(c.Table, p, m, epoch, c.Members, c.Cfg)
	if !changed {
		return nil
	}
	if again, _, ch := partition.Plan(next, c.Members, c.Cfg); ch {
		next = again
	}
	c.CommitLocked(next)
	return nil
}

// NewCoord returns a coordinator with an empty table of partitions partitions, planning with
// cfg.
func NewCoord(partitions int, cfg partition.PlanConfig) *Coord {
	return &Coord{Table: partition.NewTable(partitions), Changed: make(chan struct{}), Cfg: cfg,
		NoLease: map[partition.MemberID]bool{}, Gone: map[partition.MemberID]bool{}}
}
