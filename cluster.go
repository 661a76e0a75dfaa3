package gridmap

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/internal/control"
	"github.com/gridmap/gridmap/partition"
)

// Cluster is a member's view of the cluster, as Hazelcast's Cluster and PartitionService
// offer: the members and their raft roles, where each partition lives, whether the cluster is
// safe (every partition fully backed up, nothing moving), and the operator's tools for lost
// partitions and a lost raft majority. Get it with Member.Cluster.
//
// Every call reads the latest state this member knows (its partition table and its gossip view
// of liveness); two calls may see different states. The partition table is the committed one,
// possibly a moment behind the coordinator's.
type Cluster struct {
	m *Member
}

// Cluster returns the member's view of the cluster.
func (m *Member) Cluster() *Cluster { return &Cluster{m: m} }

// MemberInfo describes one member of the cluster.
type MemberInfo struct {
	// ID is the member's identity (Member.ID), fresh at every start: the same type as every
	// member identity gridmap hands out (Partition.Owner, dmap.EntryEvent.Member,
	// dmap.PartitionEvent.Owner), so they compare without conversions.
	ID partition.MemberID
	// Addr is the member's advertised address for member-to-member traffic.
	Addr string
	// GossipAddr is the member's gossip address (a seed to join through).
	GossipAddr string
	// Voter: the member is a raft voter. Leader: it is the raft leader, the coordinator that
	// decides the partition table.
	Voter, Leader bool
	// Alive: gossip reports the member alive. A crashed member stays alive here until it is
	// declared dead (see Timings).
	Alive bool
	// Leaving: the member is handing its partitions off to leave (Member.Close).
	Leaving bool
	// Local: the member is the one this view was taken from.
	Local bool
}

// Members lists the members of the cluster, sorted by ID, dead ones included until the
// coordinator removes them.
func (c *Cluster) Members() []MemberInfo {
	infos := c.m.node.Members()
	out := make([]MemberInfo, len(infos))
	for i, mi := range infos {
		out[i] = c.memberInfo(mi)
	}
	return out
}

func (c *Cluster) memberInfo(mi control.MemberInfo) MemberInfo {
	return MemberInfo{
		ID: mi.ID, Addr: mi.TransportAddr, GossipAddr: mi.GossipAddr,
		Voter: mi.Voter, Leader: mi.Leader, Alive: mi.Alive, Leaving: mi.Leaving,
		Local: mi.ID == c.m.id,
	}
}

// Leader returns the raft leader (the coordinator), and false while this member knows of none
// (an election is under way, or this member is cut off from the majority).
func (c *Cluster) Leader() (MemberInfo, bool) {
	for _, mi := range c.Members() {
		if mi.Leader {
			return mi, true
		}
	}
	return MemberInfo{}, false
}

// Voters lists the raft voters, sorted by ID. The cluster decides (changes its partition
// table) only while a majority of them is alive.
func (c *Cluster) Voters() []MemberInfo {
	return slices.DeleteFunc(c.Members(), func(mi MemberInfo) bool { return !mi.Voter })
}

// Partition is where one partition lives.
type Partition struct {
	// ID is the partition.
	ID partition.ID
	// Owner is the member that serves the partition's operations, "" if it has none.
	Owner partition.MemberID
	// Backups are the members holding a synchronous copy, in promotion order.
	Backups []partition.MemberID
	// Migrating are the members receiving a copy (a new backup, or a new owner taking over).
	Migrating []partition.MemberID
	// Lost: every copy of the partition was lost and it is not served until
	// ResetLostPartitions (see Config.RecreateLostPartitions).
	Lost bool
}

// PartitionCount is the number of partitions of every map.
func (c *Cluster) PartitionCount() int { return c.m.cfg.PartitionCount }

// Partition returns where partition id lives. An id out of range has no owner.
func (c *Cluster) Partition(id partition.ID) Partition {
	return partitionOf(c.m.node.Table(), id)
}

// Partitions returns where every partition lives, by ID, from one table.
func (c *Cluster) Partitions() []Partition {
	t := c.m.node.Table()
	out := make([]Partition, t.Count())
	for i := range out {
		out[i] = partitionOf(t, partition.ID(i))
	}
	return out
}

// PartitionOfKey returns where the partition of key in map mp lives: the member that owns the
// key answers operations on it. The key is hashed the way mp does (its key codec, or its
// dmap.PartitionAware partition key); mp.Partition gives the partition alone.
func PartitionOfKey[K comparable, V any](c *Cluster, mp *dmap.Map[K, V], key K) (Partition, error) {
	p, err := mp.Partition(key)
	if err != nil {
		return Partition{}, err
	}
	return c.Partition(p), nil
}

func partitionOf(t *partition.Table, id partition.ID) Partition {
	p := Partition{ID: id}
	if id < 0 || int(id) >= t.Count() {
		return p
	}
	a := t.Partitions[id]
	if len(a.Replicas) > 0 {
		p.Owner = a.Replicas[0]
		p.Backups = slices.Clone(a.Replicas[1:])
	}
	for _, pd := range a.Pending {
		p.Migrating = append(p.Migrating, pd.Member)
	}
	p.Lost = a.Lost
	return p
}

// Safe reports whether the cluster is safe as this member sees it, the test for a rolling
// restart (stop the next member only once Safe holds) and for a test between faults: this
// member holds a current partition table (it is in contact with the raft majority), and every
// partition has an owner and as many backups as Config.BackupCount asks, or one per other live
// member when there are fewer, all of them live members not leaving, with no copy in flight and
// no partition lost; and raft has as many live voters as Config.MaxVoters allows, so that it
// too survives the loss of one more member. A member that crashed a moment ago counts as live until it is declared
// dead (see Timings): right after a crash Safe may still hold.
func (c *Cluster) Safe() bool {
	return c.safe(c.m.node.Table())
}

func (c *Cluster) safe(t *partition.Table) bool {
	select {
	case <-c.m.closed:
		return false
	default:
	}
	if t.Epoch == 0 || !c.m.node.LeaseValid() {
		return false
	}
	live := map[partition.MemberID]bool{}
	voters := 0
	for _, mi := range c.m.node.Members() {
		if mi.Alive && !mi.Leaving {
			live[mi.ID] = true
			if mi.Voter {
				voters++
			}
		}
	}
	// Raft must be able to lose a voter too: as many live voters as MaxVoters allows.
	if voters < min(len(live), c.m.cfg.MaxVoters) {
		return false
	}
	want := min(c.m.cfg.backups()+1, len(live))
	for _, a := range t.Partitions {
		if a.Lost || len(a.Pending) > 0 || len(a.Replicas) != want {
			return false
		}
		for _, r := range a.Replicas {
			if !live[r] {
				return false
			}
		}
	}
	return true
}

// safePoll bounds how long WaitSafe takes to notice a change that does not come with a new
// partition table (a suspected member refuting, this member's lease coming back).
const safePoll = 100 * time.Millisecond

// WaitSafe blocks until Safe holds, ctx ends (it returns ctx's error) or the member is closed
// (ErrClosed). It wakes at every new partition table, and checks liveness and the lease at
// least every 100ms in between.
func (c *Cluster) WaitSafe(ctx context.Context) error {
	poll := time.NewTicker(safePoll)
	defer poll.Stop()
	for {
		t, changed := c.m.node.Watch()
		if c.safe(t) {
			return nil
		}
		select {
		case <-c.m.closed:
			return ErrClosed
		default:
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gridmap: waiting for the cluster to be safe: %w", ctx.Err())
		case <-c.m.closed:
			return ErrClosed
		case <-changed:
		case <-poll.C:
		}
	}
}

// LostPartitions lists, in ascending order, the partitions marked lost: they lost every copy
// of their data and are refused (dmap.ErrPartitionLost) until ResetLostPartitions.
func (c *Cluster) LostPartitions() []partition.ID {
	var ids []partition.ID
	for p, a := range c.m.node.Table().Partitions {
		if a.Lost {
			ids = append(ids, partition.ID(p))
		}
	}
	return ids
}

// ResetLostPartitions clears the lost mark of the given partitions (none: every lost one), so
// that they are served again, empty. Call it once the application knows of the loss (for
// example after restoring their entries is arranged). It returns once the new table is
// committed, or ctx's error.
func (c *Cluster) ResetLostPartitions(ctx context.Context, parts ...partition.ID) error {
	if len(parts) == 0 {
		parts = c.LostPartitions()
		if len(parts) == 0 {
			return nil
		}
	}
	return c.m.node.ResetLost(ctx, parts)
}

// AllowPartialRestore is the operator's decision that the absent data folders a restarted
// cluster waits for will not come back: this member's restores of the partitions that wait for
// them (or were refused, dmap.ErrRestoreIncomplete) load the newest copies present, at once,
// as Config.RestorePolicy RestorePartialMostRecent does after RestoreTimeout. A partition is
// restored by its owner: call it on every member. Writes only the absent folders held are lost.
func (c *Cluster) AllowPartialRestore() { c.m.engine.AllowPartialRestore() }

// RecoverQuorum is the way out for a cluster that lost its raft majority for good (more
// voters died at once than a majority tolerates, before the coordinator could replace them):
// no table can be committed, so nothing is repaired and owners lose their leases. Call it on
// every surviving member, once each of them reports the dead members dead (Members shows
// Alive false): each makes the live members the raft configuration (the lowest IDs as voters,
// so that all compute the same one), and they elect a leader again; WaitSafe then waits for
// the repair. The dead members' partitions are reassigned as after any failure, and those
// whose every copy died are marked lost. It refuses, changing nothing, while this member still
// knows a leader or a majority of the voters is alive. Only use it when the dead voters will
// not come back: voters that were merely cut off and return would make a second majority.
func (c *Cluster) RecoverQuorum(ctx context.Context) error {
	return c.m.node.RecoverQuorum(ctx)
}

// PartitionsLostSeen is how many partition losses this member has reported (PartitionLost
// events) since it started: the counter to export as a metric.
func (c *Cluster) PartitionsLostSeen() uint64 { return c.m.maps.PartitionsLost() }

// AddPartitionListener registers fn for the partition events this member sees: migrations
// involving it and lost partitions (dmap.PartitionLost). It is dmap.Service.AddPartitionListener
// of the member's maps; see there for the calling goroutine and ordering. Remove on the returned
// handle ends it, as for the entry listeners.
func (c *Cluster) AddPartitionListener(ctx context.Context, fn func(dmap.PartitionEvent)) (*dmap.ListenerHandle, error) {
	return c.m.maps.AddPartitionListener(ctx, fn)
}
